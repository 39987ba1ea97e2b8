//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod wire;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread::JoinHandle;

use order_management::server;
use order_management::service::OrderService;
use order_management::store::OrderStore;
use tokio::sync::oneshot;

/// A real server on an ephemeral loopback port, on its own thread and
/// runtime, so tests can be plain `#[test]`s that run the client binary.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(store: Arc<dyn OrderStore>) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("test runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind an ephemeral loopback port");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime
                .block_on(server::serve(listener, OrderService::new(store), async {
                    let _ = stopped.await;
                }))
                .expect("test server failed");
        });
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs the real client binary against this server.
    pub fn client(&self, args: &[&str]) -> Output {
        run_client(&self.url(), args)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the client binary with `--server url` and the given arguments.
pub fn run_client(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_client"))
        .arg("--server")
        .arg(url)
        .args(args)
        .env_remove("ORDER_SERVER")
        .output()
        .expect("run the client binary")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("client stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("client stderr is UTF-8")
}
