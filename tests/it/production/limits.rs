//! Limits: request size, calls in flight (`--max-concurrent-calls`) and
//! call duration (`--max-call-seconds`).

use crate::support::raw;
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::seed;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use super::harness::{
    PROCESS_ORDERS, Prod, UPDATE_ORDERS, bounded, drain, health_check, open_process, order,
    string_value,
};

/// tonic rejects a request message over `--max-request-bytes` (4 MiB by
/// default) with OUT_OF_RANGE; the connection and server keep serving.
#[tokio::test]
async fn a_request_over_4_mib_is_out_of_range_and_the_server_keeps_serving() {
    let server = Prod::start(&[]);
    let mut client = server.client().await;
    let mut big = order("big", "Seoul");
    big.description = "x".repeat(4 * 1024 * 1024);
    assert!(big.encoded_len() > 4 * 1024 * 1024);

    let status = bounded("the oversized addOrder", client.add_order(big))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );

    let status = bounded(
        "the oversized getOrder",
        client.get_order("9".repeat(4 * 1024 * 1024 + 1)),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // Same connection, next call.
    let reply = client.get_order("101".to_owned()).await.unwrap();
    assert_eq!(reply.into_inner(), seed::order_101());
}

#[tokio::test]
async fn beyond_max_concurrent_calls_a_call_is_refused_at_once_until_one_ends() {
    let server = Prod::start(&["--max-concurrent-calls", "2"]);
    let channel = server.channel().await;
    let mut client = OrderManagementClient::new(channel.clone());
    let (tx1, mut held1) = open_process(&mut client).await;
    let (tx2, mut held2) = open_process(&mut client).await;

    // Refused, not queued behind calls that never end on their own.
    let status = bounded(
        "a call beyond the limit",
        client.get_order("101".to_owned()),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let (tx, rx) = mpsc::channel::<String>(1);
    let status = bounded(
        "a stream beyond the limit",
        client.process_orders(ReceiverStream::new(rx)),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    drop(tx);

    // Health probes still get an answer.
    assert_eq!(
        health_check(channel.clone(), "").await.unwrap(),
        ServingStatus::Serving
    );

    // End one held call: one slot frees up.
    tx1.send("101".into()).await.unwrap();
    drop(tx1);
    let (shipments, end) = drain(&mut held1).await;
    end.unwrap();
    assert_eq!(shipments.len(), 1);
    client.get_order("101".to_owned()).await.unwrap();

    // Both ended: two calls fit again.
    drop(tx2);
    drain(&mut held2).await.1.unwrap();
    let (_tx3, _held3) = open_process(&mut client).await;
    client.get_order("101".to_owned()).await.unwrap();
}

/// The server's own DEADLINE_EXCEEDED (seen with the raw client, which
/// enforces nothing itself) ends a call held open past --max-call-seconds,
/// on a bidirectional stream and on a client stream.
#[tokio::test]
async fn a_call_held_past_max_call_seconds_ends_with_deadline_exceeded() {
    let server = Prod::start(&["--max-call-seconds", "0.5"]);
    let request = raw::grpc_request(server.addr, PROCESS_ORDERS, &[]);
    let body = raw::frame(&string_value("101"));
    let response = bounded(
        "processOrders held open",
        raw::call(server.addr, request, &body, false),
    )
    .await
    .unwrap();
    assert_eq!(response.http_status, 200);
    assert_eq!(
        response.grpc_status(),
        Some(Code::DeadlineExceeded as i32),
        "{response:?}"
    );
    assert!(
        response.grpc_message().contains("deadline"),
        "{}",
        response.grpc_message()
    );

    let request = raw::grpc_request(server.addr, UPDATE_ORDERS, &[]);
    let body = raw::frame(&seed::order_101().encode_to_vec());
    let response = bounded(
        "updateOrders held open",
        raw::call(server.addr, request, &body, false),
    )
    .await
    .unwrap();
    assert_eq!(
        response.grpc_status(),
        Some(Code::DeadlineExceeded as i32),
        "{response:?}"
    );
}
