//! The database stopped under load, then started again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use order_management::store::{OrderStore, PgOptions, PgStore, StoreError};

use super::harness::Postgres;
use super::order;

/// What one call under load answered.
#[derive(Debug)]
enum Outcome {
    Ok,
    Unavailable(String),
    Deadline,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_unavailable_and_a_restarted_one_serves_again() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("outage").await;
    let options = PgOptions {
        pool_size: 4,
        connect_timeout: Duration::from_secs(1),
        ..PgOptions::default()
    };
    let store = Arc::new(PgStore::connect(&url, options).await.unwrap());
    store
        .insert(order("base", &["widget"]), None)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicUsize::new(0));
    let deadline = Duration::from_millis(800);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop, next_id) =
                (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&next_id));
            tokio::spawn(async move {
                // (id written or None, outcome, how long it took)
                let mut seen: Vec<(Option<String>, Outcome, Duration)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let (id, result) = match w % 3 {
                        0 => {
                            let id = format!("load-{}", next_id.fetch_add(1, Ordering::Relaxed));
                            let r = store
                                .insert(order(&id, &["widget"]), Some(started + deadline))
                                .await;
                            (Some(id), r)
                        }
                        1 => (None, store.get("base").await.map(|_| ())),
                        _ => (None, store.search("widg", None, 64).await.map(|_| ())),
                    };
                    let outcome = match result {
                        Ok(()) => Outcome::Ok,
                        Err(StoreError::Unavailable(why)) => Outcome::Unavailable(why),
                        Err(StoreError::DeadlineExceeded) => Outcome::Deadline,
                        Err(other) => panic!("under an outage: {other:?} (want Unavailable)"),
                    };
                    let failed = !matches!(outcome, Outcome::Ok);
                    seen.push((id, outcome, started.elapsed()));
                    if failed {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(400)).await;
    let pg = Arc::new(pg);
    let stopper = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopper.stop())
        .await
        .unwrap();
    let stopped_at = Instant::now();

    // Down: a readiness probe says so at once.
    let probe = store.ping().await;
    assert!(
        matches!(probe, Err(ref e) if e.to_string().contains("unreachable")),
        "{probe:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let starter = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap();
    let restarted_at = Instant::now();
    // Back: the store recovers by itself (fresh connections from the pool).
    loop {
        if store.get("base").await.is_ok() {
            break;
        }
        assert!(
            restarted_at.elapsed() < Duration::from_secs(10),
            "no recovery"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_in = restarted_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unavailable = all
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Unavailable(_)))
        .count();
    let slowest = all.iter().map(|(_, _, took)| *took).max().unwrap();
    eprintln!(
        "outage: {} calls, {unavailable} unavailable, slowest {slowest:?}, \
         down for {:?}, recovered {recovered_in:?} after the restart",
        all.len(),
        restarted_at - stopped_at
    );
    assert!(unavailable > 0, "no call noticed the outage");
    for (_, outcome, _) in &all {
        if let Outcome::Unavailable(why) = outcome {
            assert!(
                why.contains("unreachable")
                    || why.contains("outcome of this write is unknown")
                    || why.contains("contention"),
                "{why}"
            );
        }
    }
    // Nobody hangs: writes end by their deadline (plus the COMMIT grace),
    // reads by the connect timeout (plus one retry).
    assert!(slowest < Duration::from_secs(3), "a call took {slowest:?}");

    // The last calls, after recovery, succeeded.
    let tail_ok = all
        .iter()
        .rev()
        .take(4)
        .filter(|(_, o, _)| matches!(o, Outcome::Ok))
        .count();
    assert!(tail_ok > 0, "{:?}", &all[all.len().saturating_sub(8)..]);

    // Acknowledged writes are there; writes refused by their deadline are not.
    for (id, outcome, _) in &all {
        let Some(id) = id else { continue };
        let stored = store.get(id).await.unwrap().is_some();
        match outcome {
            Outcome::Ok => assert!(stored, "{id} was acknowledged but is missing"),
            Outcome::Deadline => assert!(!stored, "{id} answered DeadlineExceeded but was stored"),
            // Failed before COMMIT: nothing written.
            Outcome::Unavailable(why) if why.contains("unreachable") => {
                assert!(!stored, "{id} answered {why:?} but was stored")
            }
            Outcome::Unavailable(_) => {} // unknown outcome: either, as the message says
        }
    }
}
