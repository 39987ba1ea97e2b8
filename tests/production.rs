//! The production server features: health, reflection, graceful shutdown,
//! logs and request ids, bearer auth, limits, gzip, panics, rich errors and
//! configuration.
//!
//! Most tests run the production stack in-process (`Running::start`, the
//! same services and layers the binary serves) on its own thread and
//! runtime, with a oneshot as the shutdown signal; what only a process
//! shows (signals, exit status, the JSON log, environment variables) runs
//! the real binaries. TLS is in tests/tls.rs.
//!
//! Async tests that block on a child process use a multi-thread runtime:
//! the client connections still need a worker while the test thread waits.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use clap::{CommandFactory as _, Parser as _};
use common::process::ServerProcess;
use common::{TestServer, raw, run_client, stderr, stdout};
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::server::{Config, Running};
use order_management::store::{MemoryStore, OrderStore, SearchPage, StoreError};
use order_management::{CombinedShipment, Order, seed};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::StatusExt as _;

type Client = OrderManagementClient<Channel>;

const SERVICE: &str = "ecommerce.OrderManagement";
const GET_ORDER: &str = "/ecommerce.OrderManagement/getOrder";
const PROCESS_ORDERS: &str = "/ecommerce.OrderManagement/processOrders";
const UPDATE_ORDERS: &str = "/ecommerce.OrderManagement/updateOrders";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// The production stack (`Running`) in-process, on an ephemeral loopback
/// port, on its own thread and runtime (so sync tests can run the client
/// binary against it). Shut down with [`Prod::shutdown`], the stand-in for
/// SIGTERM; `Running::until`'s result is available from [`Prod::stopped`].
struct Prod {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    result: std::sync::mpsc::Receiver<Result<(), String>>,
}

impl Prod {
    /// Server flags as on the command line; order 101 in a memory store.
    fn start(args: &[&str]) -> Self {
        Self::with_store(
            args,
            Arc::new(MemoryStore::with_orders([seed::order_101()])),
        )
    }

    fn with_store(args: &[&str], store: Arc<dyn OrderStore>) -> Self {
        let config = Config::try_parse_from(
            ["server", "--listen", "127.0.0.1:0"]
                .iter()
                .chain(args)
                .copied(),
        )
        .expect("valid server flags");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
        let (result_tx, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("server runtime");
            let outcome = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let running = Running::start(&config, store, listener).await?;
                // `until` polls the signal only once the health statuses are
                // set: from then on the server is fully up.
                running
                    .until(async move {
                        let _ = ready_tx.send(());
                        let _ = stopped.await;
                    })
                    .await
            });
            let _ = result_tx.send(outcome);
        });
        if ready.recv_timeout(Duration::from_secs(30)).is_err() {
            let why = result.try_recv();
            panic!("the in-process server did not start: {why:?}");
        }
        Self {
            addr,
            stop: Some(stop),
            result,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to the in-process server")
    }

    async fn client(&self) -> Client {
        OrderManagementClient::new(self.channel().await)
    }

    /// Begins the graceful shutdown, as SIGTERM does for the binary.
    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// What `Running::until` returned (what the binary turns into its exit
    /// status); waits a bounded time.
    fn stopped(&self) -> Result<(), String> {
        self.result
            .recv_timeout(Duration::from_secs(30))
            .expect("the server did not stop")
    }
}

