//! The server process: configuration, listening, logging and clean shutdown.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::pb::order_management_server::OrderManagementServer;
use crate::seed;
use crate::service::{OrderService, ServiceConfig};
use crate::store::{MemoryStore, OrderStore, RedbStore};

/// The ecommerce.OrderManagement gRPC server.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
pub struct Config {
    /// Address to listen on; `[::]` accepts IPv6 and IPv4 where the system allows.
    #[arg(long, env = "ORDER_LISTEN", default_value = "[::]:50051")]
    pub listen: SocketAddr,

    /// Directory of the durable store (created if missing); holds orders.redb.
    #[arg(long, env = "ORDER_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Keep orders in memory only: nothing survives a restart.
    #[arg(long, env = "ORDER_IN_MEMORY", conflicts_with = "data_dir")]
    pub in_memory: bool,

    /// Do not insert the seed's order 101 into an empty store.
    #[arg(long, env = "ORDER_NO_SEED")]
    pub no_seed: bool,

    /// processOrders sends the shipments so far every this many order ids.
    #[arg(long, env = "ORDER_BATCH_SIZE", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// The most orders one updateOrders call may carry (RESOURCE_EXHAUSTED beyond).
    #[arg(long, env = "ORDER_MAX_UPDATE_ORDERS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_update_orders: u32,
}

impl Config {
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            batch_size: self.batch_size as usize,
            max_update_orders: self.max_update_orders as usize,
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM. Used by `src/bin/server.rs`.
pub async fn main(config: Config) -> Result<(), String> {
    init_logging();
    let store = open_store(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    tracing::info!("listening on {local}");

    let service = OrderService::with_config(store, config.service_config());
    serve(listener, service, shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store the configuration asks for and seeds it if it is empty.
pub fn open_store(config: &Config) -> Result<Arc<dyn OrderStore>, String> {
    let store: Arc<dyn OrderStore> = if config.in_memory {
        tracing::info!("orders are kept in memory only (--in-memory): nothing survives a restart");
        Arc::new(MemoryStore::new())
    } else {
        let store = RedbStore::open(&config.data_dir).map_err(|e| e.to_string())?;
        let path = std::path::absolute(store.path()).unwrap_or_else(|_| store.path().to_owned());
        tracing::info!(
            "orders are stored in {} ({} orders)",
            path.display(),
            store.len()
        );
        Arc::new(store)
    };
    if !config.no_seed && is_empty(store.as_ref())? {
        store
            .insert(seed::order_101())
            .map_err(|e| format!("cannot insert the seed order 101: {e}"))?;
        tracing::info!("empty store: inserted the seed's order 101");
    }
    Ok(store)
}

fn is_empty(store: &dyn OrderStore) -> Result<bool, String> {
    let page = store
        .scan(None, 1, &|_| true)
        .map_err(|e| format!("cannot read the store: {e}"))?;
    Ok(page.orders.is_empty())
}

/// Serves `service` on an already bound listener until `shutdown` resolves,
/// then lets in-flight calls finish. Tests use this with an ephemeral port.
pub async fn serve(
    listener: TcpListener,
    service: OrderService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_service(OrderManagementServer::new(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, the signals service managers send.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Logs to stderr; the level comes from `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
