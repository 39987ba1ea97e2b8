//! Observability: JSON log lines and request ids.

use std::net::SocketAddr;

use order_management::pb::order_management_client::OrderManagementClient;
use tonic::Code;

use super::harness::{
    GET_ORDER, Prod, binary, call_line, connect, drain, log_field, log_str, open_process,
    with_request_id,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_has_one_object_per_line_and_a_line_per_call() {
    let mut server = binary(&["--in-memory", "--log-format", "json"]);
    let port = server.addr().port();
    let mut client = OrderManagementClient::new(connect(&server.url).await);

    let reply = client
        .get_order(with_request_id("101".to_owned(), "json-test-get-101"))
        .await
        .unwrap();
    assert_eq!(reply.get_ref().id, "101");
    assert_eq!(
        reply.metadata().get("x-request-id").unwrap(),
        "json-test-get-101"
    );

    // No x-request-id: the server makes one and echoes it.
    let missing = client.get_order("102".to_owned()).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let generated = missing
        .metadata()
        .get("x-request-id")
        .expect("a generated request id")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!generated.is_empty());

    let mut search = client
        .search_orders(with_request_id("item".to_owned(), "json-test-search"))
        .await
        .unwrap();
    assert_eq!(
        search.metadata().get("x-request-id").unwrap(),
        "json-test-search"
    );
    let (found, end) = drain(search.get_mut()).await;
    end.unwrap();
    assert_eq!(found.len(), 1);
    drop(client);

    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));
    let rest = server.rest_of_log();
    let text = format!("{}{rest}", server.startup);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect();
    assert!(lines.len() >= 4, "{text}");

    let get = call_line(&lines, "json-test-get-101");
    assert_eq!(log_str(get, "method"), GET_ORDER);
    assert_eq!(log_str(get, "status"), "Ok");
    assert_eq!(log_str(get, "order_id"), "101");
    assert!(log_field(get, "duration_us").unwrap().is_u64(), "{get}");
    let peer: SocketAddr = log_str(get, "peer").parse().expect("peer is an address");
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    assert_ne!(peer.port(), port);

    let not_found = call_line(&lines, &generated);
    assert_eq!(log_str(not_found, "method"), GET_ORDER);
    assert_eq!(log_str(not_found, "status"), "NotFound");
    assert_eq!(log_str(not_found, "order_id"), "102");

    let search = call_line(&lines, "json-test-search");
    assert_eq!(
        log_str(search, "method"),
        "/ecommerce.OrderManagement/searchOrders"
    );
    assert_eq!(log_str(search, "status"), "Ok");
}

#[tokio::test]
async fn request_ids_are_echoed_and_failed_calls_without_one_get_one() {
    let server = Prod::start(&[]);
    let mut client = server.client().await;

    let echoed = |metadata: &tonic::metadata::MetadataMap| {
        metadata
            .get("x-request-id")
            .expect("x-request-id in the response")
            .to_str()
            .unwrap()
            .to_owned()
    };
    // The caller's id comes back on successes and errors alike.
    let ok = client
        .get_order(with_request_id("101".to_owned(), "abc-123"))
        .await
        .unwrap();
    assert_eq!(echoed(ok.metadata()), "abc-123");
    let err = client
        .get_order(with_request_id("404".to_owned(), "abc-404"))
        .await
        .unwrap_err();
    assert_eq!(echoed(err.metadata()), "abc-404");

    // Without one, a success carries none...
    let ok = client.get_order("101".to_owned()).await.unwrap();
    assert_eq!(ok.metadata().get("x-request-id"), None);
    // ...and an error gets a fresh one, different each time: in the headers
    // of a trailers-only error...
    let first = echoed(
        client
            .get_order("404".to_owned())
            .await
            .unwrap_err()
            .metadata(),
    );
    let second = echoed(
        client
            .get_order("404".to_owned())
            .await
            .unwrap_err()
            .metadata(),
    );
    assert!(uuid::Uuid::parse_str(&first).is_ok(), "{first}");
    assert_ne!(first, second, "each call gets its own id");

    // ...and in the trailers of a stream that fails after its headers.
    let (tx, mut stream) = open_process(&mut client).await;
    tx.send("101".to_owned()).await.unwrap();
    tx.send("no-such-order".to_owned()).await.unwrap();
    drop(tx);
    let (_, end) = drain(&mut stream).await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let in_trailers = echoed(status.metadata());
    assert!(uuid::Uuid::parse_str(&in_trailers).is_ok(), "{in_trailers}");

    // An unusable caller id (a space in it, or too long) counts as none.
    for bad in ["has space", &"x".repeat(129)] {
        let err = client
            .get_order(with_request_id("404".to_owned(), bad))
            .await
            .unwrap_err();
        let id = echoed(err.metadata());
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} -> {id}");
    }
}
