//! What the fuzz targets share: message round-trip checks, and an in-process
//! caller of the generated tower service (no network, no hyper): it sends a
//! gRPC request body as the fuzzer shaped it and reads the whole response,
//! checking that it is well-formed gRPC and always carries a `grpc-status`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http_body::Frame;
use http_body_util::BodyExt as _;
use order_management::pb::order_management_server::OrderManagementServer;
use order_management::seed;
use order_management::service::OrderService;
use order_management::store::MemoryStore;
use order_management::{CombinedShipment, Order};
use prost::Message;
use prost_reflect::DynamicMessage;
use tonic::codec::CompressionEncoding;
use tonic::codegen::Service as _;

pub const ORDER: &str = "ecommerce.Order";
pub const SHIPMENT: &str = "ecommerce.CombinedShipment";
pub const STRING_VALUE: &str = "google.protobuf.StringValue";

/// One runtime for the whole fuzzing process, made on first use. Current
/// thread: an input runs the same way every time. It has a blocking pool
/// (the service writes there) and timers (deadlines).
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
});

/// `FUZZ_DEBUG=1`: print every call and its reply to stderr (for running a
/// target on one input by hand: `target/.../service_requests crash-file`).
pub static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_DEBUG").is_some());

/// How long one call may take before the fuzzer calls it a hang. Every call
/// sends a complete request, so the service has no reason ever to wait.
pub const CALL_LIMIT: Duration = Duration::from_secs(10);
/// The most response body frames read from one call before it is a hang.
pub const MAX_RESPONSE_FRAMES: usize = 100_000;

// ---------------------------------------------------------------------------
// Messages

/// The prices are the same float: bit for bit, except that any NaN equals any
/// NaN when `nan_payload` is false, and -0.0 equals 0.0 when `signed_zero` is
/// false (prost, like the proto3 spec, does not write a float field equal to
/// 0.0, so -0.0 comes back as 0.0: a documented difference, see
/// tests/fixtures/index.md).
pub fn same_price(a: f32, b: f32, nan_payload: bool, signed_zero: bool) -> bool {
    if a.is_nan() && b.is_nan() && !nan_payload {
        return true;
    }
    if a == 0.0 && b == 0.0 && !signed_zero {
        return true;
    }
    a.to_bits() == b.to_bits()
}

/// `a` and `b` are the same order; prices compared by [`same_price`].
pub fn same_order(a: &Order, b: &Order, nan_payload: bool) -> bool {
    a.id == b.id
        && a.items == b.items
        && a.description == b.description
        && a.destination == b.destination
        && same_price(a.price, b.price, nan_payload, false)
}

pub fn same_shipment(a: &CombinedShipment, b: &CombinedShipment, nan_payload: bool) -> bool {
    a.id == b.id
        && a.status == b.status
        && a.orders_list.len() == b.orders_list.len()
        && a.orders_list
            .iter()
            .zip(&b.orders_list)
            .all(|(x, y)| same_order(x, y, nan_payload))
}

