//! What the production tests share: the in-process production server
//! ([`Prod`]), the real binary ([`binary`]), reading the JSON log, and
//! small client helpers.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::process::ServerProcess;
use clap::Parser as _;
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::server::{Config, Running};
use order_management::store::{MemoryStore, OrderStore};
use order_management::{CombinedShipment, Order, seed};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

pub(super) type Client = OrderManagementClient<Channel>;

pub(super) const SERVICE: &str = "ecommerce.OrderManagement";
pub(super) const GET_ORDER: &str = "/ecommerce.OrderManagement/getOrder";
pub(super) const PROCESS_ORDERS: &str = "/ecommerce.OrderManagement/processOrders";
pub(super) const UPDATE_ORDERS: &str = "/ecommerce.OrderManagement/updateOrders";

/// The production stack (`Running`) in-process, on an ephemeral loopback
/// port, on its own thread and runtime (so sync tests can run the client
/// binary against it). Shut down with [`Prod::shutdown`], the stand-in for
/// SIGTERM; `Running::until`'s result is available from [`Prod::stopped`].
pub(super) struct Prod {
    pub(super) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub(super) result: std::sync::mpsc::Receiver<Result<(), String>>,
}

impl Prod {
    /// Server flags as on the command line; order 101 in a memory store.
    pub(super) fn start(args: &[&str]) -> Self {
        Self::with_store(
            args,
            Arc::new(MemoryStore::with_orders([seed::order_101()])),
        )
    }

    pub(super) fn with_store(args: &[&str], store: Arc<dyn OrderStore>) -> Self {
        Self::launch(args, store, None)
    }

    /// Like [`Prod::with_store`], with everything the server logs captured
    /// in `log` (as JSON lines).
    pub(super) fn logging_to(args: &[&str], store: Arc<dyn OrderStore>, log: &LogCapture) -> Self {
        Self::launch(args, store, Some(log.dispatch()))
    }

    fn launch(args: &[&str], store: Arc<dyn OrderStore>, log: Option<tracing::Dispatch>) -> Self {
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
            let runtime = server_runtime(log.clone());
            let serve = || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let running = Running::start(&config, store, listener).await?;
                    // `until` polls the signal only once the health statuses
                    // are set: from then on the server is fully up.
                    running
                        .until(async move {
                            let _ = ready_tx.send(());
                            let _ = stopped.await;
                        })
                        .await
                })
            };
            let outcome = match &log {
                Some(dispatch) => tracing::dispatcher::with_default(dispatch, serve),
                None => serve(),
            };
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

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(super) async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to the in-process server")
    }

    pub(super) async fn client(&self) -> Client {
        OrderManagementClient::new(self.channel().await)
    }

    /// Begins the graceful shutdown, as SIGTERM does for the binary.
    pub(super) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// What `Running::until` returned (what the binary turns into its exit
    /// status); waits a bounded time.
    pub(super) fn stopped(&self) -> Result<(), String> {
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

/// The real server binary, `server --listen 127.0.0.1:0 ARGS`, for what only
/// a process shows; panics with its log if it does not start.
pub(super) fn binary(args: &[&str]) -> ServerProcess {
    ServerProcess::start_with_env(args, &[])
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"))
}

/// A runtime like `Runtime::new()`'s. With `log`, each of its threads
/// (workers and blocking pool) logs to that dispatcher rather than to a
/// global subscriber, so what one in-process server logs is its own test's
/// alone, whatever else runs in this process.
fn server_runtime(log: Option<tracing::Dispatch>) -> tokio::runtime::Runtime {
    thread_local! {
        static LOG: RefCell<Option<tracing::dispatcher::DefaultGuard>> = const { RefCell::new(None) };
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(dispatch) = log {
        builder
            .on_thread_start(move || LOG.set(Some(tracing::dispatcher::set_default(&dispatch))))
            .on_thread_stop(|| LOG.set(None));
    }
    builder.build().expect("server runtime")
}

/// What one in-process server logs, as JSON lines ([`Prod::logging_to`]).
#[derive(Clone, Default)]
pub(super) struct LogCapture(Arc<Mutex<Vec<u8>>>);

/// The process's global subscriber in this test binary: it records
/// nothing, but says every callsite is "sometimes" wanted and sets no
/// level cap. tracing caches, per process, each callsite's interest and
/// the highest level any dispatcher wants; with the scoped dispatchers of
/// tests running in parallel, a rebuild racing the registration of a
/// [`LogCapture`] could leave either cached without it (seen: a capture
/// got a test's ERROR lines but none of its INFO call lines). Always
/// being there, this one keeps both from ever excluding a capture.
struct InterestFloor;

impl tracing::Subscriber for InterestFloor {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl LogCapture {
    fn dispatch(&self) -> tracing::Dispatch {
        static FLOOR: std::sync::Once = std::sync::Once::new();
        // Another test may have set a global subscriber first: then that
        // one is always there instead, which is as good.
        FLOOR.call_once(|| drop(tracing::subscriber::set_global_default(InterestFloor)));
        let log = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(move || log.clone())
            .finish()
            .into()
    }

    pub(super) fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A field of a JSON log line, wherever the format puts it: top level, the
/// event's `fields` or the call's `span`.
pub(super) fn log_field<'a>(
    line: &'a serde_json::Value,
    key: &str,
) -> Option<&'a serde_json::Value> {
    line.get(key)
        .or_else(|| line.get("fields")?.get(key))
        .or_else(|| line.get("span")?.get(key))
}

pub(super) fn log_str<'a>(line: &'a serde_json::Value, key: &str) -> &'a str {
    log_field(line, key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no string {key} in {line}"))
}

/// The call line (the one with a status) tagged with `request_id`.
pub(super) fn call_line<'a>(
    lines: &'a [serde_json::Value],
    request_id: &str,
) -> &'a serde_json::Value {
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

/// Fails the test instead of hanging when `future` does not finish.
pub(super) async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

pub(super) async fn connect(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

pub(super) fn order(id: &str, destination: &str) -> Order {
    Order {
        id: id.into(),
        items: vec![format!("item of {id}")],
        description: format!("order {id}"),
        price: 10.0,
        destination: destination.into(),
    }
}

pub(super) fn with_request_id<T>(message: T, id: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

pub(super) async fn health_check(channel: Channel, service: &str) -> Result<ServingStatus, Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(reply.status).unwrap())
}

pub(super) async fn next_health(watch: &mut Streaming<HealthCheckResponse>) -> ServingStatus {
    let reply = bounded("a health update", watch.message())
        .await
        .expect("health watch")
        .expect("the health watch ended");
    ServingStatus::try_from(reply.status).unwrap()
}

/// A processOrders call whose request stream the test feeds by hand.
pub(super) async fn open_process(
    client: &mut Client,
) -> (mpsc::Sender<String>, Streaming<CombinedShipment>) {
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
pub(super) async fn drain<T>(stream: &mut Streaming<T>) -> (Vec<T>, Result<(), Status>) {
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

pub(super) fn ids(shipment: &CombinedShipment) -> Vec<&str> {
    shipment.orders_list.iter().map(|o| o.id.as_str()).collect()
}

/// An encoded google.protobuf.StringValue: getOrder's request.
pub(super) fn string_value(s: &str) -> Vec<u8> {
    s.to_owned().encode_to_vec()
}
