//! The real server binary: it says where it listens, serves order 101, and
//! exits 0 on SIGTERM and on Ctrl-C (SIGINT).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_client, stderr};

/// The server process; killed if a test fails before it exits by itself.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on an ephemeral port and reads the bound address from
/// its "listening on ADDR" log line.
fn start_server() -> (ServerProcess, String, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("ORDER_LISTEN")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server binary");
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let child = ServerProcess(child);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read server log");
        assert!(n > 0, "server exited before listening");
        if let Some(addr) = line.trim_end().split("listening on ").nth(1) {
            return (child, format!("http://{addr}"), reader);
        }
    }
}

fn signal(server: &ServerProcess, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn wait_exit(server: &mut ServerProcess) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_order_101_then_exits_0_on_sigterm() {
    let (mut child, url, _log) = start_server();
    let out = run_client(&url, &["101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn logs_one_line_per_call_and_exits_0_on_sigint() {
    let (mut child, url, mut log) = start_server();
    run_client(&url, &["102"]);
    signal(&child, "INT");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
    let call = rest
        .lines()
        .find(|l| l.contains("getOrder"))
        .unwrap_or_else(|| panic!("no call line in the log:\n{rest}"));
    assert!(
        call.contains("order_id=\"102\"") && call.contains("NotFound"),
        "{call}"
    );
}

#[test]
fn a_taken_address_is_a_clear_error() {
    let (mut child, url, _log) = start_server();
    let addr = url.trim_start_matches("http://");
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--listen", addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    signal(&child, "TERM");
    wait_exit(&mut child);
}
