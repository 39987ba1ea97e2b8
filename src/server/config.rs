//! The server's configuration: every flag, its environment variable and its
//! default. Defaults that the service also needs come from
//! [`ServiceConfig::DEFAULT`], so each default is written once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::connections::{ConnectionLimits, default_max_connections};
use crate::buffer_budget::Budget;
use crate::log::LogFormat;
use crate::service::ServiceConfig;
use crate::store::RedbOptions;

/// The ecommerce.OrderManagement gRPC server.
///
/// Every flag can also be set with the environment variable shown.
/// Limits default to gRPC core's and grpc-go's choices where they have one.
#[derive(Debug, Clone, Parser)]
#[command(name = "server", version)]
pub struct Config {
    /// Without a command, the server serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on: `host:port`, `:port` or `port` (every
    /// address, `[::]`), `localhost:port`; `[::]` accepts IPv6 and IPv4
    /// where the system allows.
    #[arg(long, env = "ORDER_LISTEN", default_value = "[::]:50051", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Serve GET /metrics (Prometheus), /healthz and /readyz over plain HTTP
    /// on this address, e.g. `127.0.0.1:9090`; off by default. No auth: keep it private.
    #[arg(long, env = "ORDER_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Export a trace span per call (and per store operation) over OTLP/gRPC
    /// to this collector, e.g. `http://localhost:4317` (Jaeger, the
    /// OpenTelemetry Collector); off by default.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// With --otlp-endpoint: the share of traces started here that are
    /// recorded (0 to 1); a caller's sampled traceparent is always followed.
    #[arg(long, env = "ORDER_TRACE_SAMPLE_RATIO", default_value_t = 1.0)]
    pub trace_sample_ratio: f64,

    /// Directory of the durable store (created if missing); holds orders.redb.
    #[arg(long, env = "ORDER_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Memory for the embedded store's page cache, in MiB (reads and writes).
    #[arg(long, env = "ORDER_PAGE_CACHE_MB", default_value_t = RedbOptions::DEFAULT_PAGE_CACHE_MB, global = true)]
    pub page_cache_mb: usize,

    /// Memory for the embedded store's cache of decoded orders, in MiB
    /// (getOrder hits are answered from it without a disk read); 0 turns it off.
    #[arg(long, env = "ORDER_ORDER_CACHE_MB", default_value_t = RedbOptions::DEFAULT_ORDER_CACHE_MB)]
    pub order_cache_mb: usize,

    /// Seconds between checkpoints of the embedded store: writes are made
    /// durable by its write-ahead log (one sequential write and sync per
    /// group) and written into the data file at most this often. A restart
    /// after a crash replays at most this much. 0: no log; every group of
    /// writes is a durable commit of the data file (slower writes).
    #[arg(long, env = "ORDER_CHECKPOINT_SECONDS", default_value = "1", value_parser = checkpoint_seconds, global = true)]
    pub checkpoint_seconds: Duration,

    /// Keep orders in memory only: nothing survives a restart.
    /// (`--in-memory=false`, ORDER_IN_MEMORY: true/false, 1/0, yes/no, on/off.)
    /// (Conflicts with --data-dir and --database-url: checked by
    /// [`Config::from_command_line`], as `ORDER_IN_MEMORY=false` is no conflict.)
    #[arg(long, env = "ORDER_IN_MEMORY", value_parser = Boolish, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          hide_default_value = true)]
    pub in_memory: bool,

    /// Keep orders in PostgreSQL instead of the embedded store, e.g.
    /// `postgres://user:password@host/db?sslmode=verify-full` (libpq URL or
    /// key-value string). Several servers may share one database.
    #[arg(
        long,
        env = "ORDER_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Connections to PostgreSQL in the pool (each serves one call at a time).
    #[arg(long, env = "ORDER_DATABASE_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub database_pool_size: u32,

    /// Do not insert the seed's order 101 into an empty store.
    /// (`--no-seed=false`, ORDER_NO_SEED: true/false, 1/0, yes/no, on/off.)
    #[arg(long, env = "ORDER_NO_SEED", value_parser = Boolish, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          hide_default_value = true)]
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

