//! `GET /metrics` after known calls: exact counts, in a text a Prometheus
//! parser reads; `/healthz` and `/readyz`.

use order_management::Order;
use order_management::pb::order_management_client::OrderManagementClient;
use prometheus_parse::{LineInfo, Scrape, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use super::{http_get, with_admin};

const TOKEN: &str = "metrics-test-token";

fn order(id: &str, destination: &str) -> Order {
    Order {
        id: id.into(),
        items: vec![format!("gadget of {id}")],
        description: format!("order {id}"),
        price: 10.0,
        destination: destination.into(),
    }
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let bearer = format!("Bearer {TOKEN}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    request
}

/// A parsed scrape, with every line checked to be one a Prometheus parser reads.
fn parse(text: &str) -> Scrape {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match LineInfo::parse(line) {
            LineInfo::Sample { value, .. } => {
                assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
            }
            other => panic!("not a sample line: {line} ({other:?})"),
        }
    }
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics text ends with # EOF"
    );
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the scrape parses")
}

/// The value of the sample `name` whose labels include `labels`; 0 if none.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{name}: not a single value: {other:?}"),
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_call_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let (server, admin) = with_admin(&[
        "--in-memory",
        "--auth-token-file",
        token.to_str().unwrap(),
        "--max-concurrent-calls",
        "1",
    ]);
    let channel: Channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OrderManagementClient::new(channel);

    for _ in 0..3 {
        client
            .get_order(authorized("101".to_owned()))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let missing = client.get_order(authorized("nope".to_owned())).await;
        assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    }
    let anonymous = client.get_order("101".to_owned()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    client
        .add_order(authorized(order("m-1", "Paris")))
        .await
        .unwrap();
    client
        .add_order(authorized(order("m-2", "Paris")))
        .await
        .unwrap();
    let taken = client.add_order(authorized(order("m-1", "Paris"))).await;
    assert_eq!(taken.unwrap_err().code(), Code::AlreadyExists);

    let mut found = client
        .search_orders(authorized("gadget of m-1".to_owned()))
        .await
        .unwrap()
        .into_inner();
    let mut returned = 0;
    while found.message().await.unwrap().is_some() {
        returned += 1;
    }
    assert_eq!(returned, 1);

    let updates = tokio_stream::iter([order("m-1", "Lyon"), order("m-2", "Lyon")]);
    client.update_orders(authorized(updates)).await.unwrap();

    // processOrders holds the one read slot while its stream is open: a
    // getOrder meanwhile is refused by admission.
    let (tx, rx) = mpsc::channel(4);
    let mut shipments = client
        .process_orders(authorized(ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    tx.send("101".to_owned()).await.unwrap();
    tx.send("m-1".to_owned()).await.unwrap();
    let mut second = client.clone();
    let full = second.get_order(authorized("101".to_owned())).await;
    assert_eq!(full.unwrap_err().code(), Code::ResourceExhausted);
    drop(tx);
    let mut shipped = 0.0;
    while shipments.message().await.unwrap().is_some() {
        shipped += 1.0;
    }
    assert_eq!(shipped, 2.0, "Seoul and Lyon");

    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let scrape = parse(&text);
    let get = [("grpc_method", "getOrder"), ("grpc_type", "unary")];
    let m = |name: &str, labels: &[(&str, &str)]| value(&scrape, name, labels);
    let code = |method: &'static str, code: &'static str| {
        value(
            &scrape,
            "grpc_server_handled_total",
            &[("grpc_method", method), ("grpc_code", code)],
        )
    };
    assert_eq!(m("grpc_server_started_total", &get), 7.0);
    assert_eq!(code("getOrder", "OK"), 3.0);
    assert_eq!(code("getOrder", "NotFound"), 2.0);
    assert_eq!(code("getOrder", "Unauthenticated"), 1.0);
    assert_eq!(code("getOrder", "ResourceExhausted"), 1.0);
    assert_eq!(
        m("grpc_server_msg_received_total", &get),
        5.0,
        "admitted calls"
    );
    assert_eq!(m("grpc_server_msg_sent_total", &get), 3.0, "OK calls");
    assert_eq!(m("grpc_server_handling_seconds_count", &get), 7.0);
    assert_eq!(code("addOrder", "OK"), 2.0);
    assert_eq!(code("addOrder", "AlreadyExists"), 1.0);
    let method = |name| [("grpc_method", name)];
    assert_eq!(
        m("grpc_server_msg_sent_total", &method("searchOrders")),
        1.0
    );
    assert_eq!(code("searchOrders", "OK"), 1.0);
    assert_eq!(
        m("grpc_server_msg_received_total", &method("updateOrders")),
        2.0
    );
    assert_eq!(code("updateOrders", "OK"), 1.0);
    assert_eq!(
        m("grpc_server_msg_received_total", &method("processOrders")),
        2.0
    );
    assert_eq!(
        m("grpc_server_msg_sent_total", &method("processOrders")),
        shipped
    );
    assert_eq!(code("processOrders", "OK"), 1.0);

    let reason = |r| [("reason", r)];
    assert_eq!(
        m("order_management_calls_refused_total", &reason("auth")),
        1.0
    );
    assert_eq!(
        m("order_management_calls_refused_total", &reason("admission")),
        1.0
    );
    assert_eq!(m("order_management_panics_total", &[]), 0.0);
    assert_eq!(m("order_management_deadline_exceeded_total", &[]), 0.0);
    assert_eq!(
        m("order_management_store_orders", &[]),
        3.0,
        "101, m-1, m-2"
    );
    let returned = m("order_management_search_orders_returned_total", &[]);
    assert_eq!(returned, 1.0);
    assert!(m("order_management_search_candidates_examined_total", &[]) >= returned);
    for pool in ["reads", "writes", "health_watches"] {
        let in_flight = m("order_management_calls_in_flight", &[("pool", pool)]);
        assert_eq!(in_flight, 0.0, "{pool}");
    }
    let waiting = m("order_management_calls_waiting", &[("pool", "writes")]);
    assert_eq!(waiting, 0.0);
    assert_eq!(m("order_management_connections_open", &[]), 1.0);
    assert!(m("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m("process_open_fds", &[]) >= 3.0);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(m("order_management_build_info", &version), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_follow_the_grpc_health_service() {
    let (server, admin) = with_admin(&["--in-memory"]);
    assert_eq!(
        http_get(admin, "/healthz").await,
        (200, "SERVING\n".to_owned())
    );
    assert_eq!(
        http_get(admin, "/readyz").await,
        (200, "SERVING\n".to_owned())
    );
    let (status, body) = http_get(admin, "/nothing-here").await;
    assert_eq!(status, 404, "{body}");

    // A call in flight keeps the server in its grace period after SIGTERM,
    // when health is NOT_SERVING.
    let channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>(1);
    let _open = OrderManagementClient::new(channel)
        .process_orders(ReceiverStream::new(rx))
        .await
        .unwrap();
    server.signal("TERM");
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let answer = http_get(admin, "/readyz").await;
            if answer.0 != 200 {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("/readyz turns 503 during the shutdown");
    assert_eq!(ready, (503, "NOT_SERVING\n".to_owned()));
    assert_eq!(http_get(admin, "/healthz").await.0, 503);
    drop(tx);
}
