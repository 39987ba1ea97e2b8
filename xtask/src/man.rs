//! `cargo xtask man`: writes the client's man page, `docs/man/client.1`,
//! from its command-line definition. xtask never depends on the main
//! package (codegen must build when src/ does not), so the page is
//! rendered by the client itself (`client man`, hidden) and written here.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where the page is written, relative to the workspace root.
pub const MAN_PAGE: &str = "docs/man/client.1";

/// Builds the client, renders its man page and writes it; returns its path.
pub fn write(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--package",
            "order-management",
            "--bin",
            "client",
            "--",
            "man",
        ])
        .env_remove("ORDER_SERVER")
        .output()
        .context("run `cargo run --bin client -- man`")?;
    if !out.status.success() {
        bail!(
            "`client man` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = root.join(MAN_PAGE);
    std::fs::create_dir_all(path.parent().expect("a parent directory"))?;
    std::fs::write(&path, &out.stdout).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}
