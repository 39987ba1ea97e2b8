//! Search against brute force.

use super::*;

const ALPHABET: &[char] = &[
    'a', 'b', 'A', 'B', ' ', '-', 'é', 'É', 'ß', 'İ', 'i', 'I', 'ı', 'Σ', 'σ', 'ς', '🦀', 's',
];

fn random_text(rng: &mut fastrand::Rng, max: usize) -> String {
    let len = rng.usize(0..=max);
    (0..len)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
        .collect()
}

fn random_order(rng: &mut fastrand::Rng, id: String) -> Order {
    let items = (0..rng.usize(0..=3)).map(|_| random_text(rng, 8)).collect();
    Order {
        id,
        items,
        ..Order::default()
    }
}

fn random_query(rng: &mut fastrand::Rng, orders: &[Order]) -> String {
    // Half from stored items (so that there are matches), half random.
    if rng.bool() {
        let o = &orders[rng.usize(..orders.len())];
        if let Some(item) = o.items.get(rng.usize(0..=o.items.len().max(1) - 1)) {
            let chars: Vec<char> = item.chars().collect();
            let start = rng.usize(0..=chars.len());
            let len = rng.usize(0..=6.min(chars.len() - start));
            let q: String = chars[start..start + len].iter().collect();
            // Sometimes in another case.
            return if rng.bool() { q.to_uppercase() } else { q };
        }
    }
    random_text(rng, 6)
}

async fn check_searches(
    rng: &mut fastrand::Rng,
    stores: &[&dyn OrderStore],
    orders: &std::collections::BTreeMap<String, Order>,
) {
    let all: Vec<Order> = orders.values().cloned().collect();
    for _ in 0..60 {
        let query = random_query(rng, &all);
        let want = brute_force(orders.values(), &query);
        for store in stores {
            // Small steps resume often; a large one starts with a scan
            // (see `search::dense_prefix`).
            let budget = match rng.usize(..4) {
                0 => crate::store::embedded::search::DENSE_MIN_BUDGET + rng.usize(..200),
                _ => rng.usize(1..=5),
            };
            let got = search_all(*store, &query, budget).await;
            assert_eq!(ids(&got), want, "query {query:?}, budget {budget}");
            for o in &got {
                assert_eq!(Some(o), orders.get(&o.id));
            }
        }
    }
}

#[test]
fn search_equals_brute_force_on_both_stores() {
    let rt = runtime();
    for seed in 0..4 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut orders: std::collections::BTreeMap<String, Order> = (0..150)
            .map(|i| {
                let id = format!("{:03}", rng.usize(..1000) * 1000 + i);
                (id.clone(), random_order(&mut rng, id))
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryStore::with_orders(orders.values().cloned());
        let options = RedbOptions {
            unindexed_limit: [1, 3, 7, 512][seed as usize],
            ..RedbOptions::default()
        };
        let redb = RedbStore::open_with(dir.path(), &options).unwrap();
        rt.block_on(async {
            redb.insert_many(orders.values().cloned().collect())
                .await
                .unwrap();
            check_searches(&mut rng, &[&memory, &redb], &orders).await;

            // Updates and inserts keep the index exact.
            let keys: Vec<String> = orders.keys().cloned().collect();
            for round in 0..10 {
                let batch: Vec<Order> = (0..rng.usize(1..5))
                    .map(|_| keys[rng.usize(..keys.len())].clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|id| random_order(&mut rng, id))
                    .collect();
                memory.update_all(batch.clone(), None).await.unwrap();
                redb.update_all(batch.clone(), None).await.unwrap();
                let new = random_order(&mut rng, format!("new-{round}"));
                memory.insert(new.clone(), None).await.unwrap();
                redb.insert(new.clone(), None).await.unwrap();
                for o in batch.into_iter().chain([new]) {
                    orders.insert(o.id.clone(), o);
                }
            }
            check_searches(&mut rng, &[&memory, &redb], &orders).await;
        });
        drop(redb);
        let report = RedbStore::verify(dir.path()).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.orders, orders.len() as u64);
    }
}

#[test]
fn a_search_step_is_bounded_and_resumable() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    // The query's trigrams are common but rarely together: the step must
    // stop after its seek budget even when it examined nothing.
    let orders: Vec<Order> = (0..2000)
        .map(|i| {
            let item = match i {
                1999 => "abcd",
                _ if i % 2 == 0 => "abc",
                _ => "bcd",
            };
            order(&format!("{i:05}"), &[item])
        })
        .collect();
    rt.block_on(async {
        store.insert_many(orders).await.unwrap();
        let first = store.search("abcd", None, 1).await.unwrap();
        assert!(first.orders.is_empty() && first.next.is_some(), "{first:?}");
        assert_eq!(first.examined, 0);
        assert_eq!(ids(&search_all(&store, "ABCd", 1).await), ["01999"]);
        assert_eq!(ids(&search_all(&store, "d", 7).await).len(), 1000);
    });
}

#[test]
fn large_steps_scan_dense_runs_and_use_the_index_between_them() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        unindexed_limit: 1000,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir.path(), &options).unwrap();
    // Dense runs (every order matches), then sparse stretches, some of
    // the orders indexed (bulk) and some not (inserted one by one).
    let item = |i: usize| match i {
        _ if i < 700 || (1500..1800).contains(&i) || i.is_multiple_of(97) => format!("Widget {i}"),
        _ => format!("gadget {i}"),
    };
    let all: Vec<Order> = (0..2000)
        .map(|i| order(&format!("{i:05}"), &[&item(i)]))
        .collect();
    rt.block_on(async {
        let (bulk, single): (Vec<Order>, Vec<Order>) =
            all.iter().cloned().partition(|o| !o.id.ends_with('3'));
        store.insert_many(bulk).await.unwrap();
        for o in single {
            store.insert(o, None).await.unwrap();
        }
        for query in ["widget", "WIDGET 1", "get 1", "dget"] {
            let want = brute_force(&all, query);
            for budget in [
                crate::store::embedded::search::DENSE_MIN_BUDGET,
                256,
                1024,
                5000,
            ] {
                let got = search_all(&store, query, budget).await;
                assert_eq!(ids(&got), want, "query {query:?}, budget {budget}");
            }
        }
    });
}
