//! What happens around every call, before and after the handlers:
//!
//! 0. a request that is not gRPC (wrong content-type) to a gRPC path gets
//!    HTTP 415; any other request is for the HTTP/JSON API or the console
//!    ([`crate::gateway`]) and goes through the same steps, its refusals
//!    answered as JSON with the HTTP status grpc-gateway uses
//!    ([`crate::gateway::error`]);
//! 1. a request id: the caller's `x-request-id`, echoed in the response, or,
//!    for a call that fails, a fresh one, returned with the error
//!    ([`caller_request_id`]); it tags the call's log line;
//! 2. authentication ([`auth`]): `UNAUTHENTICATED` without the bearer token;
//! 3. admission ([`admission`]): `RESOURCE_EXHAUSTED` beyond the limit of
//!    concurrent calls, at once rather than after a queue; reads, writes and
//!    health watches have separate limits ([`CallPolicy`]), and a call whose
//!    deadline has already passed is answered `DEADLINE_EXCEEDED` at once;
//! 4. a call's request body is bounded in time and memory ([`request_body`]):
//!    its message must arrive within a deadline of its headers, and bytes of
//!    incomplete messages count against a server-wide budget; panics in a handler become `INTERNAL`
//!    for that call only;
//! 5. at the end of the shutdown grace period, responses still streaming
//!    end with `UNAVAILABLE` ([`call_body`]);
//! 6. one log line per call when it ends, with method, status, duration,
//!    peer, request id and order id ([`crate::log::call_line`], written by
//!    [`call_body`]).
//!
//! It fills the call's shared state ([`crate::call::CallInfo`]: request id,
//! when the call must end) once, for the handlers to read. It is one tower
//! layer, so each call pays for one wrapper, not five.

pub mod admission;
pub mod auth;
mod call_body;
pub mod request_body;

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use http::{HeaderValue, Request, Response};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tower::{Layer, Service};

use self::admission::{Admission, Permit};
use self::auth::Auth;
use self::call_body::CallBody;
use self::request_body::RequestBody;
use crate::buffer_budget::Budget;
use crate::call::deadline::{self, Abort, CallEnd};
use crate::call::{CallInfo, panic_message};
use crate::log::CallRecord;
use crate::server::connections::ConnInfo;

/// A `HeaderName` constant rather than a `&str`: a lookup by `&str` parses
/// and validates the name on every call.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The tower layer; see the module documentation.
#[derive(Clone)]
pub struct CallLayer {
    shared: Arc<Shared>,
}

/// What the layer enforces on every call; see the module documentation.
pub struct CallPolicy {
    /// The bearer token every call but health checks must present.
    pub auth: Option<Auth>,
    /// Slots for reads: every call but writes and health watches.
    pub reads: Admission,
    /// Slots for writes (addOrder, updateOrders), apart from the reads', so
    /// a flood of writes waiting on the disk never starves reads.
    pub writes: Admission,
    /// Slots for health Watch streams: open to anyone (no token), so bounded
    /// on their own; health Check takes no slot at all.
    pub watches: Admission,
    /// The longest a call may take to produce its response head. Handlers
    /// bound their own work; this also covers the time before a handler
    /// runs.
    pub max_call: Option<Duration>,
    /// How long after its headers a call's one request message may arrive.
    pub message_timeout: Option<Duration>,
    /// The server-wide budget of bytes held for clients (`--max-buffered-bytes`),
    /// shared with the search streams (`crate::buffer_budget`).
    pub buffered: Arc<Budget>,
    /// The most bytes one updateOrders call may send.
    pub max_update_bytes: usize,
}

struct Shared {
    policy: CallPolicy,
    /// Cancelled when the shutdown grace period ends: every response still
    /// streaming, of any service, ends with UNAVAILABLE.
    abort: Abort,
}

impl CallLayer {
    pub fn new(policy: CallPolicy, abort: CancellationToken) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                abort: Arc::new(abort),
            }),
        }
    }
}

/// What a request speaks. gRPC-Web arrives here already translated to gRPC
/// (`crate::gateway::web`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    /// The HTTP/JSON API and the console (`crate::gateway`).
    Http,
}