    /// Origins (`https://app.example`, or `*`) whose pages may call the
    /// HTTP/JSON API and gRPC-Web from a browser (CORS); comma-separated.
    #[arg(long, env = "ORDER_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,

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

    /// Writes (addOrder, updateOrders) in flight across the server, apart from
    /// --max-concurrent-calls (reads), so writes waiting on the disk never
    /// starve reads; beyond it, writes wait (--max-queued-writes).
    #[arg(long, env = "ORDER_MAX_CONCURRENT_WRITES", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_writes: u32,

    /// Writes that may wait for a write slot, first come first served, until
    /// their deadline; beyond, or if the expected wait is longer than the
    /// call's deadline, RESOURCE_EXHAUSTED at once. 0: none wait.
    #[arg(long, env = "ORDER_MAX_QUEUED_WRITES", default_value_t = 1000)]
    pub max_queued_writes: u32,

    /// Health Watch streams open at once (they need no token).
    #[arg(long, env = "ORDER_MAX_HEALTH_WATCHES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_health_watches: u32,

    /// Seconds a call's request message may take to arrive after its headers
    /// (calls with one request message); DEADLINE_EXCEEDED beyond. 0 for no limit.
    #[arg(long, env = "ORDER_REQUEST_MESSAGE_TIMEOUT", default_value_t = 10.0)]
    pub request_message_timeout: f64,

    /// Bytes the server may hold for clients at once: request messages not
    /// yet complete, updateOrders' orders until the call ends (beyond it, the
    /// call that would go over gets RESOURCE_EXHAUSTED), and searchOrders
    /// results waiting for their reader (a search waits for room).
    #[arg(long, env = "ORDER_MAX_BUFFERED_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_buffered_bytes: usize,

    /// Bytes one updateOrders call may send (RESOURCE_EXHAUSTED beyond; none applied).
    #[arg(long, env = "ORDER_MAX_UPDATE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_update_bytes: usize,

    /// Calls in flight from one client IP address; 0 for no limit of its own
    /// (behind a proxy or load balancer every call comes from one address).
    #[arg(long, env = "ORDER_MAX_CALLS_PER_IP", default_value_t = 0)]
    pub max_calls_per_ip: u32,

    /// Largest request header list (metadata), in bytes.
    #[arg(long, env = "ORDER_MAX_HEADER_LIST_BYTES", default_value_t = 16 * 1024)]
    pub max_header_list_bytes: u32,

    /// Bytes of response data one stream may have waiting in the server
    /// for the peer to take (HTTP/2 send buffer; grpc-go's write quota is
    /// 64 KiB a stream, hyper's default 400 KiB): what a stream whose peer
    /// stops reading pins below the search pipe.
    #[arg(long, env = "ORDER_MAX_SEND_BUFFER_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_send_buffer_bytes: u32,

    /// Seconds between HTTP/2 keepalive pings on idle connections; 0 (the
    /// default) for none: a vanished peer is found by `--tcp-keepalive`
    /// instead, which costs a call nothing, where hyper's pings make it read
    /// the clock for every frame it receives (measured: ~4% fewer getOrder
    /// calls per second on one core).
    #[arg(long, env = "ORDER_KEEPALIVE_INTERVAL", default_value_t = 0.0)]
    pub keepalive_interval: f64,

    /// Seconds to wait for a keepalive ping's answer before closing the connection.
    #[arg(long, env = "ORDER_KEEPALIVE_TIMEOUT", default_value_t = 20.0)]
    pub keepalive_timeout: f64,

    /// Seconds a connection may be silent both ways before the kernel
    /// starts TCP keepalive probes (then one every 10 s; after 3 unanswered
    /// the connection is closed, ending its calls); 0 for none.
    #[arg(long, env = "ORDER_TCP_KEEPALIVE", default_value_t = 60.0)]
    pub tcp_keepalive: f64,

    /// Connections open at once; beyond it new connections are closed at once.
    /// 0: what the file-descriptor limit allows (raised to its hard limit), less 64.
    #[arg(long, env = "ORDER_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Connections open at once from one IP address.
    #[arg(long, env = "ORDER_MAX_CONNECTIONS_PER_IP", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: u32,

