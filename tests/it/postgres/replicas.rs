//! Two `PgStore`s on one database, as two server replicas.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use order_management::store::{OrderStore, PgOptions, PgStore, StoreError};

use super::harness::Postgres;
use super::{fresh, order};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_inserting_one_id_get_exactly_one_ok() {
    let Some(pg) = Postgres::start() else { return };
    let (url, a) = fresh(&pg, "race").await;
    let b = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    for i in 0..100 {
        let id = format!("race-{i}");
        let (ra, rb) = tokio::join!(
            a.insert(order(&id, &["from a"]), None),
            b.insert(order(&id, &["from b"]), None)
        );
        let winner = match (&ra, &rb) {
            (Ok(()), Err(StoreError::AlreadyExists(x))) if *x == id => "from a",
            (Err(StoreError::AlreadyExists(x)), Ok(())) if *x == id => "from b",
            other => panic!("{id}: want exactly one Ok and one AlreadyExists, got {other:?}"),
        };
        assert_eq!(a.get(&id).await.unwrap().unwrap().items, [winner]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_through_two_replicas_are_serial() {
    let Some(pg) = Postgres::start() else { return };
    let (url, a) = fresh(&pg, "updates").await;
    let b = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    let stores = [Arc::new(a), Arc::new(b)];
    let ids = ["k0", "k1", "k2", "k3"];
    for id in ids {
        stores[0].insert(order(id, &["start"]), None).await.unwrap();
    }

    // A reader that sees all four rows in one snapshot: they must always
    // agree (each update is atomic and isolated).
    let done = Arc::new(AtomicBool::new(false));
    let observer = pg.connect("updates").await;
    let reader = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut looks = 0;
            while !done.load(Ordering::Relaxed) {
                let rows = observer
                    .query(
                        "SELECT items FROM orders WHERE id LIKE 'k%' ORDER BY id",
                        &[],
                    )
                    .await
                    .unwrap();
                let items: Vec<Vec<String>> = rows.iter().map(|r| r.get(0)).collect();
                assert!(
                    items.windows(2).all(|w| w[0] == w[1]),
                    "a half-applied update is visible: {items:?}"
                );
                looks += 1;
            }
            looks
        })
    };

    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&stores[w % 2]);
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(w as u64);
                for n in 0..25 {
                    let value = format!("w{w}-{n}");
                    let mut batch: Vec<_> = ids.iter().map(|id| order(id, &[&value])).collect();
                    // Each call names the rows in its own order: locking in
                    // request order would deadlock; the store locks in id order.
                    rng.shuffle(&mut batch);
                    store.update_all(batch, None).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);

    let mut finals = Vec::new();
    for id in ids {
        finals.push(stores[1].get(id).await.unwrap().unwrap().items);
    }
    assert!(
        finals.windows(2).all(|w| w[0] == w[1]),
        "not the result of any serial order: {finals:?}"
    );
    assert_ne!(finals[0], ["start"]);
}
