//! Loads many orders into a data directory in a few transactions, for
//! benchmarks (searchOrders over 100k orders) and for trying the server with
//! a realistic store. One transaction per 10,000 orders: adding them one by
//! one through addOrder would pay a disk sync each.
//!
//! ```sh
//! cargo run --release --example bulk_load -- --data-dir DIR --count 100000
//! ```
//!
//! Every order has the item `widget <n>`, so `searchOrders("widget")`
//! matches them all.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use order_management::Order;
use order_management::store::RedbStore;

#[derive(Parser)]
struct Args {
    /// The server's data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// How many orders to add.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let store = match RedbStore::open(&args.data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("bulk_load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let orders = (0..args.count).map(|n| Order {
        id: format!("bulk-{n:07}"),
        items: vec![format!("widget {n}"), "gadget".into()],
        description: "bulk-loaded order".into(),
        price: (n % 1000) as f32 + 0.5,
        destination: ["Seoul", "Busan", "Incheon", "Daegu"][n % 4].into(),
    });
    let mut loaded = 0;
    let mut chunk = Vec::with_capacity(10_000);
    for order in orders {
        chunk.push(order);
        if chunk.len() == 10_000 {
            loaded += chunk.len();
            if let Err(e) = store.insert_many(std::mem::take(&mut chunk)) {
                eprintln!("bulk_load: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    loaded += chunk.len();
    if let Err(e) = store.insert_many(chunk) {
        eprintln!("bulk_load: {e}");
        return ExitCode::FAILURE;
    }
    println!("loaded {loaded} orders into {}", store.path().display());
    ExitCode::SUCCESS
}
