//! What the middleware and a handler share about one call, through the
//! request's extensions: the request id (for the handler's own log lines)
//! and the order id (which only the handler sees, for the call's log line).
//!
//! A plain struct rather than a tracing span: a span per call, with its
//! fields formatted when it opens and entered on every poll, was the largest
//! single cost of a getOrder call (see BENCHMARKS.md).

use std::sync::{Arc, OnceLock};

use http::HeaderValue;

#[derive(Debug)]
pub struct CallInfo {
    /// The caller's `x-request-id`, or one made when first needed.
    request_id: OnceLock<HeaderValue>,
    order_id: OnceLock<String>,
}

impl CallInfo {
    /// `caller_id` must be visible ASCII (the middleware checks).
    pub(crate) fn new(caller_id: Option<HeaderValue>) -> Arc<Self> {
        let request_id = OnceLock::new();
        if let Some(id) = caller_id {
            let _ = request_id.set(id);
        }
        Arc::new(Self {
            request_id,
            order_id: OnceLock::new(),
        })
    }

    /// The call's info, if the request came through the middleware (tests
    /// may call the service directly).
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Arc<Self>> {
        request.extensions().get::<Arc<Self>>().cloned()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_id_is_kept_and_none_is_made_until_asked_for() {
        let given = CallInfo::new(Some(HeaderValue::from_static("abc-1")));
        assert_eq!(given.known_request_id(), Some("abc-1"));
        assert_eq!(given.request_id(), "abc-1");

        let made = CallInfo::new(None);
        assert_eq!(made.known_request_id(), None);
        let id = made.request_id().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(made.known_request_id(), Some(id.as_str()));
        assert_eq!(made.request_id(), id, "made once, then kept");
        assert_ne!(CallInfo::new(None).request_id(), id);
    }

    #[test]
    fn the_first_order_id_wins() {
        let info = CallInfo::new(None);
        assert_eq!(info.order_id(), None);
        info.set_order_id("101");
        info.set_order_id("102");
        assert_eq!(info.order_id(), Some("101"));
    }
}
