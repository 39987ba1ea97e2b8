//! The HTTP/JSON API (src/gateway/) on the gRPC port, by raw HTTP/1.1:
//! every route, its errors as JSON with grpc-gateway's HTTP statuses, and
//! the same middleware as gRPC (auth, deadlines, request ids, log lines,
//! body limits). Bad input gets a 4xx naming the problem, never a 500.

use order_management::format::to_json;
use order_management::seed;

use super::harness::{Prod, binary, call_line, log_str};
use crate::support::http1::{self, Reply};

fn error_of(reply: &Reply, http: u16, code: &str) -> serde_json::Value {
    assert_eq!(reply.status, http, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let error = reply.json();
    assert_eq!(error["status"], code, "{error}");
    let id = error["request_id"].as_str().expect("a request id");
    assert_eq!(
        reply.header("x-request-id"),
        Some(id),
        "the header names the same id"
    );
    error
}

#[test]
fn get_order_answers_the_proto3_json_of_the_order() {
    let server = Prod::start(&[]);
    let reply = http1::get(server.addr, "/v1/orders/101");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let want: serde_json::Value =
        serde_json::from_str(&to_json("ecommerce.Order", &seed::order_101())).unwrap();
    assert_eq!(reply.json(), want);

    let missing = http1::get(server.addr, "/v1/orders/nope");
    let error = error_of(&missing, 404, "NOT_FOUND");
    assert_eq!(error["code"], 5);
    assert!(
        error["message"].as_str().unwrap().contains("nope"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn add_order_answers_201_with_the_id_and_grpc_sees_the_order() {
    let server = Prod::start(&[]);
    let body =
        r#"{"items":["Apple","Pear"],"description":"fruit","price":2.5,"destination":"Oslo"}"#;
    let reply = http1::json(server.addr, "POST", "/v1/orders", body);
    assert_eq!(reply.status, 201, "{reply:?}");
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/orders/{id}").as_str())
    );
    let order = server
        .client()
        .await
        .get_order(id.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.items, ["Apple", "Pear"]);
    assert_eq!(order.price, 2.5);

    let again = format!(r#"{{"id":"{id}","items":["x"]}}"#);
    let reply = http1::json(server.addr, "POST", "/v1/orders", &again);
    error_of(&reply, 409, "ALREADY_EXISTS");
}

#[test]
fn an_invalid_order_names_each_field_in_bad_request_details() {
    let server = Prod::start(&[]);
    let reply = http1::json(
        server.addr,
        "POST",
        "/v1/orders",
        r#"{"items":[],"price":-1}"#,
    );
    let error = error_of(&reply, 400, "INVALID_ARGUMENT");
    let details = &error["details"][0];
    assert_eq!(
        details["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    let fields: Vec<&str> = details["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items", "price"]);
}

#[test]
fn bad_bodies_get_a_4xx_that_names_the_problem() {
    let server = Prod::start(&["--max-request-bytes", "1000"]);
    let cases: &[(&str, &str, u16, &str)] = &[
        (
            r#"{"items":["a"]"#,
            "application/json",
            400,
            "not valid JSON",
        ),
        (
            r#"{"items":["a"],"price":"cheap"}"#,
            "application/json",
            400,
            "price",
        ),
        (
            r#"{"items":["a"],"colour":"red"}"#,
            "application/json",
            400,
            "colour",
        ),
        (r#"{"items":"a"}"#, "application/json", 400, "items"),
        (r#"["a"]"#, "application/json", 400, "ecommerce.Order"),
        ("", "application/json", 400, "empty"),
        (r#"{"items":["a"]}"#, "text/plain", 415, "content-type"),
    ];
    for (body, kind, http, says) in cases {
        let reply = http1::send(
            server.addr,
            "POST",
            "/v1/orders",
            &[("content-type", kind)],
            body.as_bytes(),
        );
        assert_eq!(reply.status, *http, "{body}: {reply:?}");
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{body}: {message}");
    }
    let big = format!(r#"{{"items":["{}"]}}"#, "a".repeat(2000));
    let reply = http1::json(server.addr, "POST", "/v1/orders", &big);
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.text().contains("--max-request-bytes"), "{reply:?}");
    // Nothing of it was stored, and the server still answers.
    assert_eq!(http1::get(server.addr, "/v1/orders/101").status, 200);
}

#[test]
fn wrong_methods_and_paths_get_405_and_404() {
    let server = Prod::start(&[]);
    let reply = http1::send(server.addr, "DELETE", "/v1/orders/101", &[], b"");
    error_of(&reply, 405, "UNIMPLEMENTED");
    assert_eq!(reply.header("allow"), Some("GET"));
    let reply = http1::get(server.addr, "/v1/shipments:process");
    assert_eq!(reply.status, 405, "{reply:?}");
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = http1::get(server.addr, "/v2/orders");
    error_of(&reply, 404, "NOT_FOUND");
    let reply = http1::get(server.addr, "/v1/orders?colour=red");
    error_of(&reply, 400, "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_streams_ndjson_and_sse() {
    let server = Prod::start(&[]);
    let mut client = server.client().await;
    for (id, item) in [("s1", "Blue Kettle"), ("s2", "blue mug"), ("s3", "red mug")] {
        let mut order = super::harness::order(id, "Oslo");
        order.items = vec![item.into()];
        client.add_order(order).await.unwrap();
    }
    let reply = http1::get(server.addr, "/v1/orders?q=BLUE");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let ids: Vec<String> = reply
        .lines()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["s1", "s2"]);

    let reply = http1::send(
        server.addr,
        "GET",
        "/v1/orders?value=mug",
        &[("accept", "text/event-stream")],
        b"",
    );
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let text = reply.text();
    assert_eq!(text.matches("data: {\"id\"").count(), 2, "{text}");
    assert!(text.ends_with("event: end\ndata: {}\n\n"), "{text}");

    let none = http1::get(server.addr, "/v1/orders?q=zebra");
    assert_eq!((none.status, none.body.len()), (200, 0), "{none:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_is_all_or_nothing_and_put_does_the_same() {
    let server = Prod::start(&[]);
    let mut client = server.client().await;
    client
        .add_order(super::harness::order("u1", "Oslo"))
        .await
        .unwrap();
    let both = r#"[{"id":"u1","items":["new"],"destination":"Rome"},{"id":"ghost","items":["x"]}]"#;
    let reply = http1::json(server.addr, "PATCH", "/v1/orders", both);
    let error = error_of(&reply, 404, "NOT_FOUND");
    assert!(
        error["message"].as_str().unwrap().contains("ghost"),
        "{error}"
    );
    let u1 = client
        .get_order("u1".to_owned())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u1.destination, "Oslo", "nothing was updated");

    for method in ["PATCH", "PUT"] {
        let one = format!(r#"[{{"id":"u1","items":["new"],"destination":"{method}"}}]"#);
        let reply = http1::json(server.addr, method, "/v1/orders", &one);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["updated"], serde_json::json!(["u1"]));
        let u1 = client
            .get_order("u1".to_owned())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(u1.destination, method);
    }
    let reply = http1::json(server.addr, "PATCH", "/v1/orders", r#"{"id":"u1"}"#);
    let error = error_of(&reply, 400, "INVALID_ARGUMENT");
    assert!(
        error["message"].as_str().unwrap().contains("JSON array"),
        "{error}"
    );
}

#[test]
fn process_orders_streams_shipments() {
    let server = Prod::start(&[]);
    let reply = http1::json(server.addr, "POST", "/v1/shipments:process", r#"["101"]"#);
    assert_eq!(reply.status, 200, "{reply:?}");
    let shipments = reply.lines();
    assert_eq!(shipments.len(), 1, "{shipments:?}");
    assert_eq!(shipments[0]["ordersList"][0]["id"], "101");

    let reply = http1::json(server.addr, "POST", "/v1/shipments:process", r#"["nope"]"#);
    error_of(&reply, 404, "NOT_FOUND");
    let reply = http1::json(server.addr, "POST", "/v1/shipments:process", "[101]");
    let error = error_of(&reply, 400, "INVALID_ARGUMENT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("must be a string"),
        "{error}"
    );
}

#[test]
fn the_bearer_token_guards_the_api_but_not_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Prod::start(&["--auth-token-file", token.to_str().unwrap()]);
    let reply = http1::get(server.addr, "/v1/orders/101");
    error_of(&reply, 401, "UNAUTHENTICATED");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = http1::send(
        server.addr,
        "GET",
        "/v1/orders/101",
        &[("authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    for page in ["/", "/console.js", "/openapi.json"] {
        assert_eq!(http1::get(server.addr, page).status, 200, "{page}");
    }
}

#[test]
fn openapi_json_describes_every_route() {
    let server = Prod::start(&[]);
    let reply = http1::get(server.addr, "/openapi.json");
    assert_eq!(reply.status, 200, "{reply:?}");
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for (path, verb) in [
        ("/v1/orders", "get"),
        ("/v1/orders", "post"),
        ("/v1/orders", "patch"),
        ("/v1/orders", "put"),
        ("/v1/orders/{value}", "get"),
        ("/v1/shipments:process", "post"),
    ] {
        assert!(doc["paths"][path][verb].is_object(), "{verb} {path}");
    }
    assert_eq!(
        http1::get(server.addr, "/").header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn a_passed_deadline_is_504() {
    let server = Prod::start(&[]);
    for header in [("request-timeout", "0"), ("grpc-timeout", "0n")] {
        let reply = http1::send(server.addr, "GET", "/v1/orders/101", &[header], b"");
        error_of(&reply, 504, "DEADLINE_EXCEEDED");
    }
}

#[test]
fn each_call_logs_one_line_with_its_status_and_echoes_the_callers_id() {
    let mut server = binary(&["--in-memory", "--log-format", "json"]);
    let addr = server.addr();
    let ok = http1::send(
        addr,
        "GET",
        "/v1/orders/101",
        &[("x-request-id", "http-ok-1")],
        b"",
    );
    assert_eq!(ok.header("x-request-id"), Some("http-ok-1"));
    let missing = http1::send(
        addr,
        "GET",
        "/v1/orders/zz",
        &[("x-request-id", "http-404-1")],
        b"",
    );
    assert_eq!(missing.json()["request_id"], "http-404-1");
    let stream = http1::send(
        addr,
        "GET",
        "/v1/orders?q=item",
        &[("x-request-id", "http-search-1")],
        b"",
    );
    assert_eq!(stream.lines().len(), 1);
    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));
    let rest = server.rest_of_log();
    let text = format!("{}{rest}", server.startup);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = call_line(&lines, "http-ok-1");
    assert_eq!(log_str(line, "status"), "Ok");
    assert_eq!(log_str(line, "method"), "/v1/orders/101");
    assert_eq!(log_str(line, "order_id"), "101");
    assert_eq!(
        log_str(call_line(&lines, "http-404-1"), "status"),
        "NotFound"
    );
    assert_eq!(log_str(call_line(&lines, "http-search-1"), "status"), "Ok");
}

/// Starts a POST whose body never completes: the call holds its write slot
/// until the message timeout.
fn held_write(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{\"items\":"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

#[test]
fn writes_take_admission_slots_and_a_body_that_never_ends_is_504() {
    let server = Prod::start(&[
        "--max-concurrent-writes",
        "1",
        "--max-queued-writes",
        "0",
        "--request-message-timeout",
        "1",
    ]);
    let mut held = held_write(server.addr);
    // Once the held call is admitted, the next write is refused at once
    // (the held one may need a moment to arrive: ask until it has).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = http1::json(server.addr, "POST", "/v1/orders", r#"{"items":["a"]}"#);
        if reply.status == 429 {
            error_of(&reply, 429, "RESOURCE_EXHAUSTED");
            break;
        }
        assert_eq!(reply.status, 201, "{reply:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the held write never took the slot"
        );
        // A held write that arrived while one of these held the slot was
        // refused (or, admitted, has timed out): it has an answer. Hold
        // another.
        held.set_read_timeout(Some(std::time::Duration::from_millis(1)))
            .unwrap();
        if held.peek(&mut [0; 1]).is_ok() {
            held = held_write(server.addr);
        }
    }
    // Reads have their own slots.
    assert_eq!(http1::get(server.addr, "/v1/orders/101").status, 200);
    // The held body never completes: its call ends with 504.
    use std::io::Read as _;
    held.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = held.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("--request-message-timeout"), "{text}");
}

#[test]
fn an_error_after_the_first_message_is_the_streams_last_line() {
    let server = Prod::start(&["--batch-size", "1"]);
    let body = r#"["101","nope","101"]"#;
    let reply = http1::send(
        server.addr,
        "POST",
        "/v1/shipments:process",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "mid-stream-1"),
        ],
        body.as_bytes(),
    );
    assert_eq!(
        reply.status, 200,
        "the first shipment was already sent: {reply:?}"
    );
    let lines = reply.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["id"], "cmb - Seoul");
    let error = &lines[1]["error"];
    assert_eq!(error["status"], "NOT_FOUND", "{error}");
    assert_eq!(error["request_id"], "mid-stream-1");

    let sse = http1::send(
        server.addr,
        "POST",
        "/v1/shipments:process",
        &[
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ],
        body.as_bytes(),
    );
    assert!(sse.text().contains("event: error\ndata: {"), "{sse:?}");
}
