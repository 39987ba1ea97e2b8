//! A raw HTTP/2 gRPC client (the h2 crate): it sends exactly the headers and
//! frames a test asks for and interprets nothing, so tests see what the
//! server itself answered (tonic's client would, for example, enforce
//! `grpc-timeout` locally and report its own status).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request};

/// What came back on one stream.
#[derive(Debug, Default)]
pub struct RawResponse {
    pub http_status: u16,
    pub headers: HeaderMap,
    pub data: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or from a trailers-only response.
    pub fn grpc_status(&self) -> Option<i32> {
        let from = |h: &HeaderMap| h.get("grpc-status")?.to_str().ok()?.parse().ok();
        self.trailers
            .as_ref()
            .and_then(from)
            .or_else(|| from(&self.headers))
    }

    pub fn grpc_message(&self) -> String {
        let from = |h: &HeaderMap| Some(h.get("grpc-message")?.to_str().ok()?.to_owned());
        self.trailers
            .as_ref()
            .and_then(from)
            .or_else(|| from(&self.headers))
            .unwrap_or_default()
    }
}

/// A gRPC message frame: compressed flag, 4-byte big-endian length, payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// One HTTP/2 frame (RFC 9113 4.1), for tests that write frames by hand:
/// what the h2 client will not send, or before the server's SETTINGS.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// The HPACK block of a gRPC call of `path` to `authority`: each header a
/// literal without indexing, new name, no Huffman (RFC 7541 6.2.2), so no
/// encoder state.
pub fn grpc_headers_block(authority: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0);
        for s in [name, value] {
            // Lengths under 127 fit the 7-bit prefix in one byte.
            assert!(s.len() < 127);
            block.push(s.len() as u8);
            block.extend(s.as_bytes());
        }
    }
    block
}

/// Standard gRPC request headers for `path`, plus `extra`.
pub fn grpc_request(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap()
}

/// The first `sent` bytes of a gRPC message announcing `announced` bytes:
/// a message that never completes.
pub fn partial_message(announced: u32, sent: usize) -> Vec<u8> {
    let mut partial = vec![0u8];
    partial.extend_from_slice(&announced.to_be_bytes());
    partial.extend(std::iter::repeat_n(b'x', sent - 5));
    partial
}

/// Sends `request` and `body` (ending the stream if `end_stream`; otherwise
/// leaving it open, as a client still sending would) and reads the whole
/// response.
pub async fn call(
    addr: SocketAddr,
    request: Request<()>,
    body: &[u8],
    end_stream: bool,
) -> Result<RawResponse, h2::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await?;
    let (response, mut send) = client.send_request(request, body.is_empty() && end_stream)?;
    if !body.is_empty() {
        send.send_data(Bytes::copy_from_slice(body), end_stream)?;
    }
    let response = response.await?;
    let (parts, mut recv) = response.into_parts();
    let mut out = RawResponse {
        http_status: parts.status.as_u16(),
        headers: parts.headers,
        ..RawResponse::default()
    };
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        out.data.extend_from_slice(&chunk);
    }
    out.trailers = recv.trailers().await?;
    drop(send);
    Ok(out)
}
