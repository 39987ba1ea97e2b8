//! The server process: configuration, store, services, transport, logging
//! and graceful shutdown. The RPC handlers live in `service`; what wraps
//! every call (auth, limits, logs) in `middleware`.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::log_format::LineFormat;
use crate::log_writer::LogWriter;
use crate::middleware::CallLayer;
use crate::middleware::admission::Admission;
use crate::middleware::auth::Auth;
use crate::pb::order_management_server::OrderManagementServer;
use crate::pb::{FILE_DESCRIPTOR_SET, SERVICE_NAME};
use crate::seed;
use crate::service::{OrderService, ServiceConfig};
use crate::store::{MemoryStore, OrderStore, RedbStore};

/// The ecommerce.OrderManagement gRPC server.
///
/// Every flag can also be set with the environment variable shown.
/// Limits default to gRPC core's and grpc-go's choices where they have one.
#[derive(Debug, Clone, Parser)]
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

    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, env = "ORDER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGINT/SIGTERM, in-flight calls get this long (seconds) to finish;
    /// then they end with UNAVAILABLE and the process exits 0.
    #[arg(long, env = "ORDER_SHUTDOWN_GRACE", default_value_t = 10.0)]
    pub shutdown_grace: f64,

    /// PEM certificate chain: serve TLS (with --tls-key).
    #[arg(long, env = "ORDER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "ORDER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): require client certificates signed by it (mTLS).
    #[arg(long, env = "ORDER_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,

    /// File holding a bearer token that every call but health checks must present.
    #[arg(long, env = "ORDER_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Largest request message accepted, in bytes (OUT_OF_RANGE beyond, as tonic
    /// reports it; RESOURCE_EXHAUSTED if a compressed message inflates past it).
    #[arg(long, env = "ORDER_MAX_REQUEST_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Largest response message sent, in bytes.
    #[arg(long, env = "ORDER_MAX_RESPONSE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "ORDER_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,

    /// Calls in flight across the server; beyond it, RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "ORDER_MAX_CONCURRENT_CALLS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_calls: u32,

    /// Largest request header list (metadata), in bytes.
    #[arg(long, env = "ORDER_MAX_HEADER_LIST_BYTES", default_value_t = 16 * 1024)]
    pub max_header_list_bytes: u32,

    /// Seconds between HTTP/2 keepalive pings on idle connections.
    #[arg(long, env = "ORDER_KEEPALIVE_INTERVAL", default_value_t = 60.0)]
    pub keepalive_interval: f64,

    /// Seconds to wait for a keepalive ping's answer before closing the connection.
    #[arg(long, env = "ORDER_KEEPALIVE_TIMEOUT", default_value_t = 20.0)]
    pub keepalive_timeout: f64,

    /// Worker threads; 0 uses every CPU this process may run on. With one,
    /// the server runs on a single-threaded runtime (no cross-thread
    /// scheduling, measurably faster when pinned to one core).
    #[arg(long, env = "ORDER_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// The longest any call may run, in seconds, whatever its own deadline
    /// (DEADLINE_EXCEEDED beyond); 0 for no limit.
    #[arg(long, env = "ORDER_MAX_CALL_SECONDS", default_value_t = 300.0)]
    pub max_call_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn service_config(&self) -> Result<ServiceConfig, String> {
        Ok(ServiceConfig {
            batch_size: self.batch_size as usize,
            max_update_orders: self.max_update_orders as usize,
            max_call_duration: match self.max_call_seconds {
                0.0 => None,
                s => Some(seconds("--max-call-seconds", s)?),
            },
        })
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} must be a number of seconds >= 0, got {value}"))
}