/// What admission decided at once: a slot, or the queue to wait in.
enum Admit<'a> {
    Now(Permit),
    Wait(&'a Admission),
}

impl Shared {
    /// Authentication, then admission: the call's slot (or, for a write when
    /// every write slot is taken, the queue to wait in), or the status that
    /// refuses it. Health checks need no token and take no slot (probes must
    /// get an answer even when the server is full); health watches need no
    /// token and take a slot of their own; so do the console's static files.
    fn admit<B>(&self, request: &Request<B>, protocol: Protocol) -> Result<Admit<'_>, Status> {
        let conn = connection(request);
        let policy = &self.policy;
        let path = request.uri().path();
        match (protocol, path) {
            (Protocol::Grpc, "/grpc.health.v1.Health/Watch") => {
                return policy.watches.try_admit(conn).map(Admit::Now);
            }
            (Protocol::Grpc, path) if path.starts_with("/grpc.health.v1.Health/") => {
                return Ok(Admit::Now(Permit::exempt(conn)));
            }
            (Protocol::Http, path) if crate::gateway::is_public(path) => {
                return Ok(Admit::Now(Permit::exempt(conn)));
            }
            _ => {}
        }
        if let Some(auth) = &policy.auth {
            auth.check(request.headers())?;
        }
        let write = match protocol {
            Protocol::Grpc => matches!(
                path,
                "/ecommerce.OrderManagement/addOrder" | "/ecommerce.OrderManagement/updateOrders"
            ),
            Protocol::Http => crate::gateway::is_write(request.method(), path),
        };
        if !write {
            policy.reads.try_admit(conn).map(Admit::Now)
        } else if policy.writes.queues() {
            Ok(Admit::Wait(&policy.writes))
        } else {
            policy.writes.try_admit(conn).map(Admit::Now)
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

// Generic over the request's body: the connection's own (hyper's `Incoming`)
// reaches the routes wrapped once, in `RequestBody`, not boxed on the way.
impl<S, B, ReqB> Service<Request<ReqB>> for CallService<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tonic::codegen::StdError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
    ReqB: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    ReqB::Error: Into<tonic::codegen::StdError>,
{
    // The body is handed on unboxed, as hyper takes it (`server/serve.rs`):
    // a box here would cost an allocation per call.
    type Response = Response<CallBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<CallBody<B>>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Over 80 lines on purpose: a call's whole way through the layer, in the order it happens.
    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);

        let headers = CallHeaders::scan(request.headers());
        let caller_id = caller_request_id(headers.request_id);
        let from_caller = caller_id.is_some();
        let grpc = is_grpc(headers.content_type);
        let timeout = match grpc {
            true => deadline::grpc_timeout_of(headers.grpc_timeout),
            false => deadline::http_timeout_of(headers.grpc_timeout, headers.request_timeout),
        };
        let started = Instant::now();
        let end = CallEnd::starting_at(
            started.into(),
            timeout,
            shared.policy.max_call,
            Arc::clone(&shared.abort),
        );
        let info = CallInfo::new(caller_id, end);
        request.extensions_mut().insert(Arc::clone(&info));
        let mut record = CallRecord::new(
            request.uri().path_and_query().cloned(),
            connection(&request).map(|c| Arc::clone(&c.peer)),
            Arc::clone(&info),
            started,
        );
        if let Some(span) = crate::trace::start_call(request.headers(), request.uri().path(), &info)
        {
            record.traced(span);
        }

        let future = async move {
            // gRPC over HTTP/2: "If Content-Type does not begin with
            // application/grpc, gRPC servers SHOULD respond with HTTP status
            // of 415". tonic would instead try to parse the body as frames.
            let protocol = if grpc {
                Protocol::Grpc
            } else if is_grpc_path(request.uri().path()) {
                let status = Status::internal("content-type must be application/grpc");
                let mut response = respond(status, &info, record, Protocol::Grpc);
                *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
                return Ok(response);
            } else {
                Protocol::Http
            };
            // A call whose deadline has already passed (`grpc-timeout: 0n`)
            // is answered at once; tonic's own timer would say CANCELLED.
            if CallEnd::over_at_start(timeout) {
                return Ok(respond(deadline::exceeded(), &info, record, protocol));
            }
            let policy = &shared.policy;
            let shape = match protocol {
                Protocol::Grpc => {
                    request_body::shape(request.uri().path(), policy.max_update_bytes)
                }
                Protocol::Http => request_body::Shape::Whole,
            };
            let bounded = |body| {
                let budget = Arc::clone(&policy.buffered);
                RequestBody::new(body, shape, budget, started, policy.message_timeout)
            };
            let admitted = match shared.admit(&request, protocol) {
                Ok(Admit::Now(permit)) => Ok((permit, request.map(bounded))),
                Ok(Admit::Wait(writes)) => {
                    let (parts, body) = request.into_parts();
                    let mut body = bounded(body);
                    let conn = parts.extensions.get::<ConnInfo>();
                    let waited = wait_in_line(writes, conn, info.end().deadline(), &mut body);
                    waited
                        .await
                        .map(|permit| (permit, Request::from_parts(parts, body)))
                }
                Err(status) => Err(status),
            };
            let (permit, request) = match admitted {
                Ok((permit, request)) => (Some(permit), request),
                Err(status) => {
                    crate::metrics::refused(status.code());
                    return Ok(respond(status, &info, record, protocol));
                }
            };
            record.admitted();
            // Boxed: the inner future is large, and each wrapper around it
            // (catch_unwind, timeout, this future) would move it whole.
            let handled = AssertUnwindSafe(Box::pin(inner.call(request))).catch_unwind();
            let outcome = match shared.policy.max_call {
                // From `started`: no clock read of its own.
                Some(max) => match tokio::time::timeout_at((started + max).into(), handled).await {
                    Ok(outcome) => outcome,
                    Err(_elapsed) => {
                        return Ok(respond(deadline::exceeded(), &info, record, protocol));
                    }
                },
                None => handled.await,
            };
            let response = match outcome {
                Ok(result) => result?,
                Err(panic) => {
                    crate::metrics::panicked();
                    tracing::error!(
                        panic = panic_message(panic.as_ref()),
                        request_id = info.request_id(),
                        "handler panicked"
                    );
                    let status = Status::internal("internal error; see the server log");
                    return Ok(respond(status, &info, record, protocol));
                }
            };
            let (mut parts, body) = response.into_parts();
            // A trailers-only response is an error, or an empty stream.
            let head_status = call_body::grpc_status(&parts.headers);
            let failed = match protocol {
                Protocol::Grpc => head_status.is_some_and(|c| c != Code::Ok),
                Protocol::Http => parts.status.is_client_error() || parts.status.is_server_error(),
            };
            if from_caller || failed {
                parts
                    .headers
                    .insert(REQUEST_ID, info.request_id_header().clone());
            }
            // Otherwise the trailers get an id if they carry an error (an
            // HTTP/JSON stream's error line carries its own).
            let echo_on_error =
                (!from_caller && !failed && protocol == Protocol::Grpc).then_some(info);
            let abort = Arc::clone(&shared.abort);
            let body = CallBody::new(body, record, permit, abort, echo_on_error, head_status);
            Ok(Response::from_parts(parts, body))
        };
        Box::pin(future)
    }
}

