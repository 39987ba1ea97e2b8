//! The call's log line: one line per call when it ends, with method,
//! status, duration, peer, request id and order id. Written by the
//! middleware's response body ([`crate::middleware`]) when the call ends.
//!
//! Every call writes this line, so it skips tracing's dispatch when it can:
//! it is formatted straight into the server's log writer
//! ([`crate::log::write_call_line`]), as the subscriber would have formatted
//! the same event (measured: the dispatch was a fifth of the line's cost).

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
    /// The peer's address as text (`ConnInfo::peer`).
    peer: Option<Arc<str>>,
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
        peer: Option<Arc<str>>,
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
        let peer = self.peer.as_deref();
        // A failed call always has an id; a successful one, the caller's (if any).
        let request_id = match code {
            Some(Code::Ok) => self.info.known_request_id(),
            _ => Some(self.info.request_id()),
        };
        let order_id = self.info.order_id();
        let status = code.map_or("none", code_name);
        // The fields in the order tracing's macro below records them; a
        // `None` is left out, as tracing leaves it out.
        // "call ended", or "call ended without a status" (see below).
        let direct = crate::log::write_call_line(code.is_some(), |line| {
            line.str("status", status);
            line.u64("duration_us", duration_us);
            line.str("method", method);
            let optional = [
                ("peer", peer),
                ("request_id", request_id),
                ("order_id", order_id),
                ("trace_id", trace_id),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    line.str(name, value);
                }
            }
        });
        if direct {
            return;
        }
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
    fn code_names_are_the_debug_names() {
        for n in 0..=16 {
            let code = Code::from_i32(n);
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }
}
