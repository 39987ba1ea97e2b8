//! Serving the accepted connections: HTTP/2 and HTTP/1.1 on one port, through
//! hyper, as tonic's own `serve` does, plus what tonic gives no handle for.
//!
//! - **An idle connection gets GOAWAY before it closes** (`--idle-timeout`),
//!   as grpc-go's `MaxConnectionIdle` does: a client whose next call races the
//!   close learns from the GOAWAY that the call was not taken, and sends it on
//!   a new connection, where a bare close would fail it. The connection then
//!   ends once the peer has answered (hyper's graceful shutdown: GOAWAY, PING,
//!   final GOAWAY), or after [`CLOSE_GRACE`] if it never does.
//! - **Fewer layers per call.** tonic clones a boxed service for each request,
//!   boxes each request and response body, enters a tracing span and parses
//!   `grpc-timeout` again (our call layer already does); here hyper calls the
//!   call stack itself, with the connection's [`ConnInfo`] in the request's
//!   extensions and the request's body unboxed until the routes.
//!
//! The rest is as tonic does it: the same hyper settings ([`Http::new`]),
//! `--max-connection-age` (GOAWAY at that age, closed after its grace), and
//! at shutdown the listener closes at once and every connection gets
//! GOAWAY; [`serve`] returns when the last one has closed.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::task::TaskTracker;
use tower::util::Oneshot;
use tower::{Service, ServiceExt as _};

use super::connections::{ConnInfo, ConnState, ConnectionStats};
use super::tls_accept::Io;

/// How long a connection sent GOAWAY for idleness may take to close.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The HTTP settings of every connection; see [`Http::new`].
pub struct Http {
    builder: auto::Builder<TokioExecutor>,
    idle_timeout: Option<Duration>,
    /// `--max-connection-age` and its grace.
    max_age: Option<(Duration, Duration)>,
}

/// What the flags ask of HTTP/2 (the rest is hyper's defaults, as with tonic).
pub struct Settings {
    pub max_concurrent_streams: u32,
    pub max_header_list_size: u32,
    pub max_send_buffer: u32,
    pub keepalive_interval: Option<Duration>,
    pub keepalive_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_age: Option<(Duration, Duration)>,
}

impl Http {
    /// The settings tonic's `Server` gives hyper (tonic 0.14,
    /// `serve_internal`), from `settings`, with one difference: each
    /// stream's send buffer is ours to set (`--max-send-buffer-bytes`; tonic
    /// leaves hyper's 400 KiB).
    ///
    /// Like tonic, we turn off h2's cap on the streams it resets for a
    /// client's frames (`max_local_error_reset_streams`, 1,024 by default).
    /// That count never goes down, and an honest client adds to it each
    /// time we refuse a call at once: we answer before its DATA frame
    /// arrives, h2 resets the stream and soon forgets it (it remembers 50),
    /// and the late DATA is then "for a closed stream", reset and counted.
    /// After 1,024 refusals the client's whole connection got GOAWAY, its
    /// calls in flight failing (`tests/it/production/refusals.rs`). What the
    /// cap guards against, work going on for streams the client thinks are
    /// gone, is bounded here anyway: hyper drops a call's future when its
    /// stream is reset, which gives back its admission slot.
    pub fn new(settings: Settings) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_concurrent_streams)
            .max_header_list_size(settings.max_header_list_size)
            .max_send_buf_size(settings.max_send_buffer as usize)
            .max_local_error_reset_streams(None)
            .keep_alive_interval(settings.keepalive_interval)
            .keep_alive_timeout(settings.keepalive_timeout)
            .adaptive_window(false);
        // hyper enforces its HTTP/1 header read timeout (30 s) only with a timer.
        builder.http1().timer(TokioTimer::new());
        Self {
            builder,
            idle_timeout: settings.idle_timeout,
            max_age: settings.max_age,
        }
    }
}

/// What [`serve`] needs of the call stack: hyper's request in, a response
/// out, never an error (a failed call is a response).
pub trait Stack<B>:
    Service<Request<Incoming>, Response = Response<B>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> Stack<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// What hyper needs of a response body.
pub trait ResponseBody:
    http_body::Body<Data = bytes::Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = bytes::Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// Serves each connection of `incoming` with `stack` until `stop`; then
