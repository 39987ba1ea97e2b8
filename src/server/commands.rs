//! `server migrate`, `server verify` and `server import`: work on the store
//! that runs and exits, instead of serving.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use crate::format;
use crate::pb::Order;
use crate::store::{RedbOptions, RedbStore};

/// `server migrate`: the PostgreSQL schema migrations alone.
pub async fn migrate(url: Option<&str>) -> Result<(), String> {
    let url = url.ok_or("server migrate needs --database-url (or ORDER_DATABASE_URL)")?;
    let report = crate::store::postgres::migrate(url)
        .await
        .map_err(|e| e.to_string())?;
    println!("{report}");
    Ok(())
}

/// `server verify`: the full check of the data file; `Err` if it is not sound.
pub fn verify(dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let report = RedbStore::verify(dir).map_err(|e| e.to_string())?;
    println!("{report}");
    println!("checked in {:.1} s", started.elapsed().as_secs_f64());
    if report.is_ok() {
        Ok(())
    } else {
        Err(format!(
            "the data file in {} has problems (above)",
            dir.display()
        ))
    }
}

/// `server import FILE`: orders from JSON lines, `batch` per transaction,
/// through the store's writer (the path every write takes).
pub async fn import(
    dir: &Path,
    options: &RedbOptions,
    file: &str,
    batch: usize,
) -> Result<(), String> {
    let input: Box<dyn BufRead> = if file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        Box::new(BufReader::new(f))
    };
    let store = RedbStore::open_with(dir, options).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut imported = 0usize;
    let mut pending: Vec<Order> = Vec::with_capacity(batch);
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {file}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let order = parse_line(&line).map_err(|e| {
            format!(
                "{file} line {}: {e} ({imported} orders imported before it)",
                n + 1
            )
        })?;
        pending.push(order);
        if pending.len() == batch {
            imported += commit(&store, &mut pending, imported).await?;
            tracing::info!("imported {imported} orders");
        }
    }
    imported += commit(&store, &mut pending, imported).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "imported {imported} orders into {} in {seconds:.1} s",
        store.path().display()
    );
    Ok(())
}

fn parse_line(line: &str) -> Result<Order, String> {
    let value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let order: Order = format::from_json("ecommerce.Order", value)?;
    let violations = crate::validate::order(&order, crate::validate::Id::Required);
    if let Some(first) = violations.first() {
        return Err(format!("invalid order {:?}: {first}", order.id));
    }
    Ok(order)
}

async fn commit(
    store: &RedbStore,
    pending: &mut Vec<Order>,
    before: usize,
) -> Result<usize, String> {
    let orders = std::mem::take(pending);
    let n = orders.len();
    if n == 0 {
        return Ok(0);
    }
    store.insert_many(orders).await.map_err(|e| {
        format!(
            "{e}; this batch of {n} orders was not imported ({before} orders imported before it)"
        )
    })?;
    Ok(n)
}