    /// Seconds a new connection has to send the HTTP/2 preface (and to finish
    /// the TLS handshake, with TLS) before it is closed.
    #[arg(long, env = "ORDER_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    pub handshake_timeout: f64,

    /// Seconds a connection may stay open with no call in flight; then it is
    /// sent GOAWAY and closed; 0 for no limit.
    #[arg(long, env = "ORDER_IDLE_TIMEOUT", default_value_t = 300.0)]
    pub idle_timeout: f64,

    /// Seconds a connection may go without the peer reading a byte while
    /// the server has bytes for it; then it is closed (with a reset, so the
    /// kernel drops its send queue too); 0 for no limit.
    #[arg(long, env = "ORDER_WRITE_STALL_TIMEOUT", default_value_t = 30.0)]
    pub write_stall_timeout: f64,

    /// Seconds after which a connection is asked to go away (GOAWAY; clients
    /// reconnect), spreading clients over replicas; 0 for no limit.
    #[arg(long, env = "ORDER_MAX_CONNECTION_AGE", default_value_t = 0.0)]
    pub max_connection_age: f64,

    /// Seconds the calls of a connection past its age get to finish before it is closed.
    #[arg(long, env = "ORDER_MAX_CONNECTION_AGE_GRACE", default_value_t = 10.0)]
    pub max_connection_age_grace: f64,

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
    /// The configuration from the process's arguments and environment;
    /// exits with clap's usage error (status 2) when they are not valid.
    pub fn from_command_line() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let config = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let given = |id: &str| {
            matches
                .value_source(id)
                .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
        };
        if config.in_memory && (given("data_dir") || given("database_url")) {
            let other = if given("data_dir") {
                "--data-dir (ORDER_DATA_DIR)"
            } else {
                "--database-url (ORDER_DATABASE_URL)"
            };
            Self::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--in-memory (ORDER_IN_MEMORY) cannot be used with {other}"),
                )
                .exit();
        }
        config
    }

    /// What the RPC handlers are configured with; `buffered` is the
    /// server's budget of `--max-buffered-bytes`, shared with the call layer.
    pub fn service_config(&self, buffered: Arc<Budget>) -> ServiceConfig {
        ServiceConfig {
            batch_size: self.batch_size as usize,
            max_update_orders: self.max_update_orders as usize,
            buffered: Some(buffered),
        }
    }

    /// The connection limits (`--max-connections`, `--max-connections-per-ip`,
    /// `--handshake-timeout`, `--tcp-keepalive`, `--write-stall-timeout`).
    pub fn connection_limits(&self) -> Result<ConnectionLimits, String> {
        Ok(ConnectionLimits {
            max_connections: match self.max_connections {
                0 => default_max_connections(),
                n => n,
            },
            max_per_ip: self.max_connections_per_ip as usize,
            handshake_timeout: seconds("--handshake-timeout", self.handshake_timeout)?,
            tcp_keepalive: optional_seconds("--tcp-keepalive", self.tcp_keepalive)?,
            write_stall_timeout: optional_seconds(
                "--write-stall-timeout",
                self.write_stall_timeout,
            )?,
        })
    }

    /// Calls in flight from one address of a pool of `limit` slots
    /// (`--max-calls-per-ip`; 0 = no limit of its own, i.e. `limit`).
    pub fn calls_per_ip(&self, limit: u32) -> usize {
        match self.max_calls_per_ip {
            0 => limit as usize,
            n => n.min(limit) as usize,
        }
    }

    /// The longest any call may run (`--max-call-seconds`; 0 = no limit).
    pub fn max_call(&self) -> Result<Option<Duration>, String> {
        optional_seconds("--max-call-seconds", self.max_call_seconds)
    }
}

/// `--checkpoint-seconds`: a number of seconds, 0 allowed.
fn checkpoint_seconds(value: &str) -> Result<Duration, String> {
    let number: f64 = value
        .parse()
        .map_err(|_| format!("not a number of seconds: {value:?}"))?;
    seconds("--checkpoint-seconds", number)
}

/// A flag's number of seconds, 0 meaning "no limit".
pub fn optional_seconds(flag: &str, value: f64) -> Result<Option<Duration>, String> {
    match value {
        0.0 => Ok(None),
        s => seconds(flag, s).map(Some),
    }
}

