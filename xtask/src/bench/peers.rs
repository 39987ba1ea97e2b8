//! The peer servers that need more than a build: the Python grpcio server
//! of the interop tests (a venv from PyPI, stubs from proto/) and the Node
//! @grpc/grpc-js server (node_modules from its lock file).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::process::run_ok;

/// A Python peer ready to start.
pub struct PythonPeer {
    pub python: PathBuf,
    pub pythonpath: String,
    /// peer_server.py has `--quiet` (no log line per call).
    pub quiet: bool,
    pub version: String,
}

/// The interop venv (tests/interop/.venv), reused when its stamp says it
/// holds requirements.txt's pins for this Python, else made exactly the way
/// tests/interop/run.sh makes it (same stamp, so neither redoes the other's
/// work); and fresh stubs from proto/ in our temp dir (one second; never
/// stale, and never touching run.sh's .gen while it may be running).
pub fn setup_python(root: &Path, work: &Path) -> Result<PythonPeer> {
    let here = root.join("tests/interop");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let venv_python = interop_venv(&here, &python, work)?;
    let gen_dir = work.join("py-gen");
    std::fs::create_dir_all(&gen_dir)?;
    run_ok(
        "python-stubs",
        Command::new(&venv_python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(root.join("proto"))
            .arg(format!("--python_out={}", gen_dir.display()))
            .arg(format!("--grpc_python_out={}", gen_dir.display()))
            .arg(root.join("proto/order.proto"))
            // order.proto imports the vendored google/api protos (its
            // google.api.http options): their modules too.
            .arg(root.join("proto/google/api/http.proto"))
            .arg(root.join("proto/google/api/annotations.proto"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(120),
        work,
    )?;
    let versions = run_ok(
        "python-grpc-version",
        Command::new(&venv_python).args([
            "-c",
            "import sys, grpc, google.protobuf as p; print('Python %d.%d.%d' % sys.version_info[:3], '/ grpcio', grpc.__version__, '/ protobuf', p.__version__)",
        ]),
        Duration::from_secs(30),
        work,
    )?;
    let peer_source = std::fs::read_to_string(here.join("peer_server.py"))?;
    Ok(PythonPeer {
        python: venv_python,
        pythonpath: format!("{}:{}", gen_dir.display(), here.display()),
        quiet: peer_source.contains("\"--quiet\""),
        version: versions.stdout.trim().to_owned(),
    })
}

/// `here/.venv`'s python, after (re)making the venv unless its stamp (the
/// requirements' sha256 and the Python version) is current.
fn interop_venv(here: &Path, python: &str, work: &Path) -> Result<PathBuf> {
    let venv = here.join(".venv");
    let venv_python = venv.join("bin/python");
    let ten = Duration::from_secs(10);
    let py_version = run_ok(
        "python-version",
        Command::new(python).args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
        ten,
        work,
    )
    .with_context(|| format!("the Python peer needs {python} (>= 3.10), or --skip python"))?
    .stdout
    .trim()
    .to_owned();
    let requirements = here.join("requirements.txt");
    let sha = run_ok(
        "sha256sum",
        Command::new("sha256sum").arg(&requirements),
        ten,
        work,
    )?
    .stdout
    .split_whitespace()
    .next()
    .unwrap_or_default()
    .to_owned();
    let stamp = format!("{sha} python {py_version}");
    let current = std::fs::read_to_string(venv.join(".interop-stamp")).unwrap_or_default();
    if !venv_python.exists() || current.trim_end() != stamp {
        make_venv(&venv, python, &requirements, work)?;
        std::fs::write(venv.join(".interop-stamp"), format!("{stamp}\n"))?;
    }
    Ok(venv_python)
}

/// A fresh venv at `venv` with `requirements` installed from PyPI (wheels
/// only, pinned, no dependency resolution), as tests/interop/run.sh does.
fn make_venv(venv: &Path, python: &str, requirements: &Path, work: &Path) -> Result<()> {
    let venv_python = venv.join("bin/python");
    println!(
        "        creating {} (as tests/interop/run.sh does)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(venv);
    run_ok(
        "python-venv",
        Command::new(python).arg("-m").arg("venv").arg(venv),
        Duration::from_secs(120),
        work,
    )
    .context("cannot create the venv (on Debian: apt-get install python3-venv)")?;
    let pip = run_ok(
        "pip-install",
        Command::new(&venv_python)
            .args(["-m", "pip", "install", "--no-input", "--timeout", "60"])
            .args(["--only-binary=:all:", "--no-deps", "-r"])
            .arg(requirements)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        Duration::from_secs(900),
        work,
    );
    if let Err(e) = pip {
        let _ = std::fs::remove_dir_all(venv);
        return Err(e.context("cannot install tests/interop/requirements.txt from PyPI"));
    }
    run_ok(
        "pip-check",
        Command::new(&venv_python).args(["-m", "pip", "check"]),
        Duration::from_secs(60),
        work,
    )?;
    Ok(())
}

/// node_modules from package-lock.json (`npm ci`), unless npm's own record
/// of the installed tree (node_modules/.package-lock.json) is newer than
/// the lock file.
pub fn setup_node(dir: &Path, work: &Path) -> Result<String> {
    let node = run_ok(
        "node-version",
        Command::new("node").arg("--version"),
        Duration::from_secs(10),
        work,
    )
    .context("the Node peer needs node (>= 20) on PATH, or --skip node")?;
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    let locked = modified(&dir.join("package-lock.json"));
    if installed.is_none() || installed < locked {
        println!("        npm ci in {}", dir.display());
        run_ok(
            "npm-ci",
            Command::new("npm")
                .current_dir(dir)
                .args(["ci", "--no-audit", "--no-fund"]),
            Duration::from_secs(600),
            work,
        )?;
    }
    let grpc_js = std::fs::read_to_string(dir.join("node_modules/@grpc/grpc-js/package.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .context("no node_modules/@grpc/grpc-js after npm ci")?;
    Ok(format!(
        "Node {} / @grpc/grpc-js {grpc_js}",
        node.stdout.trim()
    ))
}
