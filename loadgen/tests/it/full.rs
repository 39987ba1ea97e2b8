//! `loadgen bench` started beside another load that keeps the server over
//! its limit: its first call (the reference answer every getOrder must
//! match) is refused at once, and is tried again rather than ending the run.

use std::time::Duration;

use loadgen::bench::{self, BenchConfig, Rpc};
use tokio_stream::wrappers::ReceiverStream;

use crate::server::InProcessServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_waits_for_a_full_server_to_take_its_reference_call() {
    let server = InProcessServer::start(&["--max-concurrent-calls", "1"]).await;
    let mut clients = server.clients(2).await;
    // The only slot, held by a processOrders stream until `hold` is dropped.
    let mut holder = clients.pop().unwrap();
    let (hold, ids) = tokio::sync::mpsc::channel::<String>(1);
    let held = tokio::spawn(async move { holder.process_orders(ReceiverStream::new(ids)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let config = BenchConfig {
        rpc: Rpc::Get,
        concurrency: 1,
        duration: Duration::from_millis(300),
        count: None,
        key: "101".into(),
        batch: 1,
        give_up: Duration::from_secs(10),
    };
    let run = tokio::spawn(async move { bench::run(clients, &config).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !run.is_finished(),
        "the run ended while the server refused its reference call: {:?}",
        run.await
    );
    drop(hold);
    held.await.unwrap().unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ends once the slot is free")
        .unwrap()
        .unwrap();
    assert!(report.ok > 0 && report.wrong == 0, "{report:?}");
    server.stop().await;
}
