//! The real server binary: it says where it listens, serves order 101, and
//! exits 0 on SIGTERM and on Ctrl-C (SIGINT).

use std::process::Command;

use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr};

fn start() -> ServerProcess {
    ServerProcess::start(&["--in-memory"]).expect("server starts")
}

#[test]
fn serves_order_101_then_exits_0_on_sigterm() {
    let mut server = start();
    let out = run_client(&server.url, &["101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn logs_one_line_per_call_and_exits_0_on_sigint() {
    let mut server = start();
    run_client(&server.url, &["102"]);
    server.signal("INT");
    assert_eq!(server.wait_exit().code(), Some(0));
    let rest = server.rest_of_log();
    let call = rest
        .lines()
        .find(|l| l.contains("getOrder"))
        .unwrap_or_else(|| panic!("no call line in the log:\n{rest}"));
    assert!(
        call.ends_with(" order_id=102") && call.contains(" status=NotFound "),
        "{call}"
    );
}

/// The call line does not go through tracing's dispatch (it is the one line
/// every call writes), yet `RUST_LOG` still turns it off on its own.
#[test]
fn rust_log_can_turn_the_call_lines_off_and_leave_the_rest() {
    let env = [("RUST_LOG", "info,order_management::call=off")];
    let mut server = ServerProcess::start_with_env(&["--in-memory"], &env).unwrap();
    run_client(&server.url, &["101"]);
    run_client(&server.url, &["102"]);
    server.signal("INT");
    assert_eq!(server.wait_exit().code(), Some(0));
    let rest = server.rest_of_log();
    assert!(
        !rest.contains("call ended"),
        "call lines while off:\n{rest}"
    );
    // The server's own lines still come (how it stopped).
    assert!(rest.contains(" INFO "), "no other line either:\n{rest}");
}

#[test]
fn a_taken_address_is_a_clear_error() {
    let server = start();
    let addr = server.url.trim_start_matches("http://");
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--in-memory", "--listen", addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn no_seed_starts_empty() {
    let server = ServerProcess::start(&["--in-memory", "--no-seed"]).unwrap();
    let out = run_client(&server.url, &["101"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
