//! Graceful shutdown of the real binary on SIGTERM.

use std::time::Duration;

use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr};
use order_management::pb::order_management_client::OrderManagementClient;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::harness::{binary, bounded, connect, drain, ids, next_health, open_process, order};

/// Watches the server's overall health on `channel`; returns once SERVING.
async fn watch_health(channel: &Channel) -> Streaming<HealthCheckResponse> {
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_health(&mut watch).await, ServingStatus::Serving);
    watch
}

/// Waits for NOT_SERVING on `watch`. The binary may repeat SERVING first: it
/// serves calls before `Running::until` (re)sets the statuses (see
/// `health_is_serving_as_soon_as_calls_are_served`).
async fn until_not_serving(watch: &mut Streaming<HealthCheckResponse>) {
    loop {
        match next_health(watch).await {
            ServingStatus::NotServing => return,
            ServingStatus::Serving => continue,
            other => panic!("unexpected health status {other:?}"),
        }
    }
}

/// SIGTERM, then waits until the server says it is shutting down (health
/// NOT_SERVING on `watch`, which is then closed so it holds nothing up).
async fn sigterm(server: &ServerProcess, mut watch: Streaming<HealthCheckResponse>) {
    server.signal("TERM");
    until_not_serving(&mut watch).await;
}

/// (a) A processOrders stream opened before SIGTERM keeps going: ids sent
/// after the signal are processed, every shipment arrives, the call ends
/// OK, and the process then exits 0 without waiting out the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish_then_exits_0() {
    let mut server = binary(&["--in-memory", "--shutdown-grace", "60"]);
    let channel = connect(&server.url).await;
    let mut client = OrderManagementClient::new(channel.clone());
    for o in [
        order("102", "Seoul"),
        order("103", "Busan"),
        order("104", "Seoul"),
    ] {
        client.add_order(o).await.unwrap();
    }
    let watch = watch_health(&channel).await;

    let (tx, mut shipments) = open_process(&mut client).await;
    tx.send("101".into()).await.unwrap();
    sigterm(&server, watch).await;

    for id in ["102", "103", "104"] {
        tx.send(id.into()).await.unwrap();
    }
    drop(tx); // the client closes its side
    let (shipments, end) = drain(&mut shipments).await;
    end.expect("the stream opened before SIGTERM ends OK");
    let got: Vec<(String, Vec<&str>)> = shipments.iter().map(|s| (s.id.clone(), ids(s))).collect();
    assert_eq!(
        got,
        [
            ("cmb - Seoul".to_owned(), vec!["101", "102"]),
            ("cmb - Busan".to_owned(), vec!["103"]),
            ("cmb - Seoul".to_owned(), vec!["104"]),
        ]
    );
    drop(client);
    drop(channel);

    // wait_exit gives up after 30 s, well before the 60 s grace period.
    assert_eq!(server.wait_exit().code(), Some(0));
    let log = server.rest_of_log();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("after the grace period"), "{log}");
}

/// (b) A stream still open when the grace period ends gets UNAVAILABLE
/// (after what was already sent), not a silent cut; the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_open_past_the_grace_period_ends_with_unavailable_then_exit_0() {
    let mut server = binary(&["--in-memory", "--shutdown-grace", "1", "--batch-size", "1"]);
    let channel = connect(&server.url).await;
    let mut client = OrderManagementClient::new(channel.clone());
    let watch = watch_health(&channel).await;

    let (tx, mut shipments) = open_process(&mut client).await;
    tx.send("101".into()).await.unwrap();
    let first = bounded("the first shipment", shipments.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&first), ["101"]);
    sigterm(&server, watch).await;

    // Keep the request side open past the grace period.
    let (rest, end) = drain(&mut shipments).await;
    assert!(rest.is_empty(), "{rest:?}");
    let status = end.expect_err("a stream cut at the end of the grace period");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("shutting down"),
        "{}",
        status.message()
    );
    drop(tx);

    assert_eq!(server.wait_exit().code(), Some(0));
    let log = server.rest_of_log();
    assert!(log.contains("stopped after the grace period"), "{log}");
}

/// (c) Once shutdown has begun the listener is closed: new connections are
/// refused, while a call in flight is still served to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_new_connections_are_refused() {
    let mut server = binary(&["--in-memory", "--shutdown-grace", "60"]);
    let addr = server.addr();
    let channel = connect(&server.url).await;
    let mut client = OrderManagementClient::new(channel.clone());
    let watch = watch_health(&channel).await;
    let (tx, mut shipments) = open_process(&mut client).await;
    sigterm(&server, watch).await;

    // The listener closes right after health flips; a connection that
    // raced in before that is dropped here and the attempt repeated.
    bounded("a refused connection", async {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => panic!("unexpected connect error: {e}"),
                Ok(raced) => drop(raced),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let out = run_client(&server.url, &["health"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));

    // The call in flight is still served.
    tx.send("101".into()).await.unwrap();
    drop(tx);
    let (shipments, end) = drain(&mut shipments).await;
    end.unwrap();
    assert_eq!(shipments.len(), 1);
    assert_eq!(ids(&shipments[0]), ["101"]);
    drop(client);
    drop(channel);
    assert_eq!(server.wait_exit().code(), Some(0));
}

/// A health Watch is a stream too: one still open when the grace period
/// ends must end with UNAVAILABLE like the others, not be cut silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_watch_open_past_the_grace_period_ends_with_unavailable() {
    let mut server = binary(&["--in-memory", "--shutdown-grace", "1"]);
    let channel = connect(&server.url).await;
    let mut watch = watch_health(&channel).await;
    server.signal("TERM");
    until_not_serving(&mut watch).await;

    let end = bounded("the health watch", watch.message()).await;
    let status = end.expect_err("a watch cut at the end of the grace period");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(server.wait_exit().code(), Some(0));
}
