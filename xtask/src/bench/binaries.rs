//! Release builds of what the benchmark and the profile run, with cargo's
//! progress on our stderr.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use super::loadgen::{LOAD_GENERATOR, MAIN_PACKAGE};
use super::process::{self, Proc, Stderr};

/// The release binaries of one benchmark run.
pub struct Binaries {
    pub server: PathBuf,
    pub loadgen: PathBuf,
    pub bulk_load: PathBuf,
    /// `examples/bare_server`, when the bare peers are wanted.
    pub bare: Option<PathBuf>,
}

/// The target directory cargo builds into from `root`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// `cargo build --release --locked --bins --example bulk_load [--example
/// bare_server]`; with the load generator's package too when it is not the
/// main one.
pub fn bench_binaries(root: &Path, work: &Path, with_bare: bool) -> Result<Binaries> {
    let mut args = Vec::new();
    if LOAD_GENERATOR.package != MAIN_PACKAGE {
        args.extend([
            "--package",
            MAIN_PACKAGE,
            "--package",
            LOAD_GENERATOR.package,
        ]);
    }
    args.extend(["--bins", "--example", "bulk_load"]);
    if with_bare {
        args.extend(["--example", "bare_server"]);
    }
    cargo_build(root, work, &args, &[])?;
    let target = target_dir(root);
    let release = target.join("release");
    Ok(Binaries {
        server: release.join("server"),
        loadgen: LOAD_GENERATOR.path(&target),
        bulk_load: release.join("examples/bulk_load"),
        bare: with_bare.then(|| release.join("examples/bare_server")),
    })
}

/// `cargo build --release --locked ARGS` with `env`, its progress on our stderr.
pub fn cargo_build(root: &Path, work: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked"])
        .args(args)
        .envs(env.iter().copied());
    let line = process::render(&cmd);
    let done = Proc::spawn(
        "cargo-build",
        &mut cmd,
        Duration::from_secs(1800),
        work,
        Stderr::Inherit,
    )?
    .wait()?;
    if !done.status.success() {
        bail!("`{line}` failed ({})", done.status);
    }
    Ok(())
}
