//! Our Rust client side (tonic, the generated client and raw calls) against
//! the Python grpcio peer server, for what the `client` CLI cannot express:
//! custom metadata, cancelling a server stream, a deadline on a stream that
//! has started, unknown methods, the seed client's Order-for-StringValue
//! request, and a processOrders answered while the client is still sending.
//!
//! Every test is `#[ignore]`: they need the peer running. tests/interop/run.sh
//! starts it (`peer_server.py --test-hooks`) and runs
//! `INTEROP_PEER_URL=http://127.0.0.1:PORT cargo test --test it -- --ignored interop_python_peer::`.
//! Run by hand without INTEROP_PEER_URL, they panic rather than pass.

use std::future::Future;
use std::time::Duration;

use order_management::pb::order_management_client::OrderManagementClient;
use order_management::{Order, seed};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, IntoRequest, Status};

type Client = OrderManagementClient<Channel>;

/// The peer's test hook: a searchOrders that sends a copy of order 101 every
/// 100 ms for 30 s (tests/interop/peer_server.py).
const SLOW_QUERY: &str = "__interop_slow__";

/// No test may hang: each one is over within this.
const TEST_LIMIT: Duration = Duration::from_secs(30);

fn peer_url() -> String {
    std::env::var("INTEROP_PEER_URL").unwrap_or_else(|_| {
        panic!(
            "INTEROP_PEER_URL is not set: these tests need the Python peer server \
             running; run tests/interop/run.sh (or `make interop`)"
        )
    })
}

async fn channel() -> Channel {
    let url = peer_url();
    Channel::from_shared(url.clone())
        .unwrap_or_else(|e| panic!("INTEROP_PEER_URL={url:?} is not a URL: {e}"))
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the Python peer at {url}: {e}"))
}

async fn client() -> Client {
    OrderManagementClient::new(channel().await)
}

/// Runs a test body within [`TEST_LIMIT`].
async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("the test took too long");
}

