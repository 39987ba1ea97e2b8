//! A deadline for a call's request message to arrive.
//!
//! A client can send a call's headers and never its message: the call then
//! holds its admission slot until `--max-call-seconds` (300 s by default),
//! and a few such clients hold every slot. For calls whose request is one
//! message (every method but the client-streaming and bidirectional ones),
//! the message must have arrived within `--request-message-timeout` of the
//! headers, or the call ends with `DEADLINE_EXCEEDED`.
//!
//! The timer is armed only if the body is not complete when the handler
//! first asks for it, so the usual call (headers and message in one read)
//! pays for no timer at all.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::Status;

pin_project_lite::pin_project! {
    /// A request body that fails with `DEADLINE_EXCEEDED` if it has not
    /// ended by `due`.
    pub struct MessageDeadline<B> {
        #[pin]
        inner: B,
        due: Instant,
        limit: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        ended: bool,
    }
}

impl<B> MessageDeadline<B> {
    /// `inner`, which must end within `limit` of `started`.
    pub fn new(inner: B, started: std::time::Instant, limit: Duration) -> Self {
        Self {
            inner,
            due: Instant::from_std(started) + limit,
            limit,
            sleep: None,
            ended: false,
        }
    }
}

/// Methods whose request is a stream of messages: no deadline for them.
pub fn streams_requests(path: &str) -> bool {
    matches!(
        path,
        "/ecommerce.OrderManagement/updateOrders"
            | "/ecommerce.OrderManagement/processOrders"
            | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
}

impl<B> Body for MessageDeadline<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if *this.ended {
            return this
                .inner
                .poll_frame(cx)
                .map_err(|e| Status::from_error(e.into()));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.ended = true;
                *this.sleep = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                Poll::Ready(Some(frame.map_err(|e| Status::from_error(e.into()))))
            }
            Poll::Pending => {
                let due = *this.due;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.ended = true;
                *this.sleep = None;
                Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                    "the request message did not arrive within {:?} of the call's headers \
                     (--request-message-timeout)",
                    this.limit
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
