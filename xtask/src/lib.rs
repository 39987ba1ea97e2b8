//! Project automation, run as `cargo xtask <command>`.
//!
//! `codegen` writes generated/ from proto/; `breaking` checks proto/ against a
//! baseline for wire-breaking changes; `bench` measures our server against
//! its peers (feature `bench`, on by default).
//!
//! Everything that needs protox or tonic-prost-build lives here, so the main
//! package builds with neither `protoc` nor a build script.

#[cfg(feature = "bench")]
pub mod bench;
pub mod breaking;
pub mod codegen;

use std::path::{Path, PathBuf};

/// The workspace root: the parent of this crate's directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
