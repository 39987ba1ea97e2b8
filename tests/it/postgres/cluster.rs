//! Two server replicas on one PostgreSQL database, reached by the client
//! binary with `--server A,B`: writes through either are read through
//! either; one replica killed with SIGKILL, the client's next calls go to
//! the other, and nothing acknowledged is lost.

use super::harness::Postgres;
use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr, stdout};

/// `client --server SERVER add --id ID` of an order with the item "pixel".
fn add(server: &str, id: &str) -> std::process::Output {
    let args = [
        "add",
        "--id",
        id,
        "--item",
        "pixel",
        "--price",
        "1",
        "--destination",
        "Seoul",
    ];
    run_client(server, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_spreads_calls_over_replicas_and_survives_losing_one() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("cluster").await;
    let a = ServerProcess::start(&["--database-url", &url]).expect("replica A starts");
    let b = ServerProcess::start(&["--database-url", &url]).expect("replica B starts");
    let both = format!("{},{}", a.url, b.url);
    let b_url = b.url.clone();
    let result = tokio::task::spawn_blocking(move || {
        // Written through one replica, read through the other.
        let out = add(&a.url, "c-a");
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run_client(&b_url, &["get", "c-a"]);
        assert!(out.status.success(), "{}", stderr(&out));

        let mut acknowledged = vec!["c-a".to_owned()];
        let mut a = Some(a);
        for i in 0..20 {
            if i == 10 {
                // From here on every call is served by B: writes, reads, searches.
                a.take().unwrap().kill9();
            }
            let id = format!("c-{i}");
            let out = add(&both, &id);
            assert!(out.status.success(), "add {id}: {}", stderr(&out));
            acknowledged.push(id);
        }
        for id in &acknowledged {
            let out = run_client(&both, &["get", id]);
            assert!(
                out.status.success(),
                "get {id} after the kill: {}",
                stderr(&out)
            );
        }
        let out = run_client(&both, &["--json", "search", "pixel"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), 21, "{}", stdout(&out));
        b
    })
    .await;
    let _b = result.expect("the replica checks");
}
