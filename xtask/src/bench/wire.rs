//! The getOrder request and answer on the wire: the exact bytes h2load
//! posts, and the length of the answer its DATA bytes are checked against.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use super::config::ORDER_ID;

/// One gRPC message frame: uncompressed flag, big-endian length, message.
pub fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    frame.extend_from_slice(&encoded);
    frame
}

/// Writes the getOrder request body, one gRPC frame of
/// StringValue(ORDER_ID) from the generated types (no hand-written
/// protobuf), into `work`; returns its path.
pub fn write_request_body(work: &Path) -> Result<PathBuf> {
    let body = work.join("get-order-101.bin");
    std::fs::write(&body, grpc_frame(&ORDER_ID.to_owned()))
        .with_context(|| format!("cannot write {}", body.display()))?;
    Ok(body)
}

/// The length of getOrder("101")'s answer frame: the 5-byte prefix and order
/// 101 as the reference Python protobuf encodes it (the committed fixture).
/// Read, not computed, so xtask needs no build of the main package.
pub fn order_101_frame_len(root: &Path) -> Result<u64> {
    let fixture = root.join("tests/fixtures/order_seed_101.bin");
    let order =
        std::fs::read(&fixture).with_context(|| format!("cannot read {}", fixture.display()))?;
    Ok(5 + order.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answer_frames_are_the_documented_bytes() {
        assert_eq!(
            grpc_frame(&"101".to_owned()),
            [0, 0, 0, 0, 5, 0x0a, 3, b'1', b'0', b'1']
        );
        assert_eq!(order_101_frame_len(&crate::project_root()).unwrap(), 69);
    }
}
