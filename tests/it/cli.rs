//! The real client binary against a real server on a loopback port.

use std::net::TcpListener;
use std::sync::Arc;

use crate::support::{TestServer, run_client, stderr, stdout};
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
        stderr(&out).contains("invalid --server address"),
        "{}",
        stderr(&out)
    );
}

fn run_client_with_stdin(url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .arg("--server")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn add_search_update_and_process_from_the_command_line() {
    let server = seeded();
    let add = [
        "add",
        "--id",
        "102",
        "--item",
        "Google Pixel 3A",
        "--item",
        "Mac Book Pro",
        "--price",
        "1800",
        "--destination",
        "Mountain View, CA",
    ];
    let out = server.client(&add);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "102\n");

    // The same id again: ALREADY_EXISTS, exit code 5.
    let out = server.client(&add);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        stderr(&out),
        "client: AlreadyExists: order 102 already exists\n"
    );

    // A generated id, printed as a JSON string with --json.
    let out = server.client(&[
        "--json",
        "add",
        "--item",
        "Pixel case",
        "--price",
        "0",
        "--destination",
        "Seoul",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let generated: String = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(!generated.is_empty());

    // Search prints each match as a text block, blank line between them.
    let out = server.client(&["search", "PIXEL"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{text}");
    assert!(
        blocks
            .iter()
            .any(|b| b.starts_with("id: \"102\"\nitems: \"Google Pixel 3A\"\n"))
    );

    // Update from stdin, one JSON order per line.
    let orders = r#"{"id":"102","items":["Google Pixel 4"],"price":900,"destination":"Seoul"}
{"id":"101","items":["Item - C"],"price":1,"destination":"Busan"}
"#;
    let out = run_client_with_stdin(&server.url(), &["update", "-"], orders);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Updated Order IDs : 102, 101\n");

    // Process: JSON shipments, one per line, as they arrive.
    let out = server.client(&["--json", "process", "101", "102"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shipments: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(shipments.len(), 2);
    assert_eq!(shipments[0]["id"], "cmb - Busan");
    assert_eq!(shipments[0]["status"], "Processed!");
    assert_eq!(shipments[0]["ordersList"][0]["id"], "101");
    assert_eq!(shipments[1]["id"], "cmb - Seoul");
}

#[test]
fn update_rejects_bad_input_files_before_calling() {
    let server = seeded();
    // Not a name made from the process id: every test shares this process.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "[{\"id\":\"101\",\"itemz\":[\"a\"]}]").unwrap();
    let out = server.client(&["update", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("element 0") && stderr(&out).contains("itemz"),
        "{}",
        stderr(&out)
    );

    let out = server.client(&["update", dir.join("missing.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));

    // A valid file naming an unknown order: NOT_FOUND, nothing applied.
    let unknown = dir.join("unknown.json");
    std::fs::write(
        &unknown,
        r#"[{"id":"101","items":["changed"]},{"id":"999","items":["x"]}]"#,
    )
    .unwrap();
    let out = server.client(&["update", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("999"), "{}", stderr(&out));
    assert!(stdout(&server.client(&["101"])).contains("Item - A"));
}

#[test]
fn invalid_order_and_unknown_shipment_have_their_exit_codes() {
    let server = seeded();
    let out = server.client(&[
        "add",
        "--item",
        "x",
        "--price",
        "-1",
        "--destination",
        "Seoul",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("price"), "{}", stderr(&out));

    let out = server.client(&["process", "101", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

/// `--timeout` bounds the whole call: a server that accepts the connection
/// but never answers gives DEADLINE_EXCEEDED (exit 7) on time.
#[test]
fn timeout_is_honoured_against_a_server_that_never_answers() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let out = run_client(&url, &["--timeout", "0.5", "101"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("0.5s"), "{}", stderr(&out));
    drop(silent);
}
