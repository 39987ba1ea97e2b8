//! Panics: a panicking handler or response stream ends its call with
//! INTERNAL and is logged with the call's request id; the server keeps
//! serving.

use std::sync::Arc;

use crate::support::store::{Call, Hooked};
use order_management::seed;
use order_management::store::MemoryStore;
use tonic::Code;

use super::harness::{
    GET_ORDER, LogCapture, Prod, call_line, drain, log_field, log_str, open_process,
    with_request_id,
};

const GET_PANIC: &str = "PanickyStore: get(boom) panics";
const SCAN_PANIC: &str = "PanickyStore: scan panics";

/// A server whose store panics on `get("boom")` and on every `scan`.
fn panicky_server(log: &LogCapture) -> Prod {
    let orders = Arc::new(MemoryStore::with_orders([seed::order_101()]));
    let store = Hooked::new(orders).before(|call| match call {
        Call::Get("boom") => panic!("{GET_PANIC}"),
        Call::Search { .. } => panic!("{SCAN_PANIC}"),
        _ => Ok(()),
    });
    // One call at a time: a call whose panic leaked its slot would make the
    // next call RESOURCE_EXHAUSTED.
    Prod::logging_to(&["--max-concurrent-calls", "1"], Arc::new(store), log)
}

#[tokio::test]
async fn a_panicking_handler_is_internal_logged_and_the_server_keeps_serving() {
    let log = LogCapture::default();
    let server = panicky_server(&log);
    let mut client = server.client().await;
    for attempt in ["panic-test-1", "panic-test-2"] {
        let status = client
            .get_order(with_request_id("boom".to_owned(), attempt))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert!(
            !status.message().contains("PanickyStore"),
            "no internals leak"
        );
        assert_eq!(
            client
                .get_order("101".to_owned())
                .await
                .unwrap()
                .into_inner(),
            seed::order_101()
        );
    }

    let lines = log.lines();
    let panicked = lines
        .iter()
        .find(|l| {
            log_field(l, "panic").and_then(|v| v.as_str()) == Some(GET_PANIC)
                && log_field(l, "request_id").and_then(|v| v.as_str()) == Some("panic-test-1")
        })
        .expect("the handler's panic is logged with its call's request id");
    assert_eq!(log_str(panicked, "level"), "ERROR");
    let call = call_line(&lines, "panic-test-1");
    assert_eq!(log_str(call, "status"), "Internal");
    assert_eq!(log_str(call, "method"), GET_ORDER);
}

#[tokio::test]
async fn a_panicking_response_stream_ends_with_internal_not_a_clean_end() {
    let log = LogCapture::default();
    let server = panicky_server(&log);
    let mut client = server.client().await;

    // searchOrders: the store's scan panics inside the stream's producer.
    let mut search = client.search_orders("item".to_owned()).await.unwrap();
    let (found, end) = drain(search.get_mut()).await;
    assert!(found.is_empty());
    let status = end.expect_err("a panicked search must not end like an empty result");
    assert_eq!(status.code(), Code::Internal, "{status:?}");

    // processOrders: get(boom) panics mid-stream.
    let (tx, mut shipments) = open_process(&mut client).await;
    tx.send("101".into()).await.unwrap();
    tx.send("boom".into()).await.unwrap();
    let (got, end) = drain(&mut shipments).await;
    assert!(got.is_empty(), "{got:?}");
    let status = end.expect_err("a panicked processOrders must not end cleanly");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    drop(tx);

    // Still serving, and neither call kept its admission slot.
    assert_eq!(
        client
            .get_order("101".to_owned())
            .await
            .unwrap()
            .into_inner(),
        seed::order_101()
    );
    let lines = log.lines();
    for what in [SCAN_PANIC, GET_PANIC] {
        assert!(
            lines
                .iter()
                .any(|l| log_field(l, "panic").and_then(|v| v.as_str()) == Some(what)),
            "{what} is not in the log"
        );
    }
}