/// A flag's number of seconds as a `Duration`, or a message naming the flag.
pub fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} must be a number of seconds >= 0, got {value}"))
}

/// `--listen` as people type it: `host:port`, `[v6]:port`, `:port` and
/// `port` (every address: `[::]`), or a name such as `localhost:port`
/// (its first address).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
    }
    let expected = "expected host:port, :port or port, e.g. [::]:50051, 127.0.0.1:50051, :50051";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("`{text}` has no port; {expected}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("`{port}` in `{text}` is not a port; {expected}"));
    }
    use std::net::ToSocketAddrs as _;
    let mut addrs = (host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}` in `{text}`: {e}"))?;
    let first = addrs
        .next()
        .ok_or_else(|| format!("`{host}` in `{text}` has no address"))?;
    Ok(SocketAddr::new(
        first.ip(),
        port.parse().expect("checked above"),
    ))
}

/// A boolean flag's value, in the spellings people use in environment
/// files and compose files: true/false, 1/0, yes/no, on/off, any case.
/// A bad value names the environment variable when it came from there.
#[derive(Clone)]
pub struct Boolish;

impl clap::builder::TypedValueParser for Boolish {
    type Value = bool;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<bool, clap::Error> {
        let text = value.to_string_lossy();
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" => return Ok(true),
            "false" | "0" | "no" | "n" | "off" | "" => return Ok(false),
            _ => {}
        }
        let flag = arg
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .unwrap_or_default();
        // The variable when it holds this value and the flag was not typed
        // with one (`--flag=value` wins over the environment in clap).
        let from_env = arg
            .and_then(|a| a.get_env())
            .filter(|name| std::env::var_os(name).as_deref() == Some(value))
            .filter(|_| !std::env::args().any(|a| a.starts_with(&format!("{flag}="))));
        let source = match from_env {
            Some(name) => format!("{}={text}", name.to_string_lossy()),
            None => format!("{flag}={text}"),
        };
        let message = format!(
            "{source} is not a boolean: expected true/false, 1/0, yes/no or on/off (any case)\n"
        );
        Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd))
    }
}

/// What `server` does besides serving; each runs and exits.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply the PostgreSQL schema migrations (--database-url) and exit.
    /// Servers also apply them at start; replicas starting together migrate once.
    Migrate,
    /// Check the data file in full (redb's integrity check, every record
    /// decoded, the search index exact) and exit: 0 if sound, 1 if not.
    Verify,
    /// Add orders to the store from JSON lines (one order per line in the
    /// proto3 JSON mapping, as `client --json` prints them; `-` for stdin),
    /// a transaction of --batch orders at a time, and exit. An id already
    /// stored stops the import: the batches before it are kept.
    Import {
        /// The file of JSON lines, or `-` for standard input.
        file: String,
        /// Orders per transaction.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
    },
}

impl Config {
    /// The embedded store's options (`--page-cache-mb`, `--order-cache-mb`,
    /// `--checkpoint-seconds`).
    pub fn redb_options(&self) -> RedbOptions {
        RedbOptions {
            page_cache_bytes: self.page_cache_mb << 20,
            order_cache_bytes: self.order_cache_mb << 20,
            checkpoint_every: self.checkpoint_seconds,
            ..RedbOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn checkpoint_seconds_reach_the_embedded_store() {
        let parse = |args: &[&str]| {
            let args = std::iter::once("server").chain(args.iter().copied());
            Config::try_parse_from(args).map(|c| c.redb_options().checkpoint_every)
        };
        assert_eq!(parse(&[]).unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse(&["--checkpoint-seconds", "0.25"]).unwrap(),
            Duration::from_millis(250)
        );
        // Zero: no write-ahead log (see `RedbOptions::checkpoint_every`).
        assert_eq!(
            parse(&["--checkpoint-seconds", "0"]).unwrap(),
            Duration::ZERO
        );
        for bad in ["-1", "soon", "NaN"] {
            let err = parse(&[&format!("--checkpoint-seconds={bad}")]).unwrap_err();
            assert!(err.to_string().contains("--checkpoint-seconds"), "{err}");
        }
    }
}