/// A unary call to any path with prost messages, as a hand-written client would.
async fn raw_unary<Req, Resp>(path: &'static str, request: Req) -> Result<Resp, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel().await);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(path);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let mut request = request.into_request();
    request.set_timeout(Duration::from_secs(10));
    grpc.unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// How the peer's searchOrders streams ended: `(outcome, sent)` for the
/// streams that carried this `x-request-id`.
async fn stream_ends(request_id: &str) -> Vec<(String, u64)> {
    let json: String = raw_unary("/interop.PeerControl/Events", String::new())
        .await
        .expect("the peer runs with --test-hooks");
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    events
        .iter()
        .filter(|e| e["rpc"] == "searchOrders" && e["request_id"] == request_id)
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_owned(),
                e["sent"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits (at most 10 s) for the peer to report how that stream ended.
async fn wait_for_stream_end(request_id: &str) -> (String, u64) {
    for _ in 0..100 {
        if let Some(end) = stream_ends(request_id).await.pop() {
            return end;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the peer never saw the end of the stream {request_id}");
}

fn with_request_id<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut request = message.into_request();
    request
        .metadata_mut()
        .insert("x-request-id", MetadataValue::try_from(request_id).unwrap());
    request.set_timeout(Duration::from_secs(10));
    request
}

/// The seed's Python client sends `Order(id='101')` to getOrder; a Rust
/// client sending an Order there gets order 101 from the Python server too.
#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn seed_client_order_request_gets_order_101_from_the_python_server() {
    bounded(async {
        let request = Order {
            id: "101".into(),
            ..Order::default()
        };
        let reply: Order = raw_unary("/ecommerce.OrderManagement/getOrder", request)
            .await
            .unwrap();
        assert_eq!(reply, seed::order_101());
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn custom_metadata_reaches_the_python_server() {
    bounded(async {
        let mut client = client().await;

        // Unary: x-request-id comes back in the headers, and in the trailers
        // (tonic merges them into the unary response's metadata) with a
        // binary header beside it.
        let mut request = with_request_id("101".to_owned(), "rs-req-unary-7");
        let trace: BinaryMetadataValue = MetadataValue::from_bytes(&[0, 1, 0x7f, 0xfe, 0xff]);
        request.metadata_mut().insert_bin("x-trace-bin", trace);
        let response = client.get_order(request).await.unwrap();
        let metadata = response.metadata();
        assert_eq!(metadata.get("x-request-id").unwrap(), "rs-req-unary-7");
        assert_eq!(metadata.get("x-echo-request-id").unwrap(), "rs-req-unary-7");
        assert_eq!(
            metadata
                .get_bin("x-echo-trace-bin")
                .unwrap()
                .to_bytes()
                .unwrap(),
            &[0, 1, 0x7f, 0xfe, 0xff][..]
        );
        assert_eq!(response.into_inner(), seed::order_101());

        // Server streaming: in the headers, then in the trailers.
        let request = with_request_id("Item - A".to_owned(), "rs-req-stream-8");
        let response = client.search_orders(request).await.unwrap();
        assert_eq!(
            response.metadata().get("x-request-id").unwrap(),
            "rs-req-stream-8"
        );
        let mut stream = response.into_inner();
        let mut ids = Vec::new();
        while let Some(order) = stream.message().await.unwrap() {
            ids.push(order.id);
        }
        assert_eq!(ids, ["101"]);
        let trailers = stream.trailers().await.unwrap().expect("trailers");
        assert_eq!(
            trailers.get("x-echo-request-id").unwrap(),
            "rs-req-stream-8"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn cancelling_a_server_stream_reaches_the_python_server() {
    bounded(async {
        let mut client = client().await;
        let request_id = "rs-req-cancel-1";
        let request = with_request_id(SLOW_QUERY.to_owned(), request_id);
        let mut stream = client.search_orders(request).await.unwrap().into_inner();
        for n in 1..=2 {
            let order = stream.message().await.unwrap().expect("an order");
            assert_eq!(order.id, format!("slow-{n}"));
        }
        drop(stream); // RST_STREAM(CANCEL): the call is cancelled
        let (outcome, sent) = wait_for_stream_end(request_id).await;
        assert_eq!(outcome, "cancelled");
        assert!(sent < 10, "the peer kept sending after the cancel: {sent}");
        // The connection is still good for other calls.
        let order = client.get_order("101".to_owned()).await.unwrap();
        assert_eq!(order.into_inner(), seed::order_101());
    })
    .await;
}

/// The stream has started (headers and orders received) when its deadline
/// passes: the Python server ends it with DEADLINE_EXCEEDED in the trailers.
#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn a_deadline_that_expires_on_a_stream_is_deadline_exceeded() {
    bounded(async {
        let mut client = client().await;
        let request_id = "rs-req-deadline-1";
        let mut request = with_request_id(SLOW_QUERY.to_owned(), request_id);
        request.set_timeout(Duration::from_millis(500));
        let started = tokio::time::Instant::now();
        let mut stream = client.search_orders(request).await.unwrap().into_inner();
        let mut received = 0;
        let status = loop {
            match stream.message().await {
                Ok(Some(_)) => received += 1,
                Ok(None) => panic!("the stream ended as if complete"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(
            (1..=10).contains(&received),
            "{received} orders before the deadline"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let (outcome, _) = wait_for_stream_end(request_id).await;
        assert_eq!(outcome, "deadline");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn an_unknown_method_is_unimplemented() {
    bounded(async {
        let err =
            raw_unary::<String, String>("/ecommerce.OrderManagement/deleteOrder", "101".to_owned())
                .await
                .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
        let err =
            raw_unary::<String, String>("/ecommerce.NoSuchService/getOrder", "101".to_owned())
                .await
                .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn status_messages_with_non_ascii_text_arrive_intact() {
    bounded(async {
        let mut client = client().await;
        let odd = "주문-없음 ✓ ünïcødé 🍜 100%";
        let err = client.get_order(odd.to_owned()).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), format!("Order : {odd} Not Found."));

        let err = client
            .add_order(Order {
                id: "주문-ø".into(),
                ..Order::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "invalid order 주문-ø: items: at least one item is required"
        );
    })
    .await;
}

/// processOrders on the Python server is a real bidirectional stream: the
/// first batch's shipment arrives while our request stream is still open.
#[tokio::test]
#[ignore = "needs the Python peer: tests/interop/run.sh"]
async fn process_orders_answers_while_the_client_is_still_sending() {
    bounded(async {
        let mut client = client().await;
        for i in 1..=4 {
            let order = Order {
                id: format!("rs-bidi-{i}"),
                items: vec!["item".into()],
                price: 1.0,
                destination: if i % 2 == 0 { "Busan" } else { "Seoul" }.into(),
                ..Order::default()
            };
            client.add_order(order).await.unwrap();
        }
        let (tx, rx) = mpsc::channel::<String>(8);
        let mut replies = client
            .process_orders(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        for i in 1..=3 {
            tx.send(format!("rs-bidi-{i}")).await.unwrap();
        }
        let first = tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("the first batch arrives before the client ends its stream")
            .unwrap()
            .unwrap();
        assert_eq!(first.id, "cmb - Seoul");
        let ids: Vec<&str> = first.orders_list.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["rs-bidi-1", "rs-bidi-3"]);
        tx.send("rs-bidi-4".into()).await.unwrap();
        drop(tx);
        let mut rest = Vec::new();
        while let Some(s) = replies.message().await.unwrap() {
            let ids: Vec<String> = s.orders_list.into_iter().map(|o| o.id).collect();
            rest.push(format!("{} {ids:?} {}", s.id, s.status));
        }
        assert_eq!(
            rest,
            [
                r#"cmb - Busan ["rs-bidi-2"] Processed!"#,
                r#"cmb - Busan ["rs-bidi-4"] Processed!"#
            ]
        );
    })
    .await;
}
