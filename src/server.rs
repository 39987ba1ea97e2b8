//! The server process: configuration, store, services, transport, logging
//! and graceful shutdown. The RPC handlers live in `service`; what wraps
//! every call (auth, limits, logs) in `middleware`.

mod certificate;
mod commands;
mod config;
pub mod connections;
pub mod overload;
mod serve;
pub mod tls_accept;
mod write_stall;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use self::config::{Command, Config, optional_seconds, seconds};
use self::connections::{ConnectionLimits, ConnectionStats};
use crate::buffer_budget::Budget;
use crate::gateway::web::{Cors, WebLayer};
pub use crate::log::LogFormat;
use crate::middleware::admission::Admission;
use crate::middleware::auth::Auth;
use crate::middleware::{CallLayer, CallPolicy};
use crate::pb::order_management_server::OrderManagementServer;
use crate::pb::{FILE_DESCRIPTOR_SET, SERVICE_NAME};
use crate::seed;
use crate::service::OrderService;
use crate::store::postgres::{PgOptions, PgStore};
use crate::store::{MemoryStore, OrderStore, RedbStore};

/// The most threads the runtime's blocking pool, which runs the embedded
/// store's reads, may grow to. tokio's default is 512: a burst of searches
/// (the 900 stalled streams of `cargo xtask attacks`) grew it to all of them,
/// ~180 MiB of stacks and allocator heaps, for reads that take micro- to
/// milliseconds. Beyond this, reads queue; 32 still keeps a disk's queue busy.
pub const BLOCKING_THREADS: usize = 32;

/// The tokio runtime `--threads` asks for.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(BLOCKING_THREADS)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(BLOCKING_THREADS)
            .enable_all()
            .build()
    }
}

/// Runs the server until SIGINT or SIGTERM. Used by `src/bin/server.rs`.
pub async fn main(config: Config) -> Result<(), String> {
    let _flush_on_exit = crate::log::init(config.log_format)?;
    match &config.command {
        Some(Command::Migrate) => return commands::migrate(config.database_url.as_deref()).await,
        Some(Command::Verify) => return commands::verify(&config.data_dir),
        Some(Command::Import { file, batch }) => {
            let options = config.redb_options();
            return commands::import(&config.data_dir, &options, file, *batch as usize).await;
        }
        None => {}
    }
    if let Some(endpoint) = &config.otlp_endpoint {
        crate::trace::init(endpoint, config.trace_sample_ratio)?;
    }
    // Bind first, then touch data: a taken port must not leave a seeded store.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    // A bad TLS file stops the server before it touches data, too (the
    // files are read again when the server starts serving).
    check_tls_files(&config)?;
    let store = open_any_store(&config).await?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let running = Running::start(&config, Arc::clone(&store), listener).await?;
    tracing::info!("listening on {local}");
    let stopped = running.until(shutdown_signal()).await;
    // The calls are over; what they left in flight (a database query of a
    // call ended at the grace) is finished or cancelled before we exit.
    store.close().await;
    crate::trace::flush();
    stopped
}

/// A server that is serving; see [`Running::until`].
pub struct Running {
    serve: tokio::task::JoinHandle<()>,
    stop_accepting: tokio::sync::oneshot::Sender<()>,
    connections: Arc<ConnectionStats>,
    /// Keeps health in step with the store's readiness and the server's
    /// load (`overload`) until shutdown.
    follow: tokio::task::JoinHandle<()>,
    abort: CancellationToken,
    health: HealthReporter,
    grace: Duration,
    /// The admin listener (`--admin-listen`), stopped when dropped.
    admin: Option<crate::admin::Admin>,
}

