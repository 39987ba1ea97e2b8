//! xtask works on the checkout it is run in, found at run time.
//!
//! Two worktrees that share a target directory (`CARGO_TARGET_DIR`, or
//! `build.target-dir` in a cargo config) share one `target/debug/xtask`:
//! `cargo xtask` in either may run the binary the other built. A root
//! compiled into the binary (`env!("CARGO_MANIFEST_DIR")`) then points at
//! the other worktree, and `codegen --check` reads its proto/.
//!
//! These tests reproduce that without a second build or a `git worktree
//! add` (which would write into the repository's .git while other tests
//! and worktrees use it): they run the binary built here against a second
//! checkout in a temp dir, the way `cargo run` in that checkout would,
//! with `CARGO_MANIFEST_DIR` set to its xtask directory; and without that
//! variable, from a directory inside it, as a binary run by hand would be.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use xtask::project_root;

/// A second checkout of what `codegen --check` needs: proto/ and
/// generated/, plus a workspace manifest with xtask in it (its real
/// manifest and a stub main.rs, so that cargo can load the workspace).
fn second_checkout() -> tempfile::TempDir {
    let here = project_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["proto", "generated"] {
        fs::create_dir_all(root.join(sub)).unwrap();
        for entry in fs::read_dir(here.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::copy(&path, root.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"xtask\"]\nresolver = \"3\"\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("xtask/src")).unwrap();
    fs::copy(here.join("xtask/Cargo.toml"), root.join("xtask/Cargo.toml")).unwrap();
    fs::write(root.join("xtask/src/main.rs"), "fn main() {}\n").unwrap();
    dir
}

/// Makes the checkout's generated/ stale: `codegen --check` then fails and
/// names the generated/ it read, which shows which root xtask used.
fn make_stale(root: &Path) {
    let readme = root.join("generated/README.md");
    let text = fs::read_to_string(&readme).unwrap();
    fs::write(&readme, text + "\nedited\n").unwrap();
}

/// `xtask codegen --check` from `cwd`, with `CARGO_MANIFEST_DIR` set to
/// `manifest_dir` or unset.
fn codegen_check(cwd: &Path, manifest_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["codegen", "--check"]).current_dir(cwd);
    match manifest_dir {
        Some(dir) => cmd.env("CARGO_MANIFEST_DIR", dir),
        None => cmd.env_remove("CARGO_MANIFEST_DIR"),
    };
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn one_binary_serves_each_checkout_as_cargo_run_does() {
    let other = second_checkout();
    let root = other.path();
    let out = codegen_check(root, Some(&root.join("xtask")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "generated/ is up to date\n");

    make_stale(root);
    let out = codegen_check(root, Some(&root.join("xtask")));
    assert!(!out.status.success(), "a stale generated/ must fail");
    let stderr = text(&out.stderr);
    let theirs = format!("{} is out of date", root.join("generated").display());
    assert!(stderr.contains(&theirs), "{stderr}");

    // The same binary, run for this checkout, still checks this one.
    let here = project_root();
    let out = codegen_check(&here, Some(&here.join("xtask")));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn without_cargo_run_the_current_directory_decides() {
    let other = second_checkout();
    let root = other.path();
    make_stale(root);
    let theirs = format!("{} is out of date", root.join("generated").display());

    // Run by hand from a directory inside the checkout: cargo locate-project.
    let out = codegen_check(&root.join("xtask/src"), None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&theirs), "{}", text(&out.stderr));

    // Run by a test of another package: its manifest dir is not xtask's,
    // so it is not taken for one.
    let out = codegen_check(root, Some(&project_root()));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&theirs), "{}", text(&out.stderr));
}
