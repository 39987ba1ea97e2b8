//! The newcomer's path (issue 17) with the real client binary against the
//! real server binary: one-line errors carrying the request id, the
//! addresses people type, "did you mean", values reported as typed,
//! standard input, JSON output and errors, completions.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::certs::TestPki;
use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr, stdout};

fn server() -> ServerProcess {
    ServerProcess::start(&["--in-memory"])
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"))
}

/// The client with `args` (no --server) and `env`, `stdin` piped in.
fn client(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command
        .args(args)
        .env_remove("ORDER_SERVER")
        .env_remove("ORDER_REQUEST_ID")
        .env_remove("ORDER_OUTPUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("run the client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn exit(out: &Output) -> i32 {
    out.status.code().expect("the client exited")
}

/// `client: MESSAGE (request id ID)` -> (`client: MESSAGE`, `ID`).
fn split_request_id(err: &str) -> (String, String) {
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let (line, id) = err
        .trim_end()
        .strip_suffix(')')
        .and_then(|s| s.rsplit_once(" (request id "))
        .unwrap_or_else(|| panic!("no request id on the error line: {err}"));
    (line.to_owned(), id.to_owned())
}

#[test]
fn errors_are_one_line_with_violations_folded_and_the_request_id() {
    let server = server();
    let long = "d".repeat(5000);
    let out = run_client(
        &server.url,
        &[
            "add",
            "--item",
            "x",
            "--price",
            "-1",
            "--destination",
            "Seoul",
            "--description",
            &long,
        ],
    );
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    let (line, id) = split_request_id(&stderr(&out));
    assert!(
        line.starts_with("client: InvalidArgument: invalid order"),
        "{line}"
    );
    assert!(
        line.contains("price") && line.contains("description"),
        "{line}"
    );
    assert_eq!(line.matches("price").count(), 1, "said once: {line}");
    assert_eq!(id.len(), 36, "a UUIDv7 made by the server: {id}");

    // The caller's own request id, by flag or environment variable.
    let out = run_client(&server.url, &["--request-id", "my-call-1", "get", "102"]);
    assert_eq!(exit(&out), 3);
    assert_eq!(
        split_request_id(&stderr(&out)),
        (
            "client: NotFound: Order : 102 Not Found.".to_owned(),
            "my-call-1".to_owned()
        )
    );
    let url = server.url.as_str();
    let out = client(
        &["--server", url, "102"],
        &[("ORDER_REQUEST_ID", "from-env")],
        "",
    );
    assert_eq!(split_request_id(&stderr(&out)).1, "from-env");
    let out = run_client(url, &["--request-id", "two words", "101"]);
    assert_eq!(exit(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--request-id"), "{}", stderr(&out));
}

#[test]
fn server_addresses_are_taken_as_people_type_them() {
    let server = server();
    let port = server.addr().port();
    for address in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let out = client(&["--server", &address, "101"], &[], "");
        assert_eq!(exit(&out), 0, "{address}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("id: \"101\""));
    }
    // Parsed, then refused by the network, not by the parser: exit 6.
    let v6 = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback");
    let v6_port = v6.local_addr().unwrap().port();
    drop(v6);
    for address in [
        format!("[::1]:{v6_port}"),
        "unix:/nonexistent/order.sock".to_owned(),
    ] {
        let out = client(&["--server", &address, "--timeout", "5", "101"], &[], "");
        assert_eq!(exit(&out), 6, "{address}: {}", stderr(&out));
    }
    for malformed in [
        "localhost",
        ":50051",
        "ftp://host:1",
        "host:port",
        "http://",
    ] {
        let out = client(&["--server", malformed, "101"], &[], "");
        assert_eq!(exit(&out), 2, "{malformed}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("invalid --server address") && err.lines().count() == 1,
            "{err}"
        );
    }
}

#[test]
fn a_mistyped_command_gets_a_suggestion_and_ids_keep_working() {
    let server = server();
    let url = server.url.as_str();
    let out = run_client(url, &["serach", "pixel"]);
    assert_eq!(exit(&out), 2);
    assert_eq!(
        stderr(&out),
        "client: unknown command `serach`; did you mean `search`?\n"
    );
    let out = run_client(url, &["serach"]);
    assert_eq!(exit(&out), 3);
    assert!(
        stderr(&out).contains("did you mean `search`?"),
        "{}",
        stderr(&out)
    );
    let out = run_client(url, &["version"]);
    assert!(
        stderr(&out).contains("`client --version`"),
        "{}",
        stderr(&out)
    );
    let out = run_client(url, &["102"]);
    assert!(!stderr(&out).contains("did you mean"), "{}", stderr(&out));
    assert_eq!(exit(&run_client(url, &["101"])), 0);
}

#[test]
fn values_are_reported_as_typed_and_empty_updates_refused() {
    let server = server();
    let url = server.url.as_str();
    let out = run_client(
        url,
        &[
            "add",
            "--item",
            "x",
            "--price",
            "1e40",
            "--destination",
            "y",
        ],
    );
    assert_eq!(exit(&out), 2);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("`1e40`") && !err.contains("inf"), "{err}");

    for empty in ["", "[]", "\n\n"] {
        let out = client(&["--server", url, "update", "-"], &[], empty);
        assert_eq!(exit(&out), 2, "{empty:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("holds no orders"), "{}", stderr(&out));
    }
}

#[test]
fn standard_input_round_trips_orders_and_ids() {
    let server = server();
    let url = server.url.as_str();
    let got = run_client(url, &["--json", "get", "101"]);
    assert_eq!(exit(&got), 0);
    // The same id again is ALREADY_EXISTS; --id gives the copy its own.
    let out = client(&["--server", url, "add", "-"], &[], &stdout(&got));
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
    let out = client(
        &["--server", url, "add", "--id", "104", "-"],
        &[],
        &stdout(&got),
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "104\n");
    let copy = run_client(url, &["--json", "get", "104"]);
    let mut original: serde_json::Value = serde_json::from_str(&stdout(&got)).unwrap();
    original["id"] = "104".into();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&copy)).unwrap(),
        original
    );

    let out = client(&["--server", url, "process", "-"], &[], "101\n\n 104 \n");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("id: \"104\""), "{}", stdout(&out));

    let two = format!("{}{}", stdout(&got), stdout(&got));
    let out = client(&["--server", url, "add", "-"], &[], &two);
    assert_eq!(exit(&out), 2);
    assert!(
        stderr(&out).contains("exactly one order"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_output_and_json_errors() {
    let server = server();
    let url = server.url.as_str();
    let out = run_client(url, &["--output", "json", "search", "item"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let found: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(found[0]["id"], "101", "one array: {found}");
    let out = run_client(url, &["--output", "jsonl", "search", "nothing-matches"]);
    assert_eq!(stdout(&out), "");
    let out = run_client(url, &["--output", "json", "search", "nothing-matches"]);
    assert_eq!(stdout(&out), "[]\n");

    for args in [&["--output", "json", "get", "102"][..], &["--json", "102"]] {
        let out = run_client(url, args);
        assert_eq!(exit(&out), 3);
        let error: serde_json::Value = serde_json::from_str(&stderr(&out)).unwrap();
        assert_eq!(error["code"], "NOT_FOUND", "{error}");
        assert_eq!(error["message"], "Order : 102 Not Found.");
        assert_eq!(error["request_id"].as_str().unwrap().len(), 36, "{error}");
    }
    let out = client(&["--output", "json", "--server", "nope", "101"], &[], "");
    assert_eq!(exit(&out), 2);
    let error: serde_json::Value = serde_json::from_str(&stderr(&out)).unwrap();
    assert_eq!(error["code"], "USAGE", "{error}");
}

#[test]
fn completions_and_the_man_page_are_printed() {
    for (shell, marker) in [
        ("bash", "_client()"),
        ("zsh", "#compdef client"),
        ("fish", "complete -c client"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = client(&["completions", shell], &[], "");
        assert_eq!(exit(&out), 0, "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains(marker), "{shell}");
        assert!(stdout(&out).contains("search"), "{shell}");
    }
    let out = client(&["man"], &[], "");
    assert_eq!(exit(&out), 0);
    assert!(stdout(&out).starts_with(".ie"), "{}", &stdout(&out)[..40]);
    assert!(stdout(&out).contains("request\\-id"), "{}", stdout(&out));
    // The committed page is the current one (`cargo xtask man` rewrites it).
    let committed = include_str!("../../docs/man/client.1");
    assert!(
        stdout(&out) == committed,
        "docs/man/client.1 is stale: run `cargo xtask man`"
    );
}

#[test]
fn https_without_a_ca_uses_the_system_roots_and_says_so() {
    let pki = TestPki::new();
    let server = ServerProcess::start(&[
        "--in-memory",
        "--tls-cert",
        pki.server.cert(),
        "--tls-key",
        pki.server.key(),
    ])
    .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"));
    // Signed by a test CA no system trusts: refused, naming the roots.
    let out = run_client(&server.https_url(), &["101"]);
    assert_eq!(exit(&out), 6, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("certificate") && err.contains("system's trust roots"),
        "{err}"
    );
    assert!(!err.contains("without TLS enabled"), "{err}");
    // host:port with --ca-cert is TLS.
    let address = format!("127.0.0.1:{}", server.addr().port());
    let out = run_client(&address, &["--ca-cert", pki.ca(), "101"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
}

/// Progress is drawn on stderr when it is a terminal (here a pseudo-terminal
/// made by util-linux `script`) and the results go elsewhere, and never
/// when stderr is a pipe.
#[test]
fn progress_only_on_a_terminal() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("found.txt");
    let inner = format!(
        "'{}' --server {} search item > '{}'",
        env!("CARGO_BIN_EXE_client"),
        server.url,
        results.display()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_remove("ORDER_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` (bsdutils) runs the client on a pseudo-terminal");
    assert!(out.status.success(), "{}", stderr(&out));
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(terminal.contains("messages received"), "{terminal:?}");
    assert!(
        std::fs::read_to_string(&results)
            .unwrap()
            .contains("id: \"101\"")
    );

    let out = run_client(&server.url, &["search", "item"]);
    assert_eq!(stderr(&out), "", "no progress on a pipe");
}
