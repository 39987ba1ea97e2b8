//! `OrderStore` reads on both backends, as the service calls them (through
//! `Arc<dyn OrderStore>`), with 10 000 orders stored.
//!
//! `cargo bench --bench store` (add `-- --quick` for a short run).
//!
//! - `get/{memory,redb}/{hit,miss}`: getOrder's store call (a hit clones the
//!   order).
//! - `scan_256/{memory,redb}/{keep_all,keep_none}`: one step of a
//!   searchOrders walk, 256 orders examined from the middle of the store;
//!   `keep_all` clones all 256, `keep_none` only walks them.
//!
//! `RedbStore` serves reads from its in-memory copy, so both backends should
//! measure alike; a gap here would be a regression in that design.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use order_management::pb::Order;
use order_management::seed;
use order_management::store::{MemoryStore, OrderStore, RedbStore};

const ORDERS: usize = 10_000;
const PAGE: usize = 256;

/// Order `i` of the benchmark data: the seed's order under id `order-0000i`.
fn order(i: usize) -> Order {
    Order {
        id: format!("order-{i:05}"),
        ..seed::order_101()
    }
}

fn orders() -> Vec<Order> {
    (0..ORDERS).map(order).collect()
}

fn reads(c: &mut Criterion, name: &str, store: &Arc<dyn OrderStore>) {
    let hit = order(ORDERS / 2).id;
    let miss = "order-missing";
    let after = order(ORDERS / 2).id;
    assert!(store.get(&hit).unwrap().is_some());
    assert!(store.get(miss).unwrap().is_none());
    assert_eq!(
        store
            .scan(Some(&after), PAGE, &|_| true)
            .unwrap()
            .orders
            .len(),
        PAGE
    );

    let mut get = c.benchmark_group("get");
    get.bench_function(BenchmarkId::new(name, "hit"), |b| {
        b.iter(|| store.get(black_box(&hit)).unwrap())
    });
    get.bench_function(BenchmarkId::new(name, "miss"), |b| {
        b.iter(|| store.get(black_box(miss)).unwrap())
    });
    get.finish();

    let mut scan = c.benchmark_group("scan_256");
    scan.throughput(Throughput::Elements(PAGE as u64));
    scan.bench_function(BenchmarkId::new(name, "keep_all"), |b| {
        b.iter(|| {
            store
                .scan(Some(black_box(&after)), PAGE, &|_| true)
                .unwrap()
        })
    });
    scan.bench_function(BenchmarkId::new(name, "keep_none"), |b| {
        b.iter(|| {
            store
                .scan(Some(black_box(&after)), PAGE, &|_| false)
                .unwrap()
        })
    });
    scan.finish();
}

fn store(c: &mut Criterion) {
    let memory: Arc<dyn OrderStore> = Arc::new(MemoryStore::with_orders(orders()));
    reads(c, "memory", &memory);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let redb = RedbStore::open(dir.path()).expect("open the redb store");
    redb.insert_many(orders()).expect("load the orders");
    let redb: Arc<dyn OrderStore> = Arc::new(redb);
    reads(c, "redb", &redb);
    drop(redb); // closes the file before its directory goes
}

criterion_group!(benches, store);
criterion_main!(benches);