impl Drop for Prod {
    /// Starts a shutdown without waiting for it (an async test's own
    /// connections only close once its runtime runs again).
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Fails the test instead of hanging when `future` does not finish.
async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

async fn connect(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

fn order(id: &str, destination: &str) -> Order {
    Order {
        id: id.into(),
        items: vec![format!("item of {id}")],
        description: format!("order {id}"),
        price: 10.0,
        destination: destination.into(),
    }
}

fn with_request_id<T>(message: T, id: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

async fn health_check(channel: Channel, service: &str) -> Result<ServingStatus, Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(reply.status).unwrap())
}

async fn next_health(watch: &mut Streaming<HealthCheckResponse>) -> ServingStatus {
    let reply = bounded("a health update", watch.message())
        .await
        .expect("health watch")
        .expect("the health watch ended");
    ServingStatus::try_from(reply.status).unwrap()
}

/// A processOrders call whose request stream the test feeds by hand.
async fn open_process(client: &mut Client) -> (mpsc::Sender<String>, Streaming<CombinedShipment>) {
    let (tx, rx) = mpsc::channel(16);
    let response = bounded(
        "processOrders response headers",
        client.process_orders(ReceiverStream::new(rx)),
    )
    .await
    .expect("processOrders admitted");
    (tx, response.into_inner())
}

/// Reads a response stream to its end: the messages, then how it ended.
async fn drain<T>(stream: &mut Streaming<T>) -> (Vec<T>, Result<(), Status>) {
    let mut messages = Vec::new();
    let end = bounded("the response stream", async {
        loop {
            match stream.message().await {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => return Ok(()),
                Err(status) => return Err(status),
            }
        }
    })
    .await;
    (messages, end)
}

fn ids(shipment: &CombinedShipment) -> Vec<&str> {
    shipment.orders_list.iter().map(|o| o.id.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Health (grpc.health.v1)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn health_is_serving_for_the_server_and_the_service() {
    let server = Prod::start(&[]);
    let channel = server.channel().await;
    for service in ["", SERVICE] {
        assert_eq!(
            health_check(channel.clone(), service).await.unwrap(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = health_check(channel, "no.such.Service").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

/// From the moment the server answers order calls, health must say
/// SERVING for the service, not "unknown service". Regression: `start` used
/// to serve before `until` registered the statuses, so a probe right after
/// "listening on" could get NOT_FOUND (about 1 start in 30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_as_soon_as_calls_are_served() {
    let config = Config::try_parse_from(["server", "--listen", "127.0.0.1:0"]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(MemoryStore::with_orders([seed::order_101()]));
    let running = Running::start(&config, store, listener).await.unwrap();

    let channel = connect(&format!("http://{addr}")).await;
    let mut client = OrderManagementClient::new(channel.clone());
    client
        .get_order("101".to_owned())
        .await
        .expect("serving calls");
    let status = health_check(channel, SERVICE).await;
    assert_eq!(
        status.as_ref().map_err(Status::code),
        Ok(&ServingStatus::Serving),
        "{status:?}"
    );
    drop(running);
}

#[test]
fn client_health_prints_serving_and_exits_0() {
    let server = Prod::start(&[]);
    for args in [&["health"][..], &["health", SERVICE]] {
        let out = run_client(&server.url(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "SERVING\n", "{args:?}");
    }
    let out = run_client(&server.url(), &["health", "no.such.Service"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// (d) An existing connection sees NOT_SERVING as soon as shutdown begins,
/// while the grace period is still running (the watch itself is a call in
/// flight, so the server is still in its grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_not_serving_as_soon_as_shutdown_begins() {
    let mut server = Prod::start(&["--shutdown-grace", "60"]);
    let channel = server.channel().await;
    let mut watches = Vec::new();
    for service in ["", SERVICE] {
        let mut watch = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next_health(&mut watch).await, ServingStatus::Serving);
        watches.push(watch);
    }

    server.shutdown();
    for watch in &mut watches {
        assert_eq!(next_health(watch).await, ServingStatus::NotServing);
    }
    // Still within the grace period: `until` has not returned.
    assert!(
        server.result.try_recv().is_err(),
        "the server stopped while calls were in flight"
    );

    drop(watches);
    assert_eq!(server.stopped(), Ok(()));
}

// ---------------------------------------------------------------------------
// Reflection (grpc.reflection.v1 and v1alpha), with tonic-reflection's own
// generated clients
// ---------------------------------------------------------------------------

/// Checks the FileDescriptorProtos of `ecommerce.OrderManagement`'s file.
fn assert_describes_get_order(files: &[Vec<u8>]) {
    let files: Vec<prost_types::FileDescriptorProto> = files
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let file = files
        .iter()
        .find(|f| f.package() == "ecommerce")
        .unwrap_or_else(|| panic!("no ecommerce file among {:?}", names(&files)));
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "OrderManagement")
        .expect("service OrderManagement");
    let get = service
        .method
        .iter()
        .find(|m| m.name() == "getOrder")
        .expect("method getOrder");
    assert_eq!(get.input_type(), ".google.protobuf.StringValue");
    assert_eq!(get.output_type(), ".ecommerce.Order");
    let process = service
        .method
        .iter()
        .find(|m| m.name() == "processOrders")
        .expect("method processOrders");
    assert!(process.client_streaming() && process.server_streaming());
    assert!(
        file.dependency
            .iter()
            .any(|d| d == "google/protobuf/wrappers.proto"),
        "{:?}",
        file.dependency
    );
}

fn names(files: &[prost_types::FileDescriptorProto]) -> Vec<&str> {
    files.iter().map(|f| f.name()).collect()
}

#[tokio::test]
async fn reflection_v1_lists_the_service_and_describes_get_order() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let server = Prod::start(&[]);
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = vec![
        request(MessageRequest::ListServices(String::new())),
        request(MessageRequest::FileContainingSymbol(SERVICE.into())),
    ];
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let (replies, end) = drain(&mut replies).await;
    end.unwrap();
    let [list, file]: [ServerReflectionResponse; 2] = replies.try_into().unwrap();

    let Some(MessageResponse::ListServicesResponse(list)) = list.message_response else {
        panic!("not a service list: {list:?}");
    };
    let services: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(services.contains(&SERVICE), "{services:?}");

    let Some(MessageResponse::FileDescriptorResponse(file)) = file.message_response else {
        panic!("not a file descriptor: {file:?}");
    };
    assert_describes_get_order(&file.file_descriptor_proto);
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_service_and_describes_get_order() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, ServerReflectionResponse};

    let server = Prod::start(&[]);
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = vec![
        request(MessageRequest::ListServices(String::new())),
        request(MessageRequest::FileContainingSymbol(SERVICE.into())),
    ];
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let (replies, end) = drain(&mut replies).await;
    end.unwrap();
    let [list, file]: [ServerReflectionResponse; 2] = replies.try_into().unwrap();

    let Some(MessageResponse::ListServicesResponse(list)) = list.message_response else {
        panic!("not a service list: {list:?}");
    };
    let services: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(services.contains(&SERVICE), "{services:?}");

    let Some(MessageResponse::FileDescriptorResponse(file)) = file.message_response else {
        panic!("not a file descriptor: {file:?}");
    };
    assert_describes_get_order(&file.file_descriptor_proto);
}

// ---------------------------------------------------------------------------
// Graceful shutdown of the real binary on SIGTERM
// ---------------------------------------------------------------------------

fn binary(args: &[&str]) -> ServerProcess {
    ServerProcess::start_with_env(args, &[])
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"))
}

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

// ---------------------------------------------------------------------------
// Observability: JSON log lines and request ids
// ---------------------------------------------------------------------------

/// A field of a JSON log line, wherever the format puts it: top level, the
/// event's `fields` or the call's `span`.
fn log_field<'a>(line: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    line.get(key)
        .or_else(|| line.get("fields")?.get(key))
        .or_else(|| line.get("span")?.get(key))
}

fn log_str<'a>(line: &'a serde_json::Value, key: &str) -> &'a str {
    log_field(line, key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no string {key} in {line}"))
}

/// The call line (the one with a status) tagged with `request_id`.
fn call_line<'a>(lines: &'a [serde_json::Value], request_id: &str) -> &'a serde_json::Value {
    let mut found = lines.iter().filter(|l| {
        log_field(l, "request_id").and_then(|v| v.as_str()) == Some(request_id)
            && log_field(l, "status").is_some()
    });
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no call line for request id {request_id}"));
    assert!(
        found.next().is_none(),
        "more than one line for {request_id}"
    );
    line
}

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

// ---------------------------------------------------------------------------
// Bearer auth
// ---------------------------------------------------------------------------

#[test]
fn auth_token_is_required_for_calls_but_not_for_health() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let server = Prod::start(&["--auth-token-file", token.to_str().unwrap()]);
    let url = server.url();

    let out = run_client(&url, &["101"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("client: Unauthenticated: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    let out = run_client(&url, &["--token-file", wrong.to_str().unwrap(), "101"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    let out = run_client(&url, &["--token-file", token.to_str().unwrap(), "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("id: \"101\"\n"),
        "{}",
        stdout(&out)
    );

    for args in [&["health"][..], &["health", SERVICE]] {
        let out = run_client(&url, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "SERVING\n");
    }

    // The status itself, through a generated client.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = server.client().await;
        let status = client
            .get_order(with_request_id("101".to_owned(), "unauthenticated-1"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.metadata().get("x-request-id").unwrap(),
            "unauthenticated-1"
        );
        let mut request = Request::new("101".to_owned());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret-token".parse().unwrap());
        client.get_order(request).await.unwrap();
    });
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

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

fn string_value(s: &str) -> Vec<u8> {
    s.to_owned().encode_to_vec()
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

// ---------------------------------------------------------------------------
// gzip
// ---------------------------------------------------------------------------

#[tokio::test]
async fn gzip_requests_and_responses_with_a_generated_client() {
    let server = Prod::start(&[]);
    let mut client = server
        .client()
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);

    let added = client.add_order(order("102", "Busan")).await.unwrap();
    assert_eq!(added.get_ref(), "102");
    let reply = client.get_order("102".to_owned()).await.unwrap();
    assert_eq!(
        reply
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(reply.into_inner(), order("102", "Busan"));

    let mut search = client.search_orders("item".to_owned()).await.unwrap();
    assert_eq!(
        search
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let (found, end) = drain(search.get_mut()).await;
    end.unwrap();
    assert_eq!(found, [seed::order_101(), order("102", "Busan")]);
}

/// CRC-32 (IEEE), for the gzip trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in one stored (uncompressed) block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // final block, stored
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// On the wire: a gzip-compressed request frame is accepted, and a client
/// that accepts gzip gets `grpc-encoding: gzip` and compressed frames.
#[tokio::test]
async fn gzip_on_the_wire() {
    let server = Prod::start(&[]);
    let compressed = gzip_stored(&string_value("101"));
    let mut body = vec![1]; // compressed flag
    body.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
    body.extend_from_slice(&compressed);
    let request = raw::grpc_request(
        server.addr,
        GET_ORDER,
        &[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")],
    );
    let response = bounded(
        "a gzip getOrder",
        raw::call(server.addr, request, &body, true),
    )
    .await
    .unwrap();
    assert_eq!(response.grpc_status(), Some(0), "{response:?}");
    assert_eq!(
        response
            .headers
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(response.data.first(), Some(&1), "compressed flag");
    let len = u32::from_be_bytes(response.data[1..5].try_into().unwrap()) as usize;
    assert_eq!(response.data.len(), 5 + len, "one message frame");
    assert_eq!(&response.data[5..7], &[0x1f, 0x8b], "a gzip member");
}

#[test]
fn client_gzip_flag_compresses_requests_and_accepts_gzip_replies() {
    let server = Prod::start(&[]);
    let url = server.url();
    let out = run_client(&url, &["--gzip", "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("id: \"101\"\n"),
        "{}",
        stdout(&out)
    );
    let out = run_client(&url, &["--gzip", "search", "item"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("id: \"101\""), "{}", stdout(&out));
    let out = run_client(&url, &["--gzip", "process", "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("cmb - Seoul"), "{}", stdout(&out));

    // The bare service (no gzip support) refuses what `--gzip` sends: the
    // flag really compresses requests.
    let bare = TestServer::start(Arc::new(MemoryStore::with_orders([seed::order_101()])));
    let out = run_client(&bare.url(), &["--gzip", "101"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("Unimplemented"), "{}", stderr(&out));
    assert!(stderr(&out).contains("gzip"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

/// A store whose `get("boom")` and every `scan` panic.
struct PanickyStore(MemoryStore);

const GET_PANIC: &str = "PanickyStore: get(boom) panics";
const SCAN_PANIC: &str = "PanickyStore: scan panics";

#[async_trait::async_trait]
impl OrderStore for PanickyStore {
    async fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        if id == "boom" {
            panic!("{GET_PANIC}");
        }
        self.0.get(id).await
    }
    async fn search(
        &self,
        _query: &str,
        _after: Option<&str>,
        _budget: usize,
    ) -> Result<SearchPage, StoreError> {
        panic!("{SCAN_PANIC}");
    }
    async fn insert(
        &self,
        order: Order,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), StoreError> {
        self.0.insert(order, deadline).await
    }
    async fn update_all(
        &self,
        orders: Vec<Order>,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), StoreError> {
        self.0.update_all(orders, deadline).await
    }
    async fn count(&self) -> Result<u64, StoreError> {
        self.0.count().await
    }
}

fn panicky_server() -> Prod {
    // One call at a time: a call whose panic leaked its slot would make the
    // next call RESOURCE_EXHAUSTED.
    Prod::with_store(
        &["--max-concurrent-calls", "1"],
        Arc::new(PanickyStore(MemoryStore::with_orders([seed::order_101()]))),
    )
}

/// Everything this test binary logs, as JSON lines: the in-process servers
/// log through the global subscriber, installed by the first caller.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn capture_log() {
    static INSTALL: Once = Once::new();
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOG.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    INSTALL.call_once(|| {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(|| Capture)
            .try_init()
            .expect("install the log capture");
    });
}

fn log_lines() -> Vec<serde_json::Value> {
    let bytes = LOG.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_panicking_handler_is_internal_logged_and_the_server_keeps_serving() {
    capture_log();
    let server = panicky_server();
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

    let lines = log_lines();
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
    capture_log();
    let server = panicky_server();
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
    let lines = log_lines();
    for what in [SCAN_PANIC, GET_PANIC] {
        assert!(
            lines
                .iter()
                .any(|l| log_field(l, "panic").and_then(|v| v.as_str()) == Some(what)),
            "{what} is not in the log"
        );
    }
}

// ---------------------------------------------------------------------------
// Rich errors (google.rpc.BadRequest)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_add_order_carries_bad_request_field_violations() {
    let server = Prod::start(&[]);
    let mut client = server.client().await;
    let invalid = Order {
        id: String::new(),
        items: vec!["ok".into(), "  ".into()],
        description: String::new(),
        price: -1.0,
        destination: "x".repeat(300),
    };
    let status = client.add_order(invalid).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad_request = status
        .get_details_bad_request()
        .expect("google.rpc.BadRequest details");
    let violations: Vec<(&str, &str)> = bad_request
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert_eq!(violations[0], ("items[1]", "must not be blank"));
    assert_eq!(
        violations[1],
        ("price", "must be a finite number >= 0, got -1")
    );
    assert_eq!(violations[2].0, "destination");
}

#[test]
fn client_prints_each_field_violation_on_its_own_line() {
    let server = Prod::start(&[]);
    let out = run_client(
        &server.url(),
        &[
            "add",
            "--item",
            " ",
            "--price",
            "-1",
            "--destination",
            "Seoul",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("client: InvalidArgument: invalid order"),
        "{err}"
    );
    assert_eq!(lines[1], "  items[0]: must not be blank");
    assert_eq!(lines[2], "  price: must be a finite number >= 0, got -1");
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

const FLAGS: &[(&str, &str)] = &[
    ("listen", "ORDER_LISTEN"),
    ("data-dir", "ORDER_DATA_DIR"),
    ("in-memory", "ORDER_IN_MEMORY"),
    ("no-seed", "ORDER_NO_SEED"),
    ("batch-size", "ORDER_BATCH_SIZE"),
    ("max-update-orders", "ORDER_MAX_UPDATE_ORDERS"),
    ("log-format", "ORDER_LOG_FORMAT"),
    ("shutdown-grace", "ORDER_SHUTDOWN_GRACE"),
    ("threads", "ORDER_THREADS"),
    ("tls-cert", "ORDER_TLS_CERT"),
    ("tls-key", "ORDER_TLS_KEY"),
    ("client-ca", "ORDER_CLIENT_CA"),
    ("auth-token-file", "ORDER_AUTH_TOKEN_FILE"),
    ("max-request-bytes", "ORDER_MAX_REQUEST_BYTES"),
    ("max-response-bytes", "ORDER_MAX_RESPONSE_BYTES"),
    ("max-concurrent-streams", "ORDER_MAX_CONCURRENT_STREAMS"),
    ("max-concurrent-calls", "ORDER_MAX_CONCURRENT_CALLS"),
    ("max-header-list-bytes", "ORDER_MAX_HEADER_LIST_BYTES"),
    ("keepalive-interval", "ORDER_KEEPALIVE_INTERVAL"),
    ("keepalive-timeout", "ORDER_KEEPALIVE_TIMEOUT"),
    ("max-call-seconds", "ORDER_MAX_CALL_SECONDS"),
];

#[test]
fn server_help_lists_every_flag_with_its_env_var() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command.arg("--help");
    for (name, _) in std::env::vars() {
        if name.starts_with("ORDER_") {
            command.env_remove(name);
        }
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();

    // Each flag's entry runs from its `--flag` line to the next entry.
    let entries: Vec<usize> = help
        .match_indices('\n')
        .map(|(i, _)| i)
        .filter(|&i| help[i + 1..].starts_with("      --") || help[i + 1..].starts_with("  -"))
        .collect();
    for (flag, env) in FLAGS {
        let head = format!("\n      --{flag}");
        let start = help
            .find(&format!("{head} "))
            .or_else(|| help.find(&format!("{head}\n")))
            .unwrap_or_else(|| panic!("--{flag} is not in the help:\n{help}"));
        let end = entries
            .iter()
            .copied()
            .find(|&i| i > start)
            .unwrap_or(help.len());
        let entry = &help[start..end];
        assert!(
            entry.contains(&format!("[env: {env}=")),
            "--{flag} does not show {env}:\n{entry}"
        );
    }

    // And nothing else: every flag the server takes is in the list above.
    let mut declared: Vec<String> = Config::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let mut listed: Vec<String> = FLAGS.iter().map(|(f, _)| f.to_string()).collect();
    declared.sort();
    listed.sort();
    assert_eq!(declared, listed);
}

async fn process_all(url: &str, ids: &[&str]) -> Vec<CombinedShipment> {
    let mut client = OrderManagementClient::new(connect(url).await);
    for id in ["102", "103"] {
        client.add_order(order(id, "Seoul")).await.unwrap();
    }
    let requests: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut stream = client
        .process_orders(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let (shipments, end) = drain(&mut stream).await;
    end.unwrap();
    shipments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_batch_size_in_the_environment_sets_process_orders_batching() {
    // All three orders go to Seoul: by default one shipment carries them all.
    let default = binary(&["--in-memory"]);
    let shipments = process_all(&default.url, &["101", "102", "103"]).await;
    let got: Vec<Vec<&str>> = shipments.iter().map(ids).collect();
    assert_eq!(got, [vec!["101", "102", "103"]]);

    let one = ServerProcess::start_with_env(&["--in-memory"], &[("ORDER_BATCH_SIZE", "1")])
        .expect("server starts");
    let shipments = process_all(&one.url, &["101", "102", "103"]).await;
    let got: Vec<Vec<&str>> = shipments.iter().map(ids).collect();
    assert_eq!(got, [vec!["101"], vec!["102"], vec!["103"]]);
}