/// Decodes `bytes` as `M`; when it decodes, checks that the encoding is
/// stable (decode(encode(m)) == m, encode(decode(encode(m))) == encode(m))
/// and that the text and JSON formatters accept it and that the JSON parses
/// back to an equal message. `same(a, b, nan_payload)` compares two messages.
pub fn check_message<M: Message + Default + std::fmt::Debug>(
    full_name: &str,
    bytes: &[u8],
    same: impl Fn(&M, &M, bool) -> bool,
) {
    let Ok(message) = M::decode(bytes) else {
        return;
    };
    let encoded = message.encode_to_vec();
    assert_eq!(encoded.len(), message.encoded_len(), "encoded_len is exact");
    let again = M::decode(encoded.as_slice()).expect("prost decodes what it encoded");
    assert!(
        same(&message, &again, true),
        "decode(encode(m)) != m\n m: {message:?}\n decode(encode(m)): {again:?}"
    );
    assert_eq!(
        again.encode_to_vec(),
        encoded,
        "the encoding is not stable for {message:?}"
    );

    // The text layout is meant to be read by protobuf tools too: it must
    // parse (prost-reflect's text-format parser) back to the same message.
    let text = order_management::format::text(full_name, &message);
    assert!(text.is_empty() || text.ends_with('\n'), "text: {text:?}");
    let parsed = DynamicMessage::parse_text_format(
        order_management::format::descriptor(full_name),
        &text,
    )
    .unwrap_or_else(|e| {
        panic!("text() wrote what does not parse\n m: {message:?}\n text: {text:?}\n error: {e}")
    });
    let parsed: M = parsed.transcode_to().expect("a parsed message converts");
    assert!(
        same(&message, &parsed, false),
        "parse(text(m)) != m\n m: {message:?}\n text: {text:?}\n parsed: {parsed:?}"
    );

    let json = order_management::format::to_json(full_name, &message);
    let value: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("to_json wrote invalid JSON {json:?}: {e}"));
    let parsed: M = order_management::format::from_json(full_name, value).unwrap_or_else(|e| {
        panic!("from_json rejects what to_json wrote\n m: {message:?}\n json: {json}\n error: {e}")
    });
    assert!(
        same(&message, &parsed, false),
        "from_json(to_json(m)) != m\n m: {message:?}\n json: {json}\n parsed: {parsed:?}"
    );
}

// ---------------------------------------------------------------------------
// Calls

/// The five methods, plus one the service does not have.
pub const METHODS: [&str; 6] = [
    "addOrder",
    "getOrder",
    "searchOrders",
    "updateOrders",
    "processOrders",
    "noSuchMethod",
];

pub type Server = OrderManagementServer<OrderService>;

/// The service over a fresh in-memory store holding the seed's order 101,
/// configured as the bare test server does (`server::serve`), or, with
/// `production_codec`, with the production server's gzip and size settings.
pub fn server(production_codec: bool) -> Server {
    let store = Arc::new(MemoryStore::with_orders([seed::order_101()]));
    let server = OrderManagementServer::new(OrderService::new(store));
    if production_codec {
        server
            .max_decoding_message_size(4 * 1024 * 1024)
            .max_encoding_message_size(4 * 1024 * 1024)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
    } else {
        server
    }
}

/// A gRPC message frame: compressed flag, 4-byte big-endian length, payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The frames of `messages`, one after the other.
pub fn frames<M: Message>(messages: &[M]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|m| frame(&m.encode_to_vec()))
        .collect()
}

/// A request body that hands out its bytes in the given chunks (HTTP/2 DATA
/// frames, as far as the service can tell).
struct ChunkedBody {
    chunks: VecDeque<Bytes>,
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// What came back from one call.
#[derive(Debug, Default)]
pub struct Reply {
    pub http_status: u16,
    /// From the trailers, or from the headers of a trailers-only response.
    pub grpc_status: i32,
    pub grpc_message: String,
    /// The payload of every response message, in order.
    pub messages: Vec<Bytes>,
}

impl Reply {
    pub fn code(&self) -> tonic::Code {
        tonic::Code::from(self.grpc_status)
    }

    /// The messages decoded as `M`: the service must only send valid ones.
    pub fn decode<M: Message + Default>(&self) -> Vec<M> {
        self.messages
            .iter()
            .map(|m| {
                M::decode(m.as_ref()).unwrap_or_else(|e| {
                    panic!("the service sent a message that does not decode: {e}; {self:?}")
                })
            })
            .collect()
    }
}

/// Request metadata a call may carry.
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    pub grpc_timeout: Option<&'static str>,
    pub grpc_encoding: Option<&'static str>,
    pub accept_encoding: Option<&'static str>,
}

