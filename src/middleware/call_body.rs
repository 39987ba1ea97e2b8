//! The response body wrapper that logs the call's line when it ends, holds
//! the call's admission permit until then, and ends the response with
//! `UNAVAILABLE` trailers when the server's shutdown grace period is over.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt as _;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::Code;

use super::admission::Permit;

/// Everything the log line needs, logged exactly once.
pub struct CallRecord {
    span: tracing::Span,
    started: Instant,
    done: bool,
}

impl CallRecord {
    pub fn new(span: tracing::Span, started: Instant) -> Self {
        Self {
            span,
            started,
            done: false,
        }
    }

    /// Logs the call's line; `None` means it ended without a gRPC status.
    pub fn finish(mut self, code: Option<Code>) {
        self.log(code);
    }

    fn log(&mut self, code: Option<Code>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let duration_us = self.started.elapsed().as_micros() as u64;
        let _entered = self.span.enter();
        match code {
            Some(code) => tracing::info!(status = ?code, duration_us, "call ended"),
            None => tracing::info!(status = "none", duration_us, "call ended without a status"),
        }
    }
}

impl Drop for CallRecord {
    /// Dropped before the status was seen: the client cancelled or went away.
    fn drop(&mut self) {
        if !self.done {
            self.log(Some(Code::Cancelled));
        }
    }
}

pin_project_lite::pin_project! {
    pub struct CallBody<B> {
        #[pin]
        inner: B,
        record: Option<CallRecord>,
        permit: Option<Permit>,
        abort: Pin<Box<WaitForCancellationFutureOwned>>,
        // Set once the body has ended (naturally or by the abort).
        done: bool,
    }
}

impl<B> CallBody<B> {
    /// A trailers-only response already carries `grpc-status` in `headers`:
    /// the call is over as far as the log is concerned.
    pub fn new(
        inner: B,
        record: CallRecord,
        permit: Option<Permit>,
        abort: WaitForCancellationFutureOwned,
        headers: &HeaderMap,
    ) -> Self {
        let record = match grpc_status(headers) {
            Some(code) => {
                record.finish(Some(code));
                None
            }
            None => Some(record),
        };
        Self {
            inner,
            record,
            permit,
            abort: Box::pin(abort),
            done: false,
        }
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(value))
}

impl<B: Body> Body for CallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if this.abort.poll_unpin(cx).is_pending() {
                    return Poll::Pending;
                }
                // The grace period is over and this response is still open:
                // end it with a status rather than cutting the stream.
                *this.done = true;
                if let Some(record) = this.record.take() {
                    record.finish(Some(Code::Unavailable));
                }
                this.permit.take();
                let status = crate::deadline::shutting_down();
                let mut trailers = HeaderMap::new();
                if status.add_header(&mut trailers).is_err() {
                    trailers.insert("grpc-status", (Code::Unavailable as i32).into());
                }
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        };
        let end = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().map(grpc_status),
            Some(Err(_)) => Some(Some(Code::Internal)),
            None => Some(None),
        };
        if let Some(code) = end {
            *this.done = true;
            if let Some(record) = this.record.take() {
                record.finish(code);
            }
            this.permit.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