impl Running {
    /// Builds every service, marks them SERVING, and starts serving on
    /// `listener`: health answers SERVING from the first call on.
    pub async fn start(
        config: &Config,
        store: Arc<dyn OrderStore>,
        listener: TcpListener,
    ) -> Result<Self, String> {
        let readiness = Arc::clone(&store);
        let policy = call_policy(config)?;
        // searchOrders results waiting for their reader count against the
        // same budget as request bytes (`crate::buffer_budget`).
        let service_config = config.service_config(Arc::clone(&policy.buffered));
        let service = OrderService::with_config(store, service_config);
        let gateway = gateway_router(config, service.clone());
        let orders = OrderManagementServer::new(service)
            .max_decoding_message_size(config.max_request_bytes)
            .max_encoding_message_size(config.max_response_bytes)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in ["", SERVICE_NAME, overload::HEALTH_NAME] {
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

        let pools = vec![policy.reads.clone(), policy.writes.clone()];
        let sources = crate::metrics::server::Sources {
            pools: vec![
                ("reads", policy.reads.clone()),
                ("writes", policy.writes.clone()),
                ("health_watches", policy.watches.clone()),
            ],
            connections: Arc::new(ConnectionStats::default()),
            buffered: Arc::clone(&policy.buffered),
        };
        // Cancelled when the shutdown grace period ends: calls still open
        // end with UNAVAILABLE (see `Running::until`).
        let abort = CancellationToken::new();
        let layer = CallLayer::new(policy, abort.clone());

        let limits = config.connection_limits()?;
        let tls = tls_door(config, limits.handshake_timeout)?;
        let http = http_settings(config)?;
        // The HTTP/JSON API, gRPC-Web and the console share the port
        // (src/gateway/): HTTP/1.1 too, gRPC-Web translated before the layer.
        let web = WebLayer::new(Cors::new(&config.cors_allow_origin)?);
        let routes = tonic::service::Routes::from(gateway)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(orders)
            .prepare();
        let stack = tower::ServiceBuilder::new()
            .layer(web)
            .layer(layer)
            .service(routes);

        let (ready, load) = (
            follow_readiness(Arc::clone(&readiness), health.clone()),
            overload::follow(pools, health.clone()),
        );
        let follow = tokio::spawn(async move {
            tokio::join!(ready, load);
        });
        let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
        let connections = Arc::clone(&sources.connections);
        let admin = match config.admin_listen {
            Some(addr) => {
                let state = crate::admin::AdminState {
                    sources,
                    store: readiness,
                    health: health.clone(),
                };
                Some(crate::admin::Admin::start(addr, state).await?)
            }
            None => None,
        };
        let incoming = connections::incoming(listener, limits, Arc::clone(&connections));
        let incoming = match tls {
            Some(door) => tls_accept::secured(incoming, door).left_stream(),
            None => incoming
                .map(|c| c.map(tls_accept::Io::Plain))
                .right_stream(),
        };
        let serve = tokio::spawn(serve::serve(
            incoming,
            stack,
            http,
            Arc::clone(&connections),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            serve,
            stop_accepting,
            connections,
            follow,
            abort,
            health,
            grace: seconds("--shutdown-grace", config.shutdown_grace)?,
            admin,
        })
    }

    /// Where the admin listener listens, if it is on.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().map(crate::admin::Admin::local_addr)
    }

    /// What the accept loop has seen so far (open, refused, timed out...).
    pub fn connection_stats(&self) -> Arc<ConnectionStats> {
        Arc::clone(&self.connections)
    }