/// stops accepting (dropping `incoming` closes the listener), sends every
/// connection GOAWAY, and returns when all have closed.
pub async fn serve<S: Stack<B>, B: ResponseBody>(
    incoming: impl Stream<Item = io::Result<Io>>,
    stack: S,
    http: Http,
    stats: Arc<ConnectionStats>,
    stop: impl Future<Output = ()>,
) {
    let http = Arc::new(http);
    let closing = Arc::new(Closing::default());
    let connections = TaskTracker::new();
    {
        let mut incoming = pin!(incoming);
        let mut stop = pin!(stop);
        loop {
            let io = tokio::select! {
                () = &mut stop => break,
                io = incoming.next() => match io {
                    Some(Ok(io)) => io,
                    Some(Err(e)) => {
                        tracing::debug!("accept failed: {e}");
                        continue;
                    }
                    None => break,
                },
            };
            let service = OnConnection {
                stack: stack.clone(),
                info: io.info().clone(),
            };
            let closing = Arc::clone(&closing);
            let (http, stats) = (Arc::clone(&http), Arc::clone(&stats));
            connections.spawn(async move {
                serve_connection(io, service, &http, &closing, &stats).await;
            });
        }
    }
    closing.start();
    connections.close();
    connections.wait().await;
}

/// The shutdown every connection watches: a flag read on each poll (an
/// atomic load), and one wake-up for all when it is set.
#[derive(Default)]
struct Closing {
    started: AtomicBool,
    wake: Arc<Notify>,
}

impl Closing {
    fn start(&self) {
        self.started.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }
}

/// Why a connection is sent GOAWAY.
enum Why {
    Shutdown,
    Idle,
    Age,
}

async fn serve_connection<S: Stack<B>, B: ResponseBody>(
    io: Io,
    service: OnConnection<S>,
    http: &Http,
    closing: &Closing,
    stats: &ConnectionStats,
) {
    let state = Arc::clone(&service.info.state);
    let mut conn = pin!(http.builder.serve_connection(TokioIo::new(io), service));
    let mut shutdown = pin!(Arc::clone(&closing.wake).notified_owned());
    let mut registered: Option<Waker> = None;
    let mut idle = http
        .idle_timeout
        .map(|limit| IdleTimer::new(limit, Arc::clone(&state)));
    let mut age = http
        .max_age
        .map(|(age, _)| Box::pin(tokio::time::sleep(age)));
    let mut goaway_sent = false;
    let mut force_close: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
            return Poll::Ready(());
        }
        if let Some(deadline) = &mut force_close
            && deadline.as_mut().poll(cx).is_ready()
        {
            tracing::debug!("closing a connection that did not end after GOAWAY");
            return Poll::Ready(());
        }
        if goaway_sent {
            return Poll::Pending;
        }
        // The shutdown's wake-up reaches the waker it was last polled with;
        // poll it again only when that changes (polling takes its lock).
        if registered.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            let _ = shutdown.as_mut().poll(cx);
            registered = Some(cx.waker().clone());
        }
        let why = if closing.started.load(Ordering::Acquire) {
            Some(Why::Shutdown)
        } else if idle.as_mut().is_some_and(|idle| idle.poll_expired(cx)) {
            Some(Why::Idle)
        } else if age
            .as_mut()
            .is_some_and(|age| age.as_mut().poll(cx).is_ready())
        {
            Some(Why::Age)
        } else {
            None
        };
        let Some(why) = why else {
            return Poll::Pending;
        };
        conn.as_mut().graceful_shutdown();
        goaway_sent = true;
        let grace = match why {
            Why::Shutdown => None, // `Running::until` bounds the shutdown
            Why::Idle => {
                stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                Some(CLOSE_GRACE)
            }
            Why::Age => http.max_age.map(|(_, grace)| grace),
        };
        force_close = grace.map(|grace| Box::pin(tokio::time::sleep(grace)));
        // The connection writes its GOAWAY when next polled.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// A connection's idle clock: fires once the connection has had no call in
/// flight for `limit`. Its timer is reset only when it fires (at most once
/// a period), not on each call.
struct IdleTimer {
    limit: Duration,
    state: Arc<ConnState>,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimer {
    fn new(limit: Duration, state: Arc<ConnState>) -> Self {
        Self {
            limit,
            state,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// Whether the connection has been idle for the limit.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let due = match self.state.idle_since() {
                Some(since) if since + self.limit <= now => return true,
                Some(since) => since + self.limit,
                // Calls in flight: look again a full period later.
                None => now + self.limit,
            };
            self.timer.as_mut().reset(due);
        }
        false
    }
}

/// The call stack as hyper calls it on one connection: each request gets
/// the connection's [`ConnInfo`]; its body stays hyper's, unboxed (the call
/// layer wraps it once, in its `RequestBody`).
#[derive(Clone)]
struct OnConnection<S> {
    stack: S,
    info: ConnInfo,
}

impl<S> hyper::service::Service<Request<Incoming>> for OnConnection<S>
where
    S: Service<Request<Incoming>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Oneshot<S, Request<Incoming>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut request = request;
        request.extensions_mut().insert(self.info.clone());
        self.stack.clone().oneshot(request)
    }
}
