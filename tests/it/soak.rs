//! A short soak against the full production stack, in-process: random load
//! of all five RPCs with cancellations and deadlines, every answer checked,
//! and the final state read back. The long run is `make soak`.

use std::time::Duration;

use clap::Parser as _;
use order_management::server::{Config, Running, open_store};
use order_management::soak::{self, SoakConfig};
use tokio::sync::oneshot;

async fn soak_against(args: &[&str], seconds: u64) -> soak::SoakReport {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["server", "--data-dir", dir.path().to_str().unwrap()];
    argv.extend_from_slice(args);
    let config = Config::parse_from(argv);
    let store = open_store(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let running = Running::start(&config, store, listener).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(running.until(async {
        let _ = stopped.await;
    }));

    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            tonic::transport::Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let config = SoakConfig {
        connections: 4,
        workers_per_connection: 4,
        duration: Duration::from_secs(seconds),
        seed: 7,
        server_pid: None,
    };
    let report = soak::run(channels, &config).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_finds_no_unexpected_status_and_a_consistent_store() {
    let report = soak_against(&[], 3).await;
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert!(
        report.calls > 100,
        "too little load to mean anything: {}",
        report.render()
    );
    assert!(report.verified > 50, "{}", report.render());
    assert!(report.statuses.contains_key("Ok"), "{}", report.render());
}

/// Overload: far more concurrent calls than the limit. The excess is
/// refused with RESOURCE_EXHAUSTED (which the soak counts, but does not
/// count as wrong), and everything admitted is still right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_beyond_the_call_limit_is_refused_cleanly_and_stays_consistent() {
    let report = soak_against(&["--max-concurrent-calls", "2"], 3).await;
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert!(
        report
            .statuses
            .get("ResourceExhausted")
            .copied()
            .unwrap_or(0)
            > 0,
        "16 workers against a limit of 2 must see refusals: {}",
        report.render()
    );
    assert!(
        report.statuses.get("Ok").copied().unwrap_or(0) > 0,
        "{}",
        report.render()
    );
}