    /// Serves until `signal`, then shuts down: health goes NOT_SERVING, the
    /// listener closes, in-flight calls get the grace period to finish, the
    /// rest (any service's streams, health watches included) end with
    /// UNAVAILABLE.
    pub async fn until(self, signal: impl Future<Output = ()>) -> Result<(), String> {
        let Running {
            mut serve,
            stop_accepting,
            connections: _,
            follow,
            abort,
            health,
            grace,
            admin: _admin,
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
        follow.abort();
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

/// The HTTP/JSON API over `service`, with the gRPC body limits.
fn gateway_router(config: &Config, service: OrderService) -> axum::Router {
    let limits = crate::gateway::Limits {
        max_request_bytes: config.max_request_bytes,
        max_update_bytes: config.max_update_bytes,
    };
    crate::gateway::router(service, limits)
}

/// What the call layer enforces, from the flags.
fn call_policy(config: &Config) -> Result<CallPolicy, String> {
    let auth = config
        .auth_token_file
        .as_deref()
        .map(Auth::from_file)
        .transpose()?;
    let pool = |limit: u32| Admission::new(limit as usize, config.calls_per_ip(limit));
    Ok(CallPolicy {
        auth,
        reads: pool(config.max_concurrent_calls),
        writes: pool(config.max_concurrent_writes)
            .named("writes")
            .queued(config.max_queued_writes as usize),
        watches: Admission::new(config.max_health_watches as usize, usize::MAX)
            .named("health watches"),
        max_call: config.max_call()?,
        message_timeout: optional_seconds(
            "--request-message-timeout",
            config.request_message_timeout,
        )?,
        buffered: Budget::new(config.max_buffered_bytes, config.max_request_bytes),
        max_update_bytes: config.max_update_bytes,
    })
}

/// The HTTP settings of every connection, from the flags: streams, headers,
/// keepalive, idle connections and their age.
fn http_settings(config: &Config) -> Result<serve::Http, String> {
    let max_age = match optional_seconds("--max-connection-age", config.max_connection_age)? {
        Some(age) => Some((
            age,
            seconds(
                "--max-connection-age-grace",
                config.max_connection_age_grace,
            )?,
        )),
        None => None,
    };
    Ok(serve::Http::new(serve::Settings {
        max_concurrent_streams: config.max_concurrent_streams,
        max_header_list_size: config.max_header_list_bytes,
        max_send_buffer: config.max_send_buffer_bytes,
        keepalive_interval: optional_seconds("--keepalive-interval", config.keepalive_interval)?,
        keepalive_timeout: seconds("--keepalive-timeout", config.keepalive_timeout)?,
        idle_timeout: optional_seconds("--idle-timeout", config.idle_timeout)?,
        max_age,
    }))
}

/// How often health asks the store whether it can serve.
const READINESS_EVERY: Duration = Duration::from_secs(2);

/// Health follows the store: `NOT_SERVING` while it is not ready (a
/// database that does not answer), `SERVING` again when it is. Calls made
/// meanwhile answer `UNAVAILABLE` on their own; this tells load balancers.
async fn follow_readiness(store: Arc<dyn OrderStore>, health: HealthReporter) {
    let mut ready = true;
    let mut tick = tokio::time::interval(READINESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = match tokio::time::timeout(READINESS_EVERY * 2, store.ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the store did not answer within 4 s".to_owned()),
        };
        if now.is_ok() == ready {
            continue;
        }
        ready = now.is_ok();
        let status = match &now {
            Ok(()) => {
                tracing::info!("the store is reachable again: health SERVING");
                ServingStatus::Serving
            }
            Err(why) => {
                tracing::warn!("the store is not ready ({why}): health NOT_SERVING");
                ServingStatus::NotServing
            }
        };
        for name in ["", SERVICE_NAME] {
            health.set_service_status(name, status).await;
        }
    }
}

fn flatten(result: Result<(), tokio::task::JoinError>) -> Result<(), String> {
    result.map_err(|e| format!("server task failed: {e}"))
}

/// The TLS handshake (see `tls_accept`), if `--tls-cert` and `--tls-key`
/// are given; it must finish within `handshake_timeout`.
fn tls_door(
    config: &Config,
    handshake_timeout: Duration,
) -> Result<Option<Arc<tls_accept::TlsDoor>>, String> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    // Checked here, at start: a wrong file is named with what is wrong.
    // Dates only warn (see `certificate`): the server still starts.
    let (cert_pem, key_pem) = crate::tls_files::server_identity(cert, key)?;
    if let Some(problem) = certificate::validity_problem(&cert_pem, std::time::SystemTime::now()) {
        tracing::warn!("the TLS certificate {} {problem}", cert.display());
    }
    let client_ca = config
        .client_ca
        .as_ref()
        .map(|ca| crate::tls_files::certificates(ca, "client CA"))
        .transpose()?;
    let door =
        tls_accept::TlsDoor::new(&cert_pem, &key_pem, client_ca.as_deref(), handshake_timeout)?;
    Ok(Some(Arc::new(door)))
}

/// Reads and checks the TLS files as [`tls_door`] will, warning of nothing.
fn check_tls_files(config: &Config) -> Result<(), String> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        crate::tls_files::server_identity(cert, key)?;
    }
    if let Some(ca) = &config.client_ca {
        crate::tls_files::certificates(ca, "client CA")?;
    }
    Ok(())
}

/// Opens the store the configuration asks for, PostgreSQL included, and
/// seeds it if it is empty.
pub async fn open_any_store(config: &Config) -> Result<Arc<dyn OrderStore>, String> {
    let Some(url) = &config.database_url else {
        return open_store(config);
    };
    let options = PgOptions {
        pool_size: config.database_pool_size as usize,
        ..PgOptions::default()
    };
    let store = PgStore::connect(url, options)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("orders are stored in PostgreSQL: {}", store.target());
    if !config.no_seed {
        let seeded = store
            .seed_if_empty(seed::order_101())
            .await
            .map_err(|e| format!("cannot insert the seed order 101: {e}"))?;
        if seeded {
            tracing::info!("empty store: inserted the seed's order 101");
        }
    }
    Ok(Arc::new(store))
}

/// Opens the embedded or in-memory store the configuration asks for and
/// seeds it if it is empty.
pub fn open_store(config: &Config) -> Result<Arc<dyn OrderStore>, String> {
    let seed = (!config.no_seed).then(seed::order_101);
    if config.in_memory {
        tracing::info!("orders are kept in memory only (--in-memory): nothing survives a restart");
        if seed.is_some() {
            tracing::info!("empty store: inserted the seed's order 101");
        }
        return Ok(Arc::new(MemoryStore::with_orders(seed)));
    }
    let store = RedbStore::open_with(&config.data_dir, &config.redb_options())
        .map_err(|e| e.to_string())?;
    let path = std::path::absolute(store.path()).unwrap_or_else(|_| store.path().to_owned());
    let count = store
        .count_blocking()
        .map_err(|e| format!("cannot read the store: {e}"))?;
    let plural = if count == 1 { "" } else { "s" };
    tracing::info!(
        "orders are stored in {} ({count} order{plural})",
        path.display()
    );
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
    let limits = ConnectionLimits {
        max_connections: connections::default_max_connections(),
        max_per_ip: usize::MAX,
        handshake_timeout: Duration::from_secs(10),
        tcp_keepalive: None,
        write_stall_timeout: None,
    };
    let incoming = connections::incoming(listener, limits, Arc::default());
    Server::builder()
        .add_service(OrderManagementServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
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
