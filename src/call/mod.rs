//! One call's shared state: what the middleware ([`crate::middleware`])
//! fills once when a call arrives and the handlers ([`crate::service`]) and
//! the call's log line ([`crate::log::call_line`]) read, through the
//! request's extensions:
//!
//! - the request id (the caller's, or one made when first needed);
//! - the order id (which only the handler sees, for the call's log line);
//! - when the call must end ([`deadline::CallEnd`]: the caller's deadline,
//!   the server's per-call limit, the end of the shutdown grace period);
//! - the text of a panic payload, for the log ([`panic_message`]).
//!
//! A plain struct rather than a tracing span: a span per call, with its
//! fields formatted when it opens and entered on every poll, was the largest
//! single cost of a getOrder call (see docs/bench/BENCHMARKS.md).

pub mod deadline;

use std::any::Any;
use std::sync::{Arc, OnceLock};

use http::HeaderValue;

use self::deadline::CallEnd;

#[derive(Debug)]
pub struct CallInfo {
    /// The caller's `x-request-id`, or one made when first needed.
    request_id: OnceLock<HeaderValue>,
    order_id: OnceLock<String>,
    /// How a call that ends without a `grpc-status` went (the HTTP/JSON
    /// API's calls, `src/gateway/`), for its log line.
    outcome: OnceLock<tonic::Code>,
    end: CallEnd,
    /// The call's trace span, when it is traced (`crate::trace`).
    trace: OnceLock<opentelemetry::trace::SpanContext>,
}

impl CallInfo {
    /// `caller_id` must be visible ASCII (the middleware checks).
    pub(crate) fn new(caller_id: Option<HeaderValue>, end: CallEnd) -> Arc<Self> {
        let request_id = OnceLock::new();
        if let Some(id) = caller_id {
            let _ = request_id.set(id);
        }
        Arc::new(Self {
            request_id,
            order_id: OnceLock::new(),
            outcome: OnceLock::new(),
            end,
            trace: OnceLock::new(),
        })
    }

    /// The call's info, as the middleware filled it. A request that did not
    /// come through the middleware (a bare service in tests) gets fresh info:
    /// no request id yet, and an end from its own `grpc-timeout` only.
    pub fn of<T>(request: &tonic::Request<T>) -> Arc<Self> {
        match request.extensions().get::<Arc<Self>>() {
            Some(info) => Arc::clone(info),
            None => Self::new(None, CallEnd::caller_only(request.metadata().as_ref())),
        }
    }

    /// When this call must end.
    pub fn end(&self) -> &CallEnd {
        &self.end
    }

    /// The caller's request id, or, if it sent none, one made now (a UUIDv7,
    /// unique and time-ordered) and kept for the rest of the call.
    pub fn request_id(&self) -> &str {
        self.request_id_header().to_str().unwrap_or("?")
    }

    pub(crate) fn request_id_header(&self) -> &HeaderValue {
        self.request_id.get_or_init(|| {
            let mut text = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(text).expect("a UUID is visible ASCII")
        })
    }

    /// The request id if the caller sent one or one was made for the call,
    /// without making one.
    pub fn known_request_id(&self) -> Option<&str> {
        self.request_id.get().and_then(|id| id.to_str().ok())
    }

    /// The order the call is about, for its log line; the first one set wins.
    pub fn set_order_id(&self, id: &str) {
        let _ = self.order_id.set(id.to_owned());
    }

    pub fn order_id(&self) -> Option<&str> {
        self.order_id.get().map(String::as_str)
    }

    /// Notes how a call without gRPC trailers ended; the first one set wins.
    pub fn set_outcome(&self, code: tonic::Code) {
        let _ = self.outcome.set(code);
    }

    pub fn outcome(&self) -> Option<tonic::Code> {
        self.outcome.get().copied()
    }

    /// The call's server span (set once, by the middleware).
    pub fn set_trace(&self, span: opentelemetry::trace::SpanContext) {
        let _ = self.trace.set(span);
    }

    /// The call's server span, if the call is traced and sampled (or its
    /// caller sent a trace context).
    pub fn trace(&self) -> Option<&opentelemetry::trace::SpanContext> {
        self.trace.get()
    }
}

/// The text of a panic payload, for the log.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_id_is_kept_and_none_is_made_until_asked_for() {
        let given = CallInfo::new(
            Some(HeaderValue::from_static("abc-1")),
            CallEnd::unbounded(),
        );
        assert_eq!(given.known_request_id(), Some("abc-1"));
        assert_eq!(given.request_id(), "abc-1");

        let made = CallInfo::new(None, CallEnd::unbounded());
        assert_eq!(made.known_request_id(), None);
        let id = made.request_id().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(made.known_request_id(), Some(id.as_str()));
        assert_eq!(made.request_id(), id, "made once, then kept");
        assert_ne!(CallInfo::new(None, CallEnd::unbounded()).request_id(), id);
    }

    #[test]
    fn the_first_order_id_wins() {
        let info = CallInfo::new(None, CallEnd::unbounded());
        assert_eq!(info.order_id(), None);
        info.set_order_id("101");
        info.set_order_id("102");
        assert_eq!(info.order_id(), Some("101"));
    }
}
