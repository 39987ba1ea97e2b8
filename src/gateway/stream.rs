//! Server-streaming responses over HTTP/JSON: newline-delimited JSON (one
//! message per line), or Server-Sent Events for a client that accepts
//! `text/event-stream` (one `data:` event per message, `event: end` at the
//! end so that an `EventSource` does not reconnect).
//!
//! The body pulls the handler's stream only as fast as the connection
//! takes the bytes, so the handler's small bounded channel gives the same
//! backpressure as over gRPC. An error after the first message can no
//! longer change the HTTP status: it is sent as the last line,
//! `{"error": {...}}` (grpc-gateway's form), or as an `event: error`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{HeaderMap, HeaderValue, header};
use tonic::{Code, Status};

use super::error::Failure;
use crate::call::CallInfo;

/// How the messages of a stream are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Ndjson,
    Sse,
}

impl Framing {
    /// SSE when the client accepts `text/event-stream`, NDJSON otherwise.
    pub fn of(headers: &HeaderMap) -> Self {
        let sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("text/event-stream")));
        if sse { Self::Sse } else { Self::Ndjson }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Sse => "text/event-stream",
        }
    }

    fn message(self, json: &str) -> Bytes {
        match self {
            Self::Ndjson => Bytes::from(format!("{json}\n")),
            Self::Sse => Bytes::from(format!("data: {json}\n\n")),
        }
    }

    fn error(self, error: &serde_json::Value) -> Bytes {
        match self {
            Self::Ndjson => Bytes::from(format!("{}\n", serde_json::json!({ "error": error }))),
            Self::Sse => Bytes::from(format!("event: error\ndata: {error}\n\n")),
        }
    }

    fn end(self) -> Option<Bytes> {
        match self {
            Self::Ndjson => None,
            Self::Sse => Some(Bytes::from_static(b"event: end\ndata: {}\n\n")),
        }
    }
}

/// The response for a handler's stream of `full_name` messages. Waits for
/// the first message: an error before it is a plain HTTP error.
pub async fn respond<T, S>(
    mut stream: S,
    full_name: &'static str,
    framing: Framing,
    info: Arc<CallInfo>,
) -> Result<Response, Failure>
where
    T: prost::Message + Send + 'static,
    S: Stream<Item = Result<T, Status>> + Send + Unpin + 'static,
{
    let first = match stream.next().await {
        Some(Err(status)) => return Err(status.into()),
        first => first,
    };
    let at_end = Arc::clone(&info);
    let mut failed = false;
    let lines = futures_util::stream::iter(first)
        .chain(stream)
        // Nothing after an error.
        .take_while(move |item| {
            let go = !failed;
            failed |= item.is_err();
            std::future::ready(go)
        })
        .map(move |item| {
            Ok::<_, Infallible>(match item {
                Ok(message) => framing.message(&crate::format::to_json(full_name, &message)),
                Err(status) => {
                    info.set_outcome(status.code());
                    framing.error(&super::error::json(&status, info.request_id()))
                }
            })
        })
        .chain(futures_util::stream::iter(std::iter::from_fn(move || {
            // The stream ended: a call that did not fail succeeded.
            at_end.set_outcome(Code::Ok);
            None
        })))
        .chain(futures_util::stream::iter(framing.end().map(Ok)));
    let mut response = axum::body::Body::from_stream(lines).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
