//! `loadgen bench` against a server that goes away: it backs off between
//! reconnects instead of spinning through failed calls, and stops with a
//! message saying the server is unreachable.

use std::time::Duration;

use loadgen::bench::{self, BenchConfig, Rpc};

use crate::server::InProcessServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_backs_off_and_stops_when_the_server_stays_down() {
    let server = InProcessServer::start(&[]).await;
    let clients = server.clients(2).await;
    server.stop().await;
    let config = BenchConfig {
        rpc: Rpc::Search,
        concurrency: 2,
        duration: Duration::from_secs(120),
        count: None,
        key: "item".into(),
        batch: 1,
        give_up: Duration::from_secs(1),
    };
    let status = bench::run(clients, &config)
        .await
        .expect_err("a run against a stopped server fails");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(message.contains("unreachable for"), "{message}");
    // "(N calls failed": with backoff, a handful per worker, not millions.
    let failed: u64 = message
        .split_once('(')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in: {message}"));
    assert!(
        (1..200).contains(&failed),
        "{failed} failed calls: {message}"
    );
}
