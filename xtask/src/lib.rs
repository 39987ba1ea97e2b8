//! Project automation, run as `cargo xtask <command>`.
//!
//! `codegen` writes generated/ from proto/; `breaking` checks proto/ against a
//! baseline for wire-breaking changes; `bench` measures our server against
//! its peers, `profile` counts what one call costs them, `overload`
//! checks that shedding keeps admitted calls fast and `attacks` measures
//! the server's memory under hostile clients (feature `bench`, on by
//! default); `man` writes the client's man page.
//!
//! Everything that needs protox or tonic-prost-build lives here, so the main
//! package builds with neither `protoc` nor a build script.

#[cfg(feature = "bench")]
pub mod attacks;
#[cfg(feature = "bench")]
pub mod bench;
pub mod breaking;
pub mod codegen;
#[cfg(feature = "bench")]
pub mod gateway;
pub mod man;
pub mod openapi;
#[cfg(feature = "bench")]
pub mod overload;
#[cfg(feature = "bench")]
pub mod profile;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root, found when xtask runs (see [`find_project_root`]).
/// Panics if there is none: for tests and callers that cannot go on without it.
pub fn project_root() -> PathBuf {
    find_project_root().unwrap_or_else(|e| panic!("{e:#}"))
}

/// The workspace root of the checkout xtask is run in, found at run time,
/// never from a path compiled into the binary: worktrees that share a
/// target directory (`CARGO_TARGET_DIR`, `build.target-dir`) share one
/// xtask binary too, whichever of them built it last.
///
/// First `CARGO_MANIFEST_DIR`, which `cargo run` (so `cargo xtask`) and
/// `cargo test` set for the process to xtask's own directory: its parent.
/// It counts only if it names this crate's manifest, since a program that
/// runs xtask from another package's test inherits that package's directory.
/// Else `cargo locate-project --workspace` from the current directory.
pub fn find_project_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR")
        && let Some(root) = root_above_xtask(Path::new(&dir))
    {
        return Ok(root);
    }
    locate_workspace()
        .context("cannot find the workspace root: run xtask as `cargo xtask` inside the repository")
}

/// The workspace root if `manifest_dir` is xtask's directory (its
/// Cargo.toml names package `xtask`): the directory above it.
fn root_above_xtask(manifest_dir: &Path) -> Option<PathBuf> {
    let manifest = std::fs::read_to_string(manifest_dir.join("Cargo.toml")).ok()?;
    let ours = manifest
        .lines()
        .any(|l| l.split_whitespace().collect::<String>() == r#"name="xtask""#);
    ours.then(|| manifest_dir.parent().map(Path::to_path_buf))
        .flatten()
}

/// The directory of the workspace manifest that cargo finds from the
/// current directory.
fn locate_workspace() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    if !out.status.success() {
        bail!(
            "`cargo locate-project --workspace` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim_end());
    match manifest.parent() {
        Some(root) if manifest.is_file() => Ok(root.to_path_buf()),
        _ => bail!(
            "`cargo locate-project --workspace` printed no manifest: {}",
            manifest.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_xtasks_own_manifest_dir_names_the_root() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(root_above_xtask(here).as_deref(), here.parent());
        // The workspace root's manifest is the main package's, not xtask's.
        assert_eq!(root_above_xtask(here.parent().unwrap()), None);
        assert_eq!(root_above_xtask(Path::new("/nonexistent")), None);
    }
}
