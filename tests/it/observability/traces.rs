//! `--otlp-endpoint`: spans exported to an in-process OTLP collector (a
//! tonic server of the OTLP trace service), with their parent links and
//! the RPC conventions' attributes; the trace id in the call's log line.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use order_management::Order;
use order_management::pb::order_management_client::OrderManagementClient;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// The collector: every span it receives, with its resource's service name.
struct Collector(mpsc::UnboundedSender<(String, Span)>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let _ = self.0.send((service.clone(), span));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_collector() -> (String, mpsc::UnboundedReceiver<(String, Span)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), rx)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|a| {
            let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (a.key.clone(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_server_spans_with_store_children_under_the_callers_trace() {
    let (endpoint, mut spans) = start_collector().await;
    let mut server = ServerProcess::start(&["--in-memory", "--otlp-endpoint", &endpoint])
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"));
    let channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OrderManagementClient::new(channel);

    let mut get = Request::new("101".to_owned());
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01").parse().unwrap();
    get.metadata_mut().insert("traceparent", traceparent);
    client.get_order(get).await.unwrap();
    let order = Order {
        id: "t-1".into(),
        items: vec!["traced".into()],
        description: "a traced order".into(),
        price: 1.0,
        destination: "Oslo".into(),
    };
    client.add_order(order).await.unwrap();
    drop(client);
    // The CLI with --trace starts a trace of its own and names it.
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || run_client(&url, &["--trace", "101"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cli_trace = stderr(&out)
        .strip_prefix("trace id: ")
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("no trace id: {}", stderr(&out)));

    // The server exports what is queued when it exits.
    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));
    let rest = server.rest_of_log();
    let log = format!("{}{rest}", server.startup);
    let mut got = Vec::new();
    while let Ok(span) = spans.try_recv() {
        got.push(span);
    }
    let named = |name: &str| {
        got.iter()
            .find(|(_, s)| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {got:#?}"))
    };

    let (service, get) = named("ecommerce.OrderManagement/getOrder");
    assert!(service.contains("order-management"), "{service}");
    assert_eq!(hex(&get.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&get.parent_span_id),
        PARENT_ID,
        "a child of the caller's span"
    );
    assert_eq!(get.kind, 2, "SPAN_KIND_SERVER");
    let attrs = attributes(get);
    assert_eq!(attrs["rpc.system"], "grpc");
    assert_eq!(attrs["rpc.service"], "ecommerce.OrderManagement");
    assert_eq!(attrs["rpc.method"], "getOrder");
    assert_eq!(attrs["rpc.grpc.status_code"], "0");
    let (_, store_get) = named("store.get");
    assert_eq!(store_get.trace_id, get.trace_id);
    assert_eq!(
        store_get.parent_span_id, get.span_id,
        "store.get is the call's child"
    );

    let (_, add) = named("ecommerce.OrderManagement/addOrder");
    assert!(add.parent_span_id.is_empty(), "no traceparent: a root span");
    assert_ne!(hex(&add.trace_id), TRACE_ID);
    let (_, insert) = named("store.insert");
    assert_eq!(insert.parent_span_id, add.span_id);

    let cli = got
        .iter()
        .find(|(_, s)| hex(&s.trace_id) == cli_trace && s.name.ends_with("/getOrder"))
        .unwrap_or_else(|| panic!("no getOrder span in the CLI's trace {cli_trace}"));
    assert_eq!(cli.1.parent_span_id.len(), 8, "a child of the CLI's span");

    let line = log
        .lines()
        .find(|l| l.contains("method=/ecommerce.OrderManagement/getOrder"))
        .unwrap_or_else(|| panic!("no getOrder line in {log}"));
    assert!(line.contains(&format!("trace_id={TRACE_ID}")), "{line}");
}

/// A collector that takes export requests and never answers.
struct Stuck;

#[tonic::async_trait]
impl TraceService for Stuck {
    async fn export(
        &self,
        _request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_collector_drops_spans_counted_and_calls_go_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Stuck))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let (server, admin) = super::with_admin(&["--in-memory", "--otlp-endpoint", &endpoint]);
    let channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = OrderManagementClient::new(channel);
    // Each call ends two spans (the call's, store.get's); the export thread
    // is stuck on its first batch, so the queue (4,096) fills.
    for round in 0..100 {
        let calls = (0..500).map(|_| {
            let mut client = client.clone();
            async move { client.get_order("101".to_owned()).await.map(|_| ()) }
        });
        for outcome in futures_util::future::join_all(calls).await {
            outcome.expect("every call succeeds while spans are dropped");
        }
        let (_, text) = super::http_get(admin, "/metrics").await;
        let dropped = text
            .lines()
            .find_map(|l| l.strip_prefix("order_management_trace_spans_dropped_total "))
            .expect("the dropped spans counter");
        if dropped != "0" {
            return;
        }
        assert!(round < 99, "no span dropped after 50,000 calls");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_fails_no_call() {
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = ServerProcess::start(&["--in-memory", "--otlp-endpoint", &endpoint])
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"));
    let channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OrderManagementClient::new(channel);
    for _ in 0..20 {
        let order = client.get_order("101".to_owned()).await.unwrap();
        assert_eq!(order.get_ref().id, "101");
    }
}

#[test]
fn bad_observability_flags_stop_the_server_with_a_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (args, message) in [
        (
            &["--otlp-endpoint", "not a url"][..],
            "cannot export spans to not a url",
        ),
        (
            &[
                "--otlp-endpoint",
                "http://127.0.0.1:4317",
                "--trace-sample-ratio",
                "2",
            ][..],
            "--trace-sample-ratio must be between 0 and 1, got 2",
        ),
        (&["--admin-listen", taken.as_str()][..], "(--admin-listen)"),
    ] {
        let mut all = vec!["--in-memory"];
        all.extend_from_slice(args);
        let Err((status, log)) = ServerProcess::start(&all) else {
            panic!("{args:?}: the server started");
        };
        assert!(!status.success(), "{args:?}");
        assert!(log.contains(message), "{args:?}: {log}");
    }
}