/// Calls `method` on `server` in-process with `body` split into `chunks`
/// pieces of at most `chunk` bytes (0: one piece), reads the whole response
/// and checks that it is well-formed: gRPC frames, a `grpc-status` that is a
/// valid code, in the trailers or (trailers-only) in the headers.
pub fn call(
    server: &mut Server,
    method: &str,
    body: &[u8],
    chunk: usize,
    meta: &Metadata,
) -> Reply {
    let chunks: VecDeque<Bytes> = if body.is_empty() {
        VecDeque::new()
    } else if chunk == 0 {
        VecDeque::from([Bytes::copy_from_slice(body)])
    } else {
        body.chunks(chunk).map(Bytes::copy_from_slice).collect()
    };
    let mut request = http::Request::post(format!("/ecommerce.OrderManagement/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = meta.grpc_timeout {
        request = request.header("grpc-timeout", t);
    }
    if let Some(e) = meta.grpc_encoding {
        request = request.header("grpc-encoding", e);
    }
    if let Some(e) = meta.accept_encoding {
        request = request.header("grpc-accept-encoding", e);
    }
    let request = request
        .body(tonic::body::Body::new(ChunkedBody { chunks }))
        .expect("a valid request");

    let future = server.call(request);
    let reply = RUNTIME.block_on(async move {
        tokio::time::timeout(CALL_LIMIT, async move {
            let response = match future.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            read(response).await
        })
        .await
        .unwrap_or_else(|_| panic!("{method}: no complete response within {CALL_LIMIT:?}"))
    });
    if *DEBUG {
        eprintln!(
            "{method} {meta:?}, {} body bytes in chunks of {chunk}: {reply:?}",
            body.len()
        );
    }
    reply
}

async fn read(response: http::Response<tonic::body::Body>) -> Reply {
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut trailers = None;
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        frames += 1;
        assert!(
            frames <= MAX_RESPONSE_FRAMES,
            "the response body does not end (> {MAX_RESPONSE_FRAMES} frames)"
        );
        let frame = frame.unwrap_or_else(|e| panic!("the response body failed: {e}"));
        match frame.into_data() {
            Ok(chunk) => {
                assert!(trailers.is_none(), "data after the trailers");
                data.extend_from_slice(&chunk);
            }
            Err(frame) => {
                let t = frame.into_trailers().expect("a frame is data or trailers");
                assert!(trailers.is_none(), "two sets of trailers");
                trailers = Some(t);
            }
        }
    }

    let status_in = |h: &http::HeaderMap| -> Option<i32> {
        let value = h.get("grpc-status")?;
        let text = value.to_str().expect("grpc-status is ASCII");
        Some(
            text.parse()
                .unwrap_or_else(|_| panic!("grpc-status {text:?} is not a number")),
        )
    };
    let (grpc_status, from) = match (
        trailers.as_ref().and_then(status_in),
        status_in(&parts.headers),
    ) {
        (Some(s), None) => (s, trailers.as_ref().unwrap()),
        (None, Some(s)) => {
            assert!(
                data.is_empty(),
                "a trailers-only response (grpc-status in the headers) has messages"
            );
            (s, &parts.headers)
        }
        (Some(_), Some(_)) => panic!("grpc-status in both headers and trailers"),
        (None, None) => panic!(
            "no grpc-status in the headers ({:?}) or the trailers ({trailers:?})",
            parts.headers
        ),
    };
    assert!(
        (0..=16).contains(&grpc_status),
        "grpc-status {grpc_status} is not a gRPC code"
    );
    let grpc_message = from
        .get("grpc-message")
        .map(|v| v.to_str().expect("grpc-message is ASCII").to_owned())
        .unwrap_or_default();

    let gzip = match parts.headers.get("grpc-encoding") {
        None => false,
        Some(v) if v == "gzip" => true,
        Some(v) => panic!("the response is compressed with {v:?}, which nobody asked for"),
    };
    let mut messages = Vec::new();
    let mut rest = Bytes::from(data);
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "a truncated response frame header");
        let flag = rest.get_u8();
        let len = rest.get_u32() as usize;
        assert!(rest.len() >= len, "a truncated response frame");
        let payload = rest.split_to(len);
        match flag {
            0 => messages.push(payload),
            1 if gzip => {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&payload[..]),
                    &mut plain,
                )
                .expect("a gzip response frame decompresses");
                messages.push(Bytes::from(plain));
            }
            _ => panic!("response frame flag {flag} (grpc-encoding gzip: {gzip})"),
        }
    }
    Reply {
        http_status: parts.status.as_u16(),
        grpc_status,
        grpc_message,
        messages,
    }
}
