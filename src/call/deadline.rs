//! When a call must end: the caller's deadline (`grpc-timeout`), the
//! server's own per-call limit, and the end of the shutdown grace period.
//!
//! tonic stops a handler whose *response* is late, but reports that as
//! `CANCELLED`, and does nothing once a response stream has started. So the
//! handlers watch the end of the call themselves: they stop their work and
//! answer `DEADLINE_EXCEEDED` when the deadline passes, or `UNAVAILABLE`
//! when the server stops, on unary calls and streams alike.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;

/// Our handlers give up this much before the caller's deadline, so that our
/// `DEADLINE_EXCEEDED` is sent before tonic's own timer (armed from the same
/// header a moment earlier) turns the call into `CANCELLED`. The caller has
/// given up by then either way.
const MARGIN: Duration = Duration::from_millis(2);

pub const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
/// The HTTP/JSON API's deadline (src/gateway/), in seconds (`2.5`), for
/// clients that do not speak `grpc-timeout` (which works there too).
pub const REQUEST_TIMEOUT: http::HeaderName = http::HeaderName::from_static("request-timeout");

/// The server's signal that the shutdown grace period is over, shared by
/// every call. An `Arc` of the token, not the token: cloning a
/// `CancellationToken` takes its tree's lock (twice a call, with the drop),
/// cloning an `Arc` is one atomic add.
pub type Abort = Arc<CancellationToken>;

/// The abort of calls that no server ends (tests, and requests that did not
/// come through the middleware).
static NEVER: LazyLock<Abort> = LazyLock::new(Abort::default);

/// The end of one call.
#[derive(Debug, Clone)]
pub struct CallEnd {
    deadline: Option<Instant>,
    /// Cancelled when the shutdown grace period is over.
    abort: Abort,
}

impl CallEnd {
    /// The earlier of the caller's deadline (`timeout` from now, less our
    /// margin; see [`grpc_timeout`] and [`http_timeout`]) and `max_duration`
    /// from now; `abort` ends the call early with `UNAVAILABLE`.
    pub fn new(timeout: Option<Duration>, max_duration: Option<Duration>, abort: Abort) -> Self {
        Self::starting_at(Instant::now(), timeout, max_duration, abort)
    }

    /// [`Self::new`] for a call that started at `now` (one clock read per
    /// call, not one per part that needs the time).
    pub fn starting_at(
        now: Instant,
        timeout: Option<Duration>,
        max_duration: Option<Duration>,
        abort: Abort,
    ) -> Self {
        let caller = timeout.map(|t| now + t.saturating_sub(MARGIN));
        let server = max_duration.map(|d| now + d);
        let deadline = match (caller, server) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self { deadline, abort }
    }

    /// The caller's deadline alone (either header): no server limit, never
    /// aborted.
    pub fn caller_only(headers: &http::HeaderMap) -> Self {
        Self::new(http_timeout(headers), None, Arc::clone(&NEVER))
    }

    /// A call that never ends by itself (for tests of other parts).
    pub fn unbounded() -> Self {
        Self {
            deadline: None,
            abort: Arc::clone(&NEVER),
        }
    }

    /// Whether a caller's `timeout` leaves no time at all: the call is over
    /// before it starts (`grpc-timeout: 0n`), without reading the clock.
    pub fn over_at_start(timeout: Option<Duration>) -> bool {
        timeout.is_some_and(|t| t <= MARGIN)
    }

    /// When the call must be over, if ever: the earlier of the caller's
    /// deadline (less our margin) and the server's limit. Stores use it to
    /// leave uncommitted a write nobody waits for any more.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.deadline.map(Instant::into_std)
    }

    /// Runs `work`, or answers `DEADLINE_EXCEEDED` / `UNAVAILABLE` if the
    /// call ends first (dropping `work`, which stops it).
    pub async fn run<T>(&self, work: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // The work first: a call answered on its first poll (a cached
        // getOrder) never registers a timer or a cancellation waiter.
        tokio::select! {
            biased;
            result = work => result,
            () = deadline => Err(exceeded()),
            () = self.abort.cancelled() => Err(shutting_down()),
        }
    }

    /// Ends `stream` with `DEADLINE_EXCEEDED` / `UNAVAILABLE` when the call ends.
    pub fn bound<S>(&self, stream: S) -> Bounded<S> {
        Bounded {
            inner: Some(stream),
            sleep: self
                .deadline
                .map(|at| Box::pin(tokio::time::sleep_until(at))),
            abort: Box::pin(CancellationToken::clone(&self.abort).cancelled_owned()),
        }
    }
}

/// A gRPC call's own deadline: its `grpc-timeout`.
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    grpc_timeout_of(headers.get(GRPC_TIMEOUT))
}

/// An HTTP/JSON call's deadline: its `grpc-timeout`, else its
/// `Request-Timeout`.
pub fn http_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    http_timeout_of(headers.get(GRPC_TIMEOUT), headers.get(REQUEST_TIMEOUT))
}

/// [`grpc_timeout`] from the header's value, already found.
pub fn grpc_timeout_of(grpc_timeout: Option<&http::HeaderValue>) -> Option<Duration> {
    parse_grpc_timeout(grpc_timeout?.to_str().ok()?)
}

/// [`http_timeout`] from the headers' values, already found.
pub fn http_timeout_of(
    grpc_timeout: Option<&http::HeaderValue>,
    request_timeout: Option<&http::HeaderValue>,
) -> Option<Duration> {
    grpc_timeout_of(grpc_timeout).or_else(|| parse_request_timeout(request_timeout?.to_str().ok()?))
}

/// Parses `grpc-timeout`: 1 to 8 ASCII digits and a unit (`H`, `M`, `S`,
/// `m`, `u`, `n`), per the gRPC over HTTP/2 spec.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Parses `Request-Timeout`: a finite, non-negative number of seconds.
pub fn parse_request_timeout(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

pub fn exceeded() -> Status {
    Status::deadline_exceeded("the call's deadline passed before the server finished")
}

pub fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down; retry on another instance")
}

/// A response stream that ends with an error status when its call ends.
/// Dropping the inner stream at that point stops its producer.
pub struct Bounded<S> {
    inner: Option<S>,
    sleep: Option<Pin<Box<Sleep>>>,
    abort: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S, T> Stream for Bounded<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = Pin::new(inner).poll_next(cx) {
            if item.is_none() {
                self.inner = None;
            }
            return Poll::Ready(item);
        }
        let ended = if let Some(sleep) = self.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            Some(exceeded())
        } else if self.abort.poll_unpin(cx).is_ready() {
            Some(shutting_down())
        } else {
            None
        };
        match ended {
            Some(status) => {
                self.inner = None;
                Poll::Ready(Some(Err(status)))
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_malformed_values() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            "",
            "S",
            "10",
            "123456789S",
            "1.5S",
            "-1S",
            "10s",
            "1 S",
            "１S",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_earlier_of_caller_and_server_limits_wins() {
        let mut headers = http::HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, "20S".parse().unwrap());
        let end = CallEnd::new(
            grpc_timeout(&headers),
            Some(Duration::from_millis(50)),
            Abort::default(),
        );
        let err = end
            .run(std::future::pending::<Result<(), Status>>())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn abort_ends_calls_with_unavailable() {
        let abort = Abort::default();
        let end = CallEnd::new(None, None, Arc::clone(&abort));
        abort.cancel();
        let err = end
            .run(std::future::pending::<Result<(), Status>>())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
    }
}
