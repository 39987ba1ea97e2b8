//! gRPC-Web (tonic-web, src/gateway/web.rs) on the gRPC port over HTTP/1.1,
//! framed by hand as a browser's grpc-web or connect-es client frames it:
//! binary (`application/grpc-web+proto`) and base64
//! (`application/grpc-web-text`), unary and server streaming; and CORS.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use order_management::{Order, seed};
use prost::Message as _;

use super::harness::Prod;
use crate::support::http1;

const GET_ORDER: &str = "/ecommerce.OrderManagement/getOrder";
const SEARCH: &str = "/ecommerce.OrderManagement/searchOrders";

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The data frames' messages and the trailer frame's text of a gRPC-Web body.
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        if body[0] & 0x80 != 0 {
            trailers.push_str(std::str::from_utf8(payload).unwrap());
        } else {
            messages.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "a partial frame is left: {body:?}");
    (messages, trailers)
}

/// Base64 as grpc-web-text sends it: each frame encoded on its own, so
/// padding may appear in the middle; decoded four characters at a time.
fn decode_text(text: &[u8]) -> Vec<u8> {
    text.chunks(4)
        .flat_map(|quad| STANDARD.decode(quad).expect("base64"))
        .collect()
}

fn string_value(s: &str) -> Vec<u8> {
    // google.protobuf.StringValue: field 1, length-delimited.
    let mut out = vec![0x0a, s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

#[test]
fn binary_grpc_web_unary_and_stream() {
    let server = Prod::start(&[]);
    let headers = [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
    ];
    let reply = http1::send(
        server.addr,
        "POST",
        GET_ORDER,
        &headers,
        &frame(&string_value("101")),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/grpc-web")
    );
    let (messages, trailers) = unframe(&reply.body);
    assert_eq!(
        Order::decode(messages[0].as_slice()).unwrap(),
        seed::order_101()
    );
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    let reply = http1::send(
        server.addr,
        "POST",
        SEARCH,
        &headers,
        &frame(&string_value("item")),
    );
    let (messages, trailers) = unframe(&reply.body);
    assert_eq!(messages.len(), 1);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    let reply = http1::send(
        server.addr,
        "POST",
        GET_ORDER,
        &headers,
        &frame(&string_value("nope")),
    );
    let status = reply
        .header("grpc-status")
        .map(str::to_owned)
        .unwrap_or_else(|| unframe(&reply.body).1);
    assert!(status.contains('5'), "NOT_FOUND: {reply:?}");
}

#[test]
fn base64_grpc_web_text_unary() {
    let server = Prod::start(&[]);
    let body = STANDARD.encode(frame(&string_value("101")));
    let headers = [
        ("content-type", "application/grpc-web-text"),
        ("accept", "application/grpc-web-text"),
    ];
    let reply = http1::send(server.addr, "POST", GET_ORDER, &headers, body.as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/grpc-web-text")
    );
    let (messages, trailers) = unframe(&decode_text(&reply.body));
    assert_eq!(
        Order::decode(messages[0].as_slice()).unwrap(),
        seed::order_101()
    );
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[test]
fn cors_answers_allowed_origins_only() {
    let server = Prod::start(&["--cors-allow-origin", "http://app.example"]);
    let preflight = |origin| {
        http1::send(
            server.addr,
            "OPTIONS",
            GET_ORDER,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-grpc-web"),
            ],
            b"",
        )
    };
    let allowed = preflight("http://app.example");
    assert_eq!(allowed.status, 204, "{allowed:?}");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert!(
        allowed
            .header("access-control-allow-headers")
            .unwrap()
            .contains("x-grpc-web")
    );
    let other = preflight("http://evil.example");
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );

    let reply = http1::send(
        server.addr,
        "GET",
        "/v1/orders/101",
        &[("origin", "http://app.example")],
        b"",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert!(
        reply
            .header("access-control-expose-headers")
            .unwrap()
            .contains("x-request-id")
    );
}
