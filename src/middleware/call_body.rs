//! The response body wrapper that logs the call's line when it ends, holds
//! the call's admission permit until then, and ends the response with
//! `UNAVAILABLE` trailers when the server's shutdown grace period is over.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Code;

use super::admission::Permit;
use crate::call::CallInfo;
use crate::call::deadline::Abort;
use crate::log::CallRecord;

pin_project_lite::pin_project! {
    pub struct CallBody<B> {
        // `None`: a trailers-only response, already over.
        #[pin]
        inner: Option<B>,
        record: Option<CallRecord>,
        permit: Option<Permit>,
        // Cancelled when the shutdown grace period is over.
        abort: Option<Abort>,
        // Waits for `abort`; made the first time the body has to wait (a
        // unary response never does: it costs no clone of the token).
        #[pin]
        aborted: Option<WaitForCancellationFutureOwned>,
        // A call without the caller's request id: the trailers of an
        // error get one.
        echo_on_error: Option<Arc<CallInfo>>,
        // Set once the body has ended (naturally or by the abort).
        done: bool,
        // The whole body of a response the layer answers itself over
        // HTTP/JSON (an error as JSON), sent once.
        fixed: Option<bytes::Bytes>,
    }
}

impl<B> CallBody<B> {
    /// The body of a response that is over in its headers (trailers-only):
    /// nothing to send, nothing to log.
    pub fn ended() -> Self {
        Self {
            inner: None,
            record: None,
            permit: None,
            abort: None,
            aborted: None,
            echo_on_error: None,
            done: true,
            fixed: None,
        }
    }

    /// A response the layer answers itself with `body` (over HTTP/JSON).
    pub fn fixed(body: bytes::Bytes) -> Self {
        Self {
            fixed: Some(body),
            ..Self::ended()
        }
    }

    /// A trailers-only response already carries its `grpc-status` in its
    /// headers (`head_status`, read by the caller with [`grpc_status`]): the
    /// call is over as far as the log is concerned.
    pub fn new(
        inner: B,
        record: CallRecord,
        permit: Option<Permit>,
        abort: Abort,
        echo_on_error: Option<Arc<CallInfo>>,
        head_status: Option<Code>,
    ) -> Self {
        let record = match head_status {
            Some(code) => {
                record.finish(Some(code));
                None
            }
            None => Some(record),
        };
        Self {
            inner: Some(inner),
            record,
            permit,
            abort: Some(abort),
            aborted: None,
            echo_on_error,
            done: false,
            fixed: None,
        }
    }
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The `grpc-status` in `headers`, if any.
pub fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get(GRPC_STATUS)?.as_bytes();
    // Almost always "0": skip the parse.
    if value == b"0" {
        return Some(Code::Ok);
    }
    let value = std::str::from_utf8(value).ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(value))
}

impl<B: Body<Data = bytes::Bytes>> Body for CallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(mut inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(this.fixed.take().map(|b| Ok(Frame::data(b))));
        };
        if *this.done {
            return Poll::Ready(None);
        }
        let mut frame = match inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if this.aborted.is_none()
                    && let Some(abort) = this.abort.as_ref()
                {
                    let wait = CancellationToken::clone(abort).cancelled_owned();
                    this.aborted.set(Some(wait));
                }
                let aborted = this
                    .aborted
                    .as_mut()
                    .as_pin_mut()
                    .is_some_and(|wait| wait.poll(cx).is_ready());
                if !aborted {
                    return Poll::Pending;
                }
                // The grace period is over and this response is still open:
                // end it with a status rather than cutting the stream.
                *this.done = true;
                if let Some(record) = this.record.take() {
                    record.finish(Some(Code::Unavailable));
                }
                this.permit.take();
                let status = crate::call::deadline::shutting_down();
                let mut trailers = HeaderMap::new();
                if status.add_header(&mut trailers).is_err() {
                    trailers.insert(GRPC_STATUS, (Code::Unavailable as i32).into());
                }
                if let Some(info) = this.echo_on_error.take() {
                    trailers.insert(super::REQUEST_ID, info.request_id_header().clone());
                }
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        };
        let end = match &mut frame {
            Some(Ok(frame)) => match frame.trailers_mut() {
                Some(trailers) => {
                    let code = grpc_status(trailers);
                    if code.is_some_and(|c| c != Code::Ok)
                        && let Some(info) = this.echo_on_error.take()
                    {
                        trailers.insert(super::REQUEST_ID, info.request_id_header().clone());
                    }
                    Some(code)
                }
                // A body that says it is over after this frame (an
                // HTTP/JSON reply) is not polled again: the call ends here.
                None if inner.is_end_stream() => Some(None),
                None => None,
            },
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
        self.fixed.is_none() && (self.done || self.inner.as_ref().is_none_or(B::is_end_stream))
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(fixed) = &self.fixed {
            return SizeHint::with_exact(fixed.len() as u64);
        }
        match &self.inner {
            Some(inner) if !self.done => inner.size_hint(),
            _ => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn grpc_status_reads_any_code() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        assert_eq!(grpc_status(&headers), Some(Code::Ok));
        headers.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        assert_eq!(grpc_status(&headers), Some(Code::NotFound));
        headers.insert(GRPC_STATUS, HeaderValue::from_static("16"));
        assert_eq!(grpc_status(&headers), Some(Code::Unauthenticated));
        headers.insert(GRPC_STATUS, HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&headers), None);
    }
}
