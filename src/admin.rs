//! The admin listener (`--admin-listen`, off by default): plain HTTP/1.1
//! on its own port, apart from the gRPC port, for what operators' tools
//! poll:
//!
//! - `GET /metrics`: every metric ([`crate::metrics`]) in the OpenMetrics
//!   text format Prometheus scrapes;
//! - `GET /healthz`: the server's overall health (the gRPC health service's
//!   `""`), `200 SERVING` or `503 NOT_SERVING`;
//! - `GET /readyz`: the health of `ecommerce.OrderManagement`, likewise,
//!   for load balancers that do not speak gRPC health.
//!
//! Both health endpoints ask the same health service that gRPC probes ask,
//! so they can never disagree with it. The port has no auth and no TLS:
//! bind it to a private address (`127.0.0.1:9090`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::server::{HealthReporter, HealthService};

use crate::metrics::server::Sources;
use crate::metrics::{self, CONTENT_TYPE, Metrics};
use crate::pb::SERVICE_NAME;
use crate::store::OrderStore;

/// Admin connections open at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a scrape waits for the store's count of orders.
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin endpoints read.
pub struct AdminState {
    pub sources: Sources,
    pub store: Arc<dyn OrderStore>,
    pub health: HealthReporter,
}

struct Shared {
    metrics: &'static Metrics,
    sources: Sources,
    store: Arc<dyn OrderStore>,
    health: HealthService,
}

/// A running admin listener; dropping it stops it.
pub struct Admin {
    local_addr: SocketAddr,
    stop: CancellationToken,
}

impl Admin {
    /// Binds `addr` and serves the admin endpoints there. Installs the
    /// process's metrics (they record from now on).
    pub async fn start(addr: SocketAddr, state: AdminState) -> Result<Self, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--admin-listen): {e}"))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the admin listener's address: {e}"))?;
        let stop = CancellationToken::new();
        spawn(listener, state, stop.clone());
        tracing::info!("admin endpoints (/metrics, /healthz, /readyz) on http://{local_addr}");
        Ok(Self { local_addr, stop })
    }

    /// The address it listens on (the port chosen, for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the admin endpoints on `listener` until `stop` is cancelled.
fn spawn(listener: TcpListener, state: AdminState, stop: CancellationToken) {
    let shared = Arc::new(Shared {
        metrics: metrics::install(),
        sources: state.sources,
        store: state.store,
        health: HealthService::from_health_reporter(state.health),
    });
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let slot = tokio::select! {
                () = stop.cancelled() => return,
                slot = Arc::clone(&slots).acquire_owned() => slot,
            };
            let Ok(slot) = slot else { return };
            let (stream, _) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("admin listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(shared.answer(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                drop(slot);
            });
        }
    });
}

impl Shared {
    async fn answer(&self, request: Request<Incoming>) -> Response<String> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned());
        }
        match request.uri().path() {
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.scrape().await);
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(CONTENT_TYPE),
                );
                response
            }
            "/healthz" => self.health_of("").await,
            "/readyz" => self.health_of(SERVICE_NAME).await,
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /healthz or /readyz\n".to_owned(),
            ),
        }
    }

    async fn scrape(&self) -> String {
        self.metrics.server.refresh(&self.sources);
        match tokio::time::timeout(COUNT_TIMEOUT, self.store.count()).await {
            Ok(Ok(n)) => {
                self.metrics.store.orders.set(n as i64);
            }
            Ok(Err(e)) => tracing::debug!("metrics: cannot count the orders: {e}"),
            Err(_) => tracing::debug!("metrics: the store did not count the orders in time"),
        }
        self.metrics.encode()
    }

    /// `200 SERVING` or `503` and the status, as the gRPC health service says.
    async fn health_of(&self, service: &str) -> Response<String> {
        let request = tonic::Request::new(HealthCheckRequest {
            service: service.to_owned(),
        });
        let status = match self.health.check(request).await {
            Ok(response) => response.into_inner().status(),
            Err(_) => ServingStatus::ServiceUnknown,
        };
        let code = match status {
            ServingStatus::Serving => StatusCode::OK,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        text(code, format!("{}\n", status.as_str_name()))
    }
}

fn text(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
