//! `OrderStore` calls on both backends, as the service makes them (through
//! `Arc<dyn OrderStore>`, awaited on a tokio runtime), with 10 000 orders
//! stored.
//!
//! `cargo bench --bench store` (add `-- --quick` for a short run).
//!
//! - `get/{memory,redb}/{hit,miss}`: getOrder's store call. On redb a hit
//!   is served inline from the decoded-order cache (it should measure like
//!   memory); a miss goes to the blocking pool and the file.
//! - `search/{memory,redb}/{rare,common,short}`: one 256-candidate step
//!   from the middle of the store: `rare` matches one order (redb: the
//!   trigram index), `common` matches every order, `short` is a 2-char
//!   query (a scan on both).
//!
//! Each iteration includes a `block_on` of the call (~100 ns).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use order_management::pb::Order;
use order_management::seed;
use order_management::store::{MemoryStore, OrderStore, RedbStore};

const ORDERS: usize = 10_000;
const PAGE: usize = 256;

/// Order `i` of the benchmark data: the seed's order under id
/// `order-0000i`, with an item `widget <i>`.
fn order(i: usize) -> Order {
    let mut o = Order {
        id: format!("order-{i:05}"),
        ..seed::order_101()
    };
    o.items.push(format!("widget {i}"));
    o
}

fn orders() -> Vec<Order> {
    (0..ORDERS).map(order).collect()
}

fn calls(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &Arc<dyn OrderStore>) {
    let hit = order(ORDERS / 2).id;
    let miss = "order-missing";
    let after = order(ORDERS / 4).id;
    let run = |f| rt.block_on(f);
    assert!(run(store.get(&hit)).unwrap().is_some());
    assert!(run(store.get(miss)).unwrap().is_none());

    let mut get = c.benchmark_group("get");
    get.bench_function(BenchmarkId::new(name, "hit"), |b| {
        b.iter(|| rt.block_on(store.get(black_box(&hit))).unwrap())
    });
    get.bench_function(BenchmarkId::new(name, "miss"), |b| {
        b.iter(|| rt.block_on(store.get(black_box(miss))).unwrap())
    });
    get.finish();

    let mut search = c.benchmark_group("search");
    for (what, query) in [("rare", "widget 7777"), ("common", "item"), ("short", "- ")] {
        search.bench_function(BenchmarkId::new(name, what), |b| {
            b.iter(|| {
                rt.block_on(store.search(black_box(query), Some(&after), PAGE))
                    .unwrap()
            })
        });
    }
    search.finish();
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a runtime");
    let memory: Arc<dyn OrderStore> = Arc::new(MemoryStore::with_orders(orders()));
    calls(c, &rt, "memory", &memory);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let redb = RedbStore::open(dir.path()).expect("open the redb store");
    redb.insert_many_blocking(orders())
        .expect("load the orders");
    let redb: Arc<dyn OrderStore> = Arc::new(redb);
    calls(c, &rt, "redb", &redb);
    drop(redb); // closes the file before its directory goes
}

criterion_group!(benches, store);
criterion_main!(benches);
