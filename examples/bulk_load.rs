//! Loads many orders into a data directory through the store's bulk path
//! (`RedbStore::insert_many`: one all-or-nothing write per chunk, queued to
//! the store's writer like any write, which commits the chunks waiting
//! together in one transaction and one disk sync, index included). For
//! benchmarks (searchOrders over 1M orders) and for trying the server with
//! a realistic store. Adding them one by one through addOrder would pay a
//! commit each.
//!
//! ```sh
//! cargo run --release --example bulk_load -- --data-dir DIR --count 1000000
//! ```
//!
//! Order `n` has id `bulk-<n, 7 digits>` and the items `widget <n>` and
//! `gadget`, so `searchOrders("widget")` matches them all and
//! `searchOrders("widget 777777")` exactly one (of 1M).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use futures_util::StreamExt as _;
use order_management::Order;
use order_management::store::{OrderStore, RedbStore};

#[derive(Parser)]
struct Args {
    /// The server's data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// How many orders to add.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Orders per all-or-nothing write.
    #[arg(long, default_value_t = 10_000)]
    chunk: usize,
    /// Chunks queued at once (the writer commits those waiting together).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
}

fn order(n: usize) -> Order {
    Order {
        id: format!("bulk-{n:07}"),
        items: vec![format!("widget {n}"), "gadget".into()],
        description: "bulk-loaded order".into(),
        price: (n % 1000) as f32 + 0.5,
        destination: ["Seoul", "Busan", "Incheon", "Daegu"][n % 4].into(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    match runtime.block_on(load(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulk_load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn load(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let store = RedbStore::open(&args.data_dir).map_err(|e| e.to_string())?;
    let chunk = args.chunk.max(1);
    let chunks = (0..args.count).step_by(chunk).map(|start| {
        (start..(start + chunk).min(args.count))
            .map(order)
            .collect::<Vec<_>>()
    });
    let mut results = futures_util::stream::iter(chunks.map(|c| store.insert_many(c)))
        .buffered(args.in_flight.max(1));
    while let Some(result) = results.next().await {
        result.map_err(|e| e.to_string())?;
    }
    drop(results);
    let total = store.count().await.map_err(|e| e.to_string())?;
    let path = store.path().to_owned();
    drop(store); // closes the file
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "loaded {} orders into {} in {:.1?} ({total} orders stored, file {:.1} MiB)",
        args.count,
        path.display(),
        started.elapsed(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
