//! What happens around every call, before and after the handlers:
//!
//! 0. a request that is not gRPC (wrong content-type) gets HTTP 415;
//! 1. a request id (the caller's `x-request-id`, or a fresh one) that is
//!    echoed in the response headers and tags the call's log line;
//! 2. authentication ([`auth`]): `UNAUTHENTICATED` without the bearer token;
//! 3. admission ([`admission`]): `RESOURCE_EXHAUSTED` beyond the limit of
//!    concurrent calls, at once rather than after a queue;
//! 4. panics in a handler become `INTERNAL` for that call only ([`panic_message`]);
//! 5. at the end of the shutdown grace period, responses still streaming
//!    end with `UNAVAILABLE` ([`call_body`]);
//! 6. one log line per call when it ends, with method, status, duration,
//!    peer, request id and order id ([`call_body`]).
//!
//! It is one tower layer, so each call pays for one wrapper, not five.

pub mod admission;
pub mod auth;
mod call_body;

use std::any::Any;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use http::{HeaderValue, Request, Response};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument as _;

use self::admission::Admission;
use self::auth::Auth;
use self::call_body::{CallBody, CallRecord};

pub const REQUEST_ID: &str = "x-request-id";

/// The tower layer; see the module documentation.
#[derive(Clone)]
pub struct CallLayer {
    shared: Arc<Shared>,
}

struct Shared {
    auth: Option<Auth>,
    admission: Admission,
    /// The longest a call may take to produce its response head. Handlers
    /// bound their own work; this also covers the time before a handler
    /// runs, e.g. a client that sends headers and never its message.
    max_call: Option<Duration>,
    /// Cancelled when the shutdown grace period ends: every response still
    /// streaming, of any service, ends with UNAVAILABLE.
    abort: CancellationToken,
}

impl CallLayer {
    pub fn new(
        auth: Option<Auth>,
        admission: Admission,
        max_call: Option<Duration>,
        abort: CancellationToken,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                auth,
                admission,
                max_call,
                abort,
            }),
        }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Body>> for CallService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tonic::codegen::StdError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);

        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).unwrap());
        let span = tracing::info_span!(
            "call",
            method = request.uri().path(),
            peer = peer(&request).map(tracing::field::display),
            request_id = request_id.to_str().unwrap_or("?"),
            order_id = tracing::field::Empty,
        );
        let record = CallRecord::new(span.clone(), Instant::now());

        let future = async move {
            // gRPC over HTTP/2: "If Content-Type does not begin with
            // application/grpc, gRPC servers SHOULD respond with HTTP status
            // of 415". tonic would instead try to parse the body as frames.
            if !is_grpc(request.headers()) {
                let status = Status::internal("content-type must be application/grpc");
                let mut response = respond(status, &request_id, record);
                *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
                return Ok(response);
            }
            let path = request.uri().path();
            let health = path.starts_with("/grpc.health.v1.Health/");
            if let (Some(auth), false) = (&shared.auth, health)
                && let Err(status) = auth.check(request.headers())
            {
                return Ok(respond(status, &request_id, record));
            }
            let permit = if health {
                None // probes must get an answer even when the server is full
            } else {
                match shared.admission.try_admit() {
                    Ok(permit) => Some(permit),
                    Err(status) => return Ok(respond(status, &request_id, record)),
                }
            };
            let handled = AssertUnwindSafe(inner.call(request)).catch_unwind();
            let outcome = match shared.max_call {
                Some(max) => match tokio::time::timeout(max, handled).await {
                    Ok(outcome) => outcome,
                    Err(_elapsed) => {
                        return Ok(respond(crate::deadline::exceeded(), &request_id, record));
                    }
                },
                None => handled.await,
            };
            let response = match outcome {
                Ok(result) => result?,
                Err(panic) => {
                    tracing::error!(panic = panic_message(panic.as_ref()), "handler panicked");
                    let status = Status::internal("internal error; see the server log");
                    return Ok(respond(status, &request_id, record));
                }
            };
            let (mut parts, body) = response.into_parts();
            parts.headers.insert(REQUEST_ID, request_id);
            let abort = shared.abort.clone().cancelled_owned();
            let body = CallBody::new(body, record, permit, abort, &parts.headers);
            Ok(Response::from_parts(parts, Body::new(body)))
        };
        Box::pin(future.instrument(span))
    }
}

/// A trailers-only response carrying `status`, logged at once.
fn respond(status: Status, request_id: &HeaderValue, record: CallRecord) -> Response<Body> {
    record.finish(Some(status.code()));
    let mut response = status.into_http::<Body>();
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id.clone());
    response
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn peer<B>(request: &Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
        })
}

/// The text of a panic payload, for the log.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