/// The caller's `x-request-id`, if it is usable: 1 to 128 visible ASCII
/// characters (no spaces), since it is logged and echoed.
///
/// A caller's id is echoed in every response. Without one, the server makes
/// one only when a call fails ([`CallInfo::request_id`]): it is logged and
/// sent back with the error, which is when a client needs something to
/// quote. Making one for every call would cost each successful response a
/// UUID, ~30 bytes of header and a fresh entry in the connection's HPACK
/// table (evicting the entries that make the usual headers one byte each).
fn caller_request_id(request_id: Option<&HeaderValue>) -> Option<HeaderValue> {
    request_id
        // Visible ASCII only: `to_str` would also pass spaces and tabs.
        .filter(|v| {
            (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| (0x21..0x7f).contains(b))
        })
        .cloned()
}

/// A trailers-only response carrying `status`, logged at once; over
/// HTTP/JSON, the JSON error with its HTTP status.
fn respond<B>(
    status: Status,
    info: &CallInfo,
    record: CallRecord,
    protocol: Protocol,
) -> Response<CallBody<B>> {
    let code = status.code();
    let mut response = match protocol {
        Protocol::Grpc => status.into_http::<()>().map(|()| CallBody::ended()),
        Protocol::Http => {
            crate::gateway::error::response(&status, info.request_id()).map(CallBody::fixed)
        }
    };
    response
        .headers_mut()
        .insert(REQUEST_ID, info.request_id_header().clone());
    record.finish(Some(code));
    response
}

fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
    content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The request headers the layer reads, found in one pass over the
/// request's headers: a lookup by name hashes the name first, and three
/// such lookups cost more than a look at each of the few headers a call
/// carries (a name is compared as an enum for a standard header). The first
/// value of each, as `HeaderMap::get` would give.
#[derive(Default)]
struct CallHeaders<'a> {
    content_type: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
    grpc_timeout: Option<&'a HeaderValue>,
    request_timeout: Option<&'a HeaderValue>,
}

impl<'a> CallHeaders<'a> {
    fn scan(headers: &'a http::HeaderMap) -> Self {
        let mut found = Self::default();
        for (name, value) in headers {
            let slot = if *name == http::header::CONTENT_TYPE {
                &mut found.content_type
            } else if *name == REQUEST_ID {
                &mut found.request_id
            } else if *name == deadline::GRPC_TIMEOUT {
                &mut found.grpc_timeout
            } else if *name == deadline::REQUEST_TIMEOUT {
                &mut found.request_timeout
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        found
    }
}

/// Whether `path` names a gRPC method (`/package.Service/method`), as
/// opposed to a path of the HTTP/JSON API or the console.
fn is_grpc_path(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some(service), Some(method), None) => service.contains('.') && !method.is_empty(),
        _ => false,
    }
}

/// A write's wait for its slot (`--max-queued-writes`), reading its request
/// ahead meanwhile so that what its client sent is counted against
/// `--max-buffered-bytes` (`request_body`); a read-ahead that fails
/// (budget, message timeout, broken stream) refuses the write at once.
async fn wait_in_line<B>(
    writes: &Admission,
    conn: Option<&ConnInfo>,
    deadline: Option<std::time::Instant>,
    body: &mut RequestBody<B>,
) -> Result<Permit, Status>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    let waiting = writes.admit_queued(conn, deadline);
    tokio::pin!(waiting);
    let mut read = false;
    loop {
        tokio::select! {
            permit = &mut waiting => return permit,
            ahead = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_read_ahead(cx)), if !read => {
                ahead?;
                read = true;
            }
        }
    }
}

/// The connection the request came on, plain or through TLS (`serve`
/// puts it in every request's extensions).
fn connection<B>(request: &Request<B>) -> Option<&ConnInfo> {
    request.extensions().get::<ConnInfo>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_what_lookups_by_name_find() {
        let mut headers = http::HeaderMap::new();
        headers.insert("user-agent", HeaderValue::from_static("test"));
        headers.append(REQUEST_ID, HeaderValue::from_static("first"));
        headers.append(REQUEST_ID, HeaderValue::from_static("second"));
        headers.insert("x-other", HeaderValue::from_static("x"));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        headers.insert(deadline::GRPC_TIMEOUT, HeaderValue::from_static("5S"));
        let found = CallHeaders::scan(&headers);
        assert_eq!(found.request_id, headers.get(REQUEST_ID));
        assert_eq!(found.request_id.unwrap(), "first");
        assert_eq!(found.content_type, headers.get(http::header::CONTENT_TYPE));
        assert_eq!(found.grpc_timeout.unwrap(), "5S");
        assert_eq!(found.request_timeout, None);
        assert!(is_grpc(found.content_type));

        let empty = http::HeaderMap::new();
        let none = CallHeaders::scan(&empty);
        assert!(none.content_type.is_none() && none.request_id.is_none());
        assert!(!is_grpc(none.content_type));
    }
}
