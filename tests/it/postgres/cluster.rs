//! Two server replicas on one PostgreSQL database, reached by the client
//! binary with `--server A,B`: writes through either are read through
//! either; one replica killed with SIGKILL, the client's next calls go to
//! the other, and nothing acknowledged is lost.

use super::harness::Postgres;
use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr, stdout};

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
        let out = run_client(
            &a.url,
            &[
                "add",
                "--id",
                "c-a",
                "--item",
                "x",
                "--price",
                "1",
                "--destination",
                "Seoul",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run_client(&b_url, &["get", "c-a"]);
        assert!(out.status.success(), "{}", stderr(&out));

        let mut acknowledged = vec!["c-a".to_owned()];
        for i in 0..10 {
            let id = format!("c-{i}");
            let out = run_client(
                &both,
                &[
                    "add",
                    "--id",
                    &id,
                    "--item",
                    "pixel",
                    "--price",
                    "1",
                    "--destination",
                    "Seoul",
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            acknowledged.push(id);
        }
        a.kill9();
        // Every call after the kill is served by B: reads, searches, writes.
        for i in 10..20 {
            let id = format!("c-{i}");
            let out = run_client(
                &both,
                &[
                    "add",
                    "--id",
                    &id,
                    "--item",
                    "pixel",
                    "--price",
                    "1",
                    "--destination",
                    "Seoul",
                ],
            );
            assert!(out.status.success(), "add after the kill: {}", stderr(&out));
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
        assert_eq!(stdout(&out).lines().count(), 20, "{}", stdout(&out));
        b
    })
    .await;
    let _b = result.expect("the replica checks");
}
