//! Seeing the server run: the admin listener's Prometheus metrics and
//! health endpoints (`metrics`), and the Grafana dashboard shipped in
//! `deploy/` (`dashboard`).
//!
//! Metrics are one set per process, so these tests run the real server
//! binary: the counts they check are that server's alone.

mod dashboard;
mod metrics;
mod traces;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::process::ServerProcess;

/// The server binary with `--admin-listen 127.0.0.1:0` and `args`, and the
/// admin address it logged.
pub(crate) fn with_admin(args: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut all = vec!["--admin-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let server = ServerProcess::start(&all)
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"));
    let addr = server
        .startup
        .lines()
        .find_map(|line| line.split("/readyz) on http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin address in the log:\n{}", server.startup))
        .parse()
        .expect("an admin socket address");
    (server, addr)
}

/// `GET path` over HTTP/1.1: the status code and the body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the admin listener answers within 30 s");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}
