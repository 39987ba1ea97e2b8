//! The response body wrapper that logs the call's line when it ends, holds
//! the call's admission permit until then, and ends the response with
//! `UNAVAILABLE` trailers when the server's shutdown grace period is over.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::HeaderMap;
use http::uri::PathAndQuery;
use http_body::{Body, Frame, SizeHint};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::Code;

use super::admission::Permit;
use super::call_info::CallInfo;

/// The tracing target of the per-call lines, so that they can be filtered on
/// their own: `RUST_LOG=info,order_management::call=off` turns them off.
pub const CALL_LOG_TARGET: &str = "order_management::call";

/// Everything the call's log line needs, logged exactly once.
pub struct CallRecord {
    /// The request path, e.g. `/ecommerce.OrderManagement/getOrder`.
    method: Option<PathAndQuery>,
    peer: Option<SocketAddr>,
    info: Arc<CallInfo>,
    started: Instant,
    done: bool,
}

impl CallRecord {
    pub fn new(
        method: Option<PathAndQuery>,
        peer: Option<SocketAddr>,
        info: Arc<CallInfo>,
        started: Instant,
    ) -> Self {
        Self {
            method,
            peer,
            info,
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
        let method = self.method.as_ref().map_or("", PathAndQuery::path);
        // Fields as `&str`, not `%`/`?`: the formatter writes a string as is,
        // where a Debug or Display value goes through `fmt` first (measured:
        // ~1,000 instructions a field).
        let mut peer = AddrText::default();
        let peer = self.peer.map(|addr| peer.format(addr));
        // A failed call always has an id; a successful one, the caller's (if any).
        let request_id = match code {
            Some(Code::Ok) => self.info.known_request_id(),
            _ => Some(self.info.request_id()),
        };
        let order_id = self.info.order_id();
        match code {
            Some(code) => tracing::info!(
                target: CALL_LOG_TARGET,
                status = code_name(code),
                duration_us,
                method,
                peer,
                request_id,
                order_id,
                "call ended"
            ),
            None => tracing::info!(
                target: CALL_LOG_TARGET,
                status = "none",
                duration_us,
                method,
                peer,
                request_id,
                order_id,
                "call ended without a status"
            ),
        }
    }
}

/// The name of a status code, as `tonic::Code`'s `Debug` writes it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// A socket address as text, on the stack: `ip:port` for IPv4 is written
/// digit by digit, the rest by `Display`.
struct AddrText {
    // The longest IPv6 form, `[ffff:...:ffff%4294967295]:65535`, is 58.
    bytes: [u8; 64],
    len: usize,
}

impl Default for AddrText {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl AddrText {
    fn format(&mut self, addr: SocketAddr) -> &str {
        use std::fmt::Write as _;
        self.len = 0;
        match addr {
            SocketAddr::V4(v4) => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        self.push(".");
                    }
                    self.push(digits.format(octet));
                }
                self.push(":");
                self.push(digits.format(v4.port()));
            }
            SocketAddr::V6(_) => {
                let _ = write!(self, "{addr}");
            }
        }
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }

    fn push(&mut self, text: &str) {
        let end = (self.len + text.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&text.as_bytes()[..end - self.len]);
        self.len = end;
    }
}

impl std::fmt::Write for AddrText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.push(text);
        Ok(())
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
        // `None`: a trailers-only response, already over.
        #[pin]
        inner: Option<B>,
        record: Option<CallRecord>,
        permit: Option<Permit>,
        // Resolves when the shutdown grace period is over.
        #[pin]
        abort: Option<WaitForCancellationFutureOwned>,
        // A call without the caller's request id: the trailers of an
        // error get one.
        echo_on_error: Option<Arc<CallInfo>>,
        // Set once the body has ended (naturally or by the abort).
        done: bool,
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
            echo_on_error: None,
            done: true,
        }
    }

    /// A trailers-only response already carries `grpc-status` in `headers`:
    /// the call is over as far as the log is concerned.
    pub fn new(
        inner: B,
        record: CallRecord,
        permit: Option<Permit>,
        abort: WaitForCancellationFutureOwned,
        echo_on_error: Option<Arc<CallInfo>>,
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
            inner: Some(inner),
            record,
            permit,
            abort: Some(abort),
            echo_on_error,
            done: false,
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

impl<B: Body> Body for CallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if *this.done {
            return Poll::Ready(None);
        }
        let mut frame = match inner.poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                let aborted = this
                    .abort
                    .as_mut()
                    .as_pin_mut()
                    .is_some_and(|abort| abort.poll(cx).is_ready());
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
                let status = crate::deadline::shutting_down();
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
            Some(Ok(frame)) => frame.trailers_mut().map(|trailers| {
                let code = grpc_status(trailers);
                if code.is_some_and(|c| c != Code::Ok)
                    && let Some(info) = this.echo_on_error.take()
                {
                    trailers.insert(super::REQUEST_ID, info.request_id_header().clone());
                }
                code
            }),
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
        self.done || self.inner.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
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
    fn addresses_are_written_as_display_writes_them() {
        for addr in [
            "127.0.0.1:50051",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.1.22.233:8",
            "[::1]:50051",
            "[::ffff:127.0.0.1]:4242",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let parsed: SocketAddr = addr.parse().unwrap();
            assert_eq!(AddrText::default().format(parsed), parsed.to_string());
        }
    }

    #[test]
    fn code_names_are_the_debug_names() {
        for n in 0..=16 {
            let code = Code::from_i32(n);
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }

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
