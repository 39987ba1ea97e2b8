//! The call's log line: one line per call when it ends, with method,
//! status, duration, peer, request id and order id. Written by the
//! middleware's response body ([`crate::middleware`]) when the call ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use tonic::Code;

use crate::call::CallInfo;
use crate::metrics::rpc::CallMeter;
use crate::trace::{CallSpan, TraceIdText};

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
    /// The call's metrics (`None` while metrics are off), finished with the line.
    meter: Option<CallMeter>,
    /// The call's server span (`None` while tracing is off, or the call is
    /// not sampled), ended with the line. Boxed: a span is ~290 bytes, and
    /// the record moves with the call several times.
    span: Option<Box<CallSpan>>,
}

impl CallRecord {
    pub fn new(
        method: Option<PathAndQuery>,
        peer: Option<SocketAddr>,
        info: Arc<CallInfo>,
        started: Instant,
    ) -> Self {
        let meter = method.as_ref().and_then(|m| CallMeter::start(m.path()));
        Self {
            method,
            peer,
            info,
            started,
            done: false,
            meter,
            span: None,
        }
    }

    /// The call's server span, to end when the call ends.
    pub fn traced(&mut self, span: CallSpan) {
        self.span = Some(Box::new(span));
    }

    /// The call passed auth and admission: its handler runs.
    pub fn admitted(&self) {
        if let Some(meter) = &self.meter {
            meter.admitted();
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
        // A call of the HTTP/JSON API ends without a gRPC status: its own.
        let code = code.or_else(|| self.info.outcome());
        let elapsed = self.started.elapsed();
        if let Some(meter) = self.meter.take() {
            meter.finish(code, elapsed);
        }
        if let Some(span) = self.span.take() {
            span.finish(code);
        }
        let trace_text = self.info.trace().map(TraceIdText::new);
        let trace_id = trace_text.as_ref().map(TraceIdText::as_str);
        let duration_us = elapsed.as_micros() as u64;
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
                trace_id,
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
                trace_id,
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

#[cfg(test)]
mod tests {
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
}
