//! The server's configuration: every flag, its environment variable and its
//! default. Defaults that the service also needs come from
//! [`ServiceConfig::DEFAULT`], so each default is written once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::log::LogFormat;
use crate::service::ServiceConfig;

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
    #[arg(long, env = "ORDER_BATCH_SIZE", default_value_t = ServiceConfig::DEFAULT.batch_size as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// The most orders one updateOrders call may carry (RESOURCE_EXHAUSTED beyond).
    #[arg(long, env = "ORDER_MAX_UPDATE_ORDERS", default_value_t = ServiceConfig::DEFAULT.max_update_orders as u32, value_parser = clap::value_parser!(u32).range(1..))]
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

impl Config {
    /// What the RPC handlers are configured with.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            batch_size: self.batch_size as usize,
            max_update_orders: self.max_update_orders as usize,
        }
    }

    /// The longest any call may run (`--max-call-seconds`; 0 = no limit).
    pub fn max_call(&self) -> Result<Option<Duration>, String> {
        match self.max_call_seconds {
            0.0 => Ok(None),
            s => seconds("--max-call-seconds", s).map(Some),
        }
    }
}

/// A flag's number of seconds as a `Duration`, or a message naming the flag.
pub fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} must be a number of seconds >= 0, got {value}"))
}