/// The tokio runtime `--threads` asks for.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Runs the server until SIGINT or SIGTERM. Used by `src/bin/server.rs`.
pub async fn main(config: Config) -> Result<(), String> {
    // Log lines are written by a background thread, in batches: a call
    // pays for formatting its line, not for a write to stderr. Nothing is
    // dropped: if stderr cannot keep up, calls wait.
    let (writer, _flush_on_exit) = LogWriter::start(std::io::stderr())
        .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
    init_logging(config.log_format, writer);
    let store = open_store(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let running = Running::start(&config, store, listener).await?;
    tracing::info!("listening on {local}");
    running.until(shutdown_signal()).await
}

/// A server that is serving; see [`Running::until`].
pub struct Running {
    serve: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    stop_accepting: tokio::sync::oneshot::Sender<()>,
    abort: CancellationToken,
    health: HealthReporter,
    grace: Duration,
}

impl Running {
    /// Builds every service, marks them SERVING, and starts serving on
    /// `listener`: health answers SERVING from the first call on.
    pub async fn start(
        config: &Config,
        store: Arc<dyn OrderStore>,
        listener: TcpListener,
    ) -> Result<Self, String> {
        let abort = CancellationToken::new();
        let service_config = config.service_config()?;
        let max_call = service_config.max_call_duration;
        let service = OrderService::with_config(store, service_config).with_abort(abort.clone());
        let orders = OrderManagementServer::new(service)
            .max_decoding_message_size(config.max_request_bytes)
            .max_encoding_message_size(config.max_response_bytes)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in ["", SERVICE_NAME] {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| format!("cannot build the reflection service: {e}"))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| format!("cannot build the reflection service: {e}"))?;

        let auth = config
            .auth_token_file
            .as_deref()
            .map(Auth::from_file)
            .transpose()?;
        let admission = Admission::new(config.max_concurrent_calls as usize);
        let layer = CallLayer::new(auth, admission, max_call, abort.clone());

        let mut builder = Server::builder()
            .max_concurrent_streams(config.max_concurrent_streams)
            .http2_max_header_list_size(config.max_header_list_bytes)
            .http2_keepalive_interval(Some(seconds(
                "--keepalive-interval",
                config.keepalive_interval,
            )?))
            .http2_keepalive_timeout(Some(seconds(
                "--keepalive-timeout",
                config.keepalive_timeout,
            )?))
            .tcp_nodelay(true);
        if let Some(tls) = tls_config(config)? {
            builder = builder
                .tls_config(tls)
                .map_err(|e| format!("invalid TLS configuration: {e}"))?;
        }
        let router = builder
            .layer(layer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(orders);

        let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = tokio::spawn(
            router.serve_with_incoming_shutdown(incoming(listener), async {
                let _ = stopped.await;
            }),
        );
        Ok(Self {
            serve,
            stop_accepting,
            abort,
            health,
            grace: seconds("--shutdown-grace", config.shutdown_grace)?,
        })
    }

    /// Serves until `signal`, then shuts down: health goes NOT_SERVING, the
    /// listener closes, in-flight calls get the grace period to finish, the
    /// rest (any service's streams, health watches included) end with
    /// UNAVAILABLE.
    pub async fn until(self, signal: impl Future<Output = ()>) -> Result<(), String> {
        let Running {
            mut serve,
            stop_accepting,
            abort,
            health,
            grace,
        } = self;
        for name in ["", SERVICE_NAME] {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        tokio::select! {
            () = signal => {}
            result = &mut serve => return flatten(result),
        }
        for name in ["", SERVICE_NAME] {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = stop_accepting.send(());
        tracing::info!("shutting down: waiting up to {grace:?} for calls in flight");
        if let Ok(result) = tokio::time::timeout(grace, &mut serve).await {
            tracing::info!("stopped");
            return flatten(result);
        }
        abort.cancel();
        // Calls still open now end with UNAVAILABLE; give their last frames
        // a moment to leave, then stop even if a peer does not answer.
        match tokio::time::timeout(Duration::from_secs(2), &mut serve).await {
            Ok(result) => flatten(result)?,
            Err(_) => serve.abort(),
        }
        tracing::warn!(
            "stopped after the grace period; calls still open were ended with UNAVAILABLE"
        );
        Ok(())
    }
}

fn flatten(
    result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), String> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("server failed: {e}")),
        Err(e) => Err(format!("server task failed: {e}")),
    }
}

fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, String> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read(cert, "TLS certificate")?,
        read(key, "TLS key")?,
    ));
    if let Some(ca) = &config.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
    }
    Ok(Some(tls))
}

/// Opens the store the configuration asks for and seeds it if it is empty.
pub fn open_store(config: &Config) -> Result<Arc<dyn OrderStore>, String> {
    let seed = (!config.no_seed).then(seed::order_101);
    if config.in_memory {
        tracing::info!("orders are kept in memory only (--in-memory): nothing survives a restart");
        if seed.is_some() {
            tracing::info!("empty store: inserted the seed's order 101");
        }
        return Ok(Arc::new(MemoryStore::with_orders(seed)));
    }
    let store = RedbStore::open(&config.data_dir).map_err(|e| e.to_string())?;
    let path = std::path::absolute(store.path()).unwrap_or_else(|_| store.path().to_owned());
    let count = store
        .count_blocking()
        .map_err(|e| format!("cannot read the store: {e}"))?;
    tracing::info!("orders are stored in {} ({count} orders)", path.display());
    if let Some(seed) = seed.filter(|_| count == 0) {
        store
            .insert_many_blocking(vec![seed])
            .map_err(|e| format!("cannot insert the seed order 101: {e}"))?;
        tracing::info!("empty store: inserted the seed's order 101");
    }
    Ok(Arc::new(store))
}

/// Serves `service` alone on an already bound listener until `shutdown`
/// resolves: the bare service, without the production layers. Tests use it.
pub async fn serve(
    listener: TcpListener,
    service: OrderService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_service(OrderManagementServer::new(service))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}

/// Connections from an already bound listener, with TCP_NODELAY set.
/// `Server::tcp_nodelay` applies only to listeners tonic binds itself; left
/// to Nagle, a call that writes twice (a stream's messages, or a reply
/// after the 10th update) waited ~40 ms for the peer's delayed ACK.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
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

/// Logs to `writer` (stderr), as text or JSON lines; the level comes from
/// `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat, writer: LogWriter) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.event_format(LineFormat::text()).init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(LineFormat::json())
            .init(),
    }
}
