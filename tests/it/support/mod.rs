//! Helpers shared by the integration tests' modules.

pub mod certs;
pub mod http1;
pub mod process;
pub mod raw;
pub mod store;
pub mod wire;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;

use order_management::Order;
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::server;
use order_management::service::{OrderService, ServiceConfig};
use order_management::store::{MemoryStore, OrderStore, RedbStore};
use tokio::sync::oneshot;

/// A real server on an ephemeral loopback port, on its own thread and
/// runtime, so tests can be plain `#[test]`s that run the client binary.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub fn start(store: Arc<dyn OrderStore>) -> Self {
        Self::start_with(store, ServiceConfig::default())
    }

    pub fn start_with(store: Arc<dyn OrderStore>, config: ServiceConfig) -> Self {
        let service = OrderService::with_config(store, config);
        // Bind synchronously so this works from sync and async tests alike.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("test runtime");
            runtime
                .block_on(async {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    server::serve(listener, service, async {
                        let _ = stopped.await;
                    })
                    .await
                })
                .expect("test server failed");
        });
        Self {
            addr,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A generated client connected to this server.
    pub async fn connect(&self) -> OrderManagementClient<tonic::transport::Channel> {
        OrderManagementClient::connect(self.url())
            .await
            .expect("connect to the test server")
    }

    /// Runs the real client binary against this server.
    pub fn client(&self, args: &[&str]) -> Output {
        run_client(&self.url(), args)
    }
}

impl Drop for TestServer {
    /// Starts a graceful shutdown without waiting for it: an async test's
    /// client connections only close once its runtime runs again, so joining
    /// here could wait forever. The thread ends when the last one closes.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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

/// Runs `assertions` with insta keeping snapshot files in `tests/snapshots/`,
/// each named by its snapshot name alone (no module path prefix). The wire
/// and contract snapshots are the protocol: they keep the files they had as
/// test binaries of their own (`wire_snapshots__order_101.snap`, ...), so
/// the names given to `assert_snapshot!` spell out that old prefix.
pub fn in_tests_snapshots<R>(assertions: impl FnOnce() -> R) -> R {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(assertions)
}

/// The store implementations every behaviour test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redb,
    /// A fresh PostgreSQL server per store, started by the test
    /// (`crate::postgres::harness`).
    Postgres,
}

impl Backend {
    /// A fresh store of this kind holding `orders`. `None` only for
    /// PostgreSQL when it is not installed and CI is not set (the harness
    /// says loudly that the test is skipped).
    pub async fn try_store(
        self,
        orders: impl IntoIterator<Item = Order>,
    ) -> Option<Arc<dyn OrderStore>> {
        if let Backend::Postgres = self {
            use order_management::store::{PgOptions, PgStore};
            let pg = crate::postgres::harness::Postgres::start()?;
            let url = pg.create_database("orders").await;
            let store = PgStore::connect(&url, PgOptions::default())
                .await
                .expect("connect to the test PostgreSQL");
            store
                .insert_many(orders.into_iter().collect())
                .await
                .expect("load orders");
            // The server is stopped when the store is dropped.
            return Some(Arc::new(store::Hooked::new(Arc::new(store)).holding(pg)));
        }
        Some(self.store(orders))
    }

    /// A fresh in-process store of this kind holding `orders`.
    pub fn store(self, orders: impl IntoIterator<Item = Order>) -> Arc<dyn OrderStore> {
        match self {
            Backend::Postgres => panic!("PostgreSQL stores are made by try_store"),
            Backend::Memory => Arc::new(MemoryStore::with_orders(orders)),
            Backend::Redb => {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = RedbStore::open(dir.path()).expect("open a redb store");
                store
                    .insert_many_blocking(orders.into_iter().collect())
                    .expect("load orders");
                // The temporary directory is deleted with the store.
                Arc::new(store::Hooked::new(Arc::new(store)).holding(dir))
            }
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each named
/// `async fn name(backend: Backend)`: `memory::name`, `redb::name` and
/// `postgres::name`.
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::support::Backend::Memory).await
            })*
        }
        mod redb {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::support::Backend::Redb).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::support::Backend::Postgres).await
            })*
        }
    };
}
pub(crate) use for_each_backend;
