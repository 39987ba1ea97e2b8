//! The real client binary against a real server on a loopback port.

mod common;

use std::net::TcpListener;
use std::sync::Arc;

use common::{TestServer, run_client, stderr, stdout};
use order_management::seed;
use order_management::store::MemoryStore;

fn seeded() -> TestServer {
    TestServer::start(Arc::new(MemoryStore::with_orders([seed::order_101()])))
}

#[test]
fn prints_order_101_in_the_seed_text_layout() {
    let server = seeded();
    for args in [&["101"][..], &["get", "101"]] {
        let out = server.client(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "id: \"101\"\n\
             items: \"Item - A\"\n\
             items: \"Item - B\"\n\
             description: \"Sample order description.\"\n\
             price: 1000.0\n\
             destination: \"Seoul\"\n"
        );
    }
}

#[test]
fn json_prints_the_proto3_json_mapping() {
    let server = seeded();
    let out = server.client(&["--json", "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "id": "101",
            "items": ["Item - A", "Item - B"],
            "description": "Sample order description.",
            "price": 1000.0,
            "destination": "Seoul"
        })
    );
}

#[test]
fn unknown_order_is_one_line_and_exit_code_3() {
    let server = seeded();
    let out = server.client(&["102"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "client: NotFound: Order : 102 Not Found.\n");
}

#[test]
fn empty_id_is_invalid_argument_exit_code_4() {
    let server = seeded();
    let out = server.client(&["get", ""]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        stderr(&out),
        "client: InvalidArgument: order id must not be empty\n"
    );
}

#[test]
fn unreachable_server_names_the_address_exit_code_6() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_client(&url, &["101"]);
    assert_eq!(out.status.code(), Some(6));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line, no backtrace: {err}");
    assert!(err.contains(&url) && err.contains("refused"), "{err}");
}

#[test]
fn no_command_and_bad_server_url_are_usage_errors() {
    let server = seeded();
    let out = server.client(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no command given"));

    let out = run_client("not a url", &["101"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid --server URL"),
        "{}",
        stderr(&out)
    );
}
