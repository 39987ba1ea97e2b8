//! The caller's deadline, from the `grpc-timeout` request header.
//!
//! tonic stops a handler whose *response* is late, but reports that as
//! `CANCELLED`, and does nothing once a response stream has started. So the
//! handlers read the deadline themselves: they stop their work and answer
//! `DEADLINE_EXCEEDED` when it passes, on unary calls and streams alike.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Our handlers give up this much before the caller's deadline, so that our
/// `DEADLINE_EXCEEDED` is sent before tonic's own timer (armed from the same
/// header a moment earlier) turns the call into `CANCELLED`. The caller has
/// given up by then either way.
const MARGIN: Duration = Duration::from_millis(2);

/// When the call must be over, if the caller set a deadline.
pub fn from_metadata(metadata: &MetadataMap) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let timeout = parse_grpc_timeout(value)?;
    Some(Instant::now() + timeout.saturating_sub(MARGIN))
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

pub fn exceeded() -> Status {
    Status::deadline_exceeded("the call's deadline passed before the server finished")
}

/// Runs `work`, or answers `DEADLINE_EXCEEDED` if the deadline comes first
/// (dropping `work`, which stops it).
pub async fn run<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => work.await,
        Some(at) => tokio::time::timeout_at(at, work)
            .await
            .unwrap_or_else(|_| Err(exceeded())),
    }
}

/// A response stream that ends with `DEADLINE_EXCEEDED` when the deadline
/// passes. Dropping the inner stream at that point stops its producer.
pub struct WithDeadline<S> {
    inner: Option<S>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> WithDeadline<S> {
    pub fn new(inner: S, deadline: Option<Instant>) -> Self {
        Self {
            inner: Some(inner),
            sleep: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

impl<S, T> Stream for WithDeadline<S>
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
        if let Some(sleep) = self.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.inner = None;
            return Poll::Ready(Some(Err(exceeded())));
        }
        Poll::Pending
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
}
