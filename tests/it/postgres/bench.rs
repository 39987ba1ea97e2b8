//! Throughput and latency of `PgStore` on a local PostgreSQL over a Unix
//! socket, with PostgreSQL's durable defaults (fsync at each commit).
//! Ignored by default; run with a release build:
//!
//! ```sh
//! cargo test --release --test postgres -- --ignored --nocapture pg_bench
//! # once these tests live in tests/it: --test it
//! ```
//!
//! `PG_BENCH_ORDERS` (default 100000) orders are bulk-loaded first
//! (`insert_many`, 10 000 per transaction); order `n` has the items
//! `widget <n>` and `gadget`, as `examples/bulk_load.rs` writes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use order_management::Order;
use order_management::store::{OrderStore, PgOptions, PgStore};

use super::harness::Postgres;

fn bulk_order(n: usize) -> Order {
    Order {
        id: format!("bulk-{n:07}"),
        items: vec![format!("widget {n}"), "gadget".into()],
        description: "bulk-loaded order".into(),
        price: (n % 1000) as f32 + 0.5,
        destination: ["Seoul", "Busan", "Incheon", "Daegu"][n % 4].into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    println!(
        "{name:<36} n={:<6} mean={:>9.1?} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples.len(),
        total / samples.len() as u32,
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture (release build)"]
async fn pg_bench() {
    let Some(pg) = Postgres::start_durable() else {
        return;
    };
    let url = pg.create_database("bench").await;
    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.unwrap());
    let count: usize = std::env::var("PG_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        store
            .insert_many(chunk.iter().map(|&n| bulk_order(n)).collect())
            .await
            .unwrap();
    }
    let took = started.elapsed();
    println!(
        "bulk load (insert_many, 10k/tx)      {count} orders in {took:.2?}: {:.0} orders/s",
        count as f64 / took.as_secs_f64()
    );
    let admin = pg.connect("bench").await;
    admin.batch_execute("VACUUM ANALYZE orders").await.unwrap();

    // Single inserts (one transaction, one fsync each), one caller.
    let mut samples = Vec::new();
    let started = Instant::now();
    for i in 0..1000 {
        let t = Instant::now();
        store
            .insert(
                bulk_order(count + i),
                Some(Instant::now() + Duration::from_secs(5)),
            )
            .await
            .unwrap();
        samples.push(t.elapsed());
    }
    println!(
        "insert, 1 caller                     {:.0} orders/s",
        1000.0 / started.elapsed().as_secs_f64()
    );
    summary("insert latency, 1 caller", samples);

    // 16 concurrent callers (commits share WAL flushes).
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for i in 0..250 {
                    let n = count + 1000 + t * 250 + i;
                    let s = Instant::now();
                    store.insert(bulk_order(n), None).await.unwrap();
                    samples.push(s.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    println!(
        "insert, 16 callers                   {:.0} orders/s",
        4000.0 / started.elapsed().as_secs_f64()
    );
    summary("insert latency, 16 callers", samples);

    let mut rng = fastrand::Rng::with_seed(1);
    let mut samples = Vec::new();
    for _ in 0..5000 {
        let id = bulk_order(rng.usize(..count)).id;
        let t = Instant::now();
        assert!(store.get(&id).await.unwrap().is_some());
        samples.push(t.elapsed());
    }
    summary("get (hit), 1 caller", samples);
    let mut samples = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        assert!(store.get("missing").await.unwrap().is_none());
        samples.push(t.elapsed());
    }
    summary("get (miss), 1 caller", samples);

    let after = bulk_order(count / 4).id;
    let rare = format!("widget {}", count * 3 / 4 + 7);
    for (name, query, from) in [
        (
            "search step: rare (1 match), from start",
            rare.as_str(),
            None,
        ),
        (
            "search step: common (all), 256",
            "gadget",
            Some(after.as_str()),
        ),
        (
            "search step: short (2 chars), 256",
            "et",
            Some(after.as_str()),
        ),
    ] {
        let mut samples = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let page = store.search(query, from, 256).await.unwrap();
            samples.push(t.elapsed());
            assert!(!page.orders.is_empty(), "{name}");
        }
        summary(name, samples);
    }
    // A whole rare search: steps until done.
    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut after: Option<String> = None;
        let mut found = 0;
        loop {
            let page = store.search(&rare, after.as_deref(), 256).await.unwrap();
            found += page.orders.len();
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(found, 1);
        samples.push(t.elapsed());
    }
    summary("search: rare, whole walk", samples);
    let t = Instant::now();
    let n = store.count().await.unwrap();
    println!(
        "count()                              {n} in {:.1?}",
        t.elapsed()
    );
}
