//! gzip: compressed requests and responses with the generated client, on
//! the wire, and with the client's `--gzip`.

use std::sync::Arc;

use crate::support::{TestServer, raw, run_client, stderr, stdout};
use order_management::seed;
use order_management::store::MemoryStore;
use tonic::codec::CompressionEncoding;

use super::harness::{GET_ORDER, Prod, bounded, drain, order, string_value};

#[tokio::test]
async fn gzip_requests_and_responses_with_a_generated_client() {
    let server = Prod::start(&[]);
    let mut client = server
        .client()
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);

    let added = client.add_order(order("102", "Busan")).await.unwrap();
    assert_eq!(added.get_ref(), "102");
    let reply = client.get_order("102".to_owned()).await.unwrap();
    assert_eq!(
        reply
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(reply.into_inner(), order("102", "Busan"));

    let mut search = client.search_orders("item".to_owned()).await.unwrap();
    assert_eq!(
        search
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let (found, end) = drain(search.get_mut()).await;
    end.unwrap();
    assert_eq!(found, [seed::order_101(), order("102", "Busan")]);
}

/// CRC-32 (IEEE), for the gzip trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in one stored (uncompressed) block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // final block, stored
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// On the wire: a gzip-compressed request frame is accepted, and a client
/// that accepts gzip gets `grpc-encoding: gzip` and compressed frames.
#[tokio::test]
async fn gzip_on_the_wire() {
    let server = Prod::start(&[]);
    let compressed = gzip_stored(&string_value("101"));
    let mut body = vec![1]; // compressed flag
    body.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
    body.extend_from_slice(&compressed);
    let request = raw::grpc_request(
        server.addr,
        GET_ORDER,
        &[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")],
    );
    let response = bounded(
        "a gzip getOrder",
        raw::call(server.addr, request, &body, true),
    )
    .await
    .unwrap();
    assert_eq!(response.grpc_status(), Some(0), "{response:?}");
    assert_eq!(
        response
            .headers
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(response.data.first(), Some(&1), "compressed flag");
    let len = u32::from_be_bytes(response.data[1..5].try_into().unwrap()) as usize;
    assert_eq!(response.data.len(), 5 + len, "one message frame");
    assert_eq!(&response.data[5..7], &[0x1f, 0x8b], "a gzip member");
}

#[test]
fn client_gzip_flag_compresses_requests_and_accepts_gzip_replies() {
    let server = Prod::start(&[]);
    let url = server.url();
    let out = run_client(&url, &["--gzip", "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("id: \"101\"\n"),
        "{}",
        stdout(&out)
    );
    let out = run_client(&url, &["--gzip", "search", "item"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("id: \"101\""), "{}", stdout(&out));
    let out = run_client(&url, &["--gzip", "process", "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("cmb - Seoul"), "{}", stdout(&out));

    // The bare service (no gzip support) refuses what `--gzip` sends: the
    // flag really compresses requests.
    let bare = TestServer::start(Arc::new(MemoryStore::with_orders([seed::order_101()])));
    let out = run_client(&bare.url(), &["--gzip", "101"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("Unimplemented"), "{}", stderr(&out));
    assert!(stderr(&out).contains("gzip"), "{}", stderr(&out));
}
