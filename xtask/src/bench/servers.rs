//! Servers under test: started pinned to the server core, on 127.0.0.1
//! with an ephemeral port, ready once they print `listening on ADDR`, and
//! killed (data dir and log removed) when their handle drops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::config::{Kind, SERVER_CORE};
use super::peers::PythonPeer;
use super::process::{self, Proc, Stderr, status_kib};

/// The arguments every server here takes to listen on an ephemeral port.
pub const LISTEN: [&str; 2] = ["--listen", "127.0.0.1:0"];

/// `taskset -c SERVER_CORE PROGRAM`: a command pinned to the server core.
pub fn pinned(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", SERVER_CORE]).arg(program);
    cmd
}

/// Our server as shipped: none of the caller's ORDER_* settings, and the
/// default log level (no RUST_LOG).
pub fn as_shipped(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORDER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
}

/// Starts a server, its stderr into `log`, and waits (up to `ready_within`)
/// for its `listening on` line.
pub fn launch(
    name: &str,
    cmd: &mut Command,
    log: &Path,
    work: &Path,
    ready_within: Duration,
) -> Result<(Proc, SocketAddr)> {
    // Servers are killed by their handle; the limit only bounds a wait.
    let mut proc = Proc::spawn(
        name,
        cmd,
        Duration::from_secs(3600),
        work,
        Stderr::To(log.to_path_buf()),
    )?;
    let addr = process::wait_listening(&mut proc, log, ready_within)?;
    Ok((proc, addr))
}

/// What it takes to start each kind of server.
pub struct Servers {
    pub root: PathBuf,
    pub work: PathBuf,
    pub server: PathBuf,
    pub bare: Option<PathBuf>,
    pub python: Option<PythonPeer>,
}

/// A server under test: pinned to the server core, listening on 127.0.0.1.
pub struct Server {
    pub kind: Kind,
    proc: Proc,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// Our server's data dir, removed with the server.
    pub data_dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The process first (Proc's Drop runs after this body): kill it now
        // so that the data dir is no longer in use.
        self.proc.kill();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Our server's log holds one line per call: hundreds of MB per run.
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kib(&self, key: &str) -> Result<u64> {
        status_kib(self.pid(), key)
    }

    /// Stops it the way a service manager would (SIGTERM), so that its
    /// store is closed cleanly: a store killed with its file open needs
    /// crash recovery at its next open, which a start-up measurement on a
    /// reused store would then time. Whether it exited cleanly within 30 s.
    pub fn stop(mut self) -> bool {
        self.proc.terminate(Duration::from_secs(30))
    }
}

impl Servers {
    /// Our server alone (no peers), from `root`, its files in `work`.
    pub fn ours_only(root: &Path, work: &Path, server: PathBuf) -> Self {
        Self {
            root: root.to_path_buf(),
            work: work.to_path_buf(),
            server,
            bare: None,
            python: None,
        }
    }

    /// Starts one server and waits for its `listening on` line. Ours gets
    /// `data_dir`, or a fresh one in the work dir (then removed with it).
    pub fn start(&self, kind: Kind, data_dir: Option<PathBuf>) -> Result<Server> {
        self.start_with(kind, data_dir, &[])
    }

    /// [`Servers::start`] with `extra` arguments after the usual ones.
    pub fn start_with(
        &self,
        kind: Kind,
        data_dir: Option<PathBuf>,
        extra: &[&str],
    ) -> Result<Server> {
        let log = self.work.join(format!("{}.log", kind.key()));
        let mut owned_data = None;
        let mut cmd = match kind {
            Kind::Ours => {
                let dir = data_dir.unwrap_or_else(|| {
                    let fresh = self.work.join("ours-data");
                    owned_data = Some(fresh.clone());
                    fresh
                });
                let mut cmd = pinned(&self.server);
                cmd.args(LISTEN).arg("--data-dir").arg(dir);
                as_shipped(&mut cmd);
                cmd
            }
            Kind::Bare | Kind::BareCurrentThread => {
                let mut cmd = pinned(self.bare.as_ref().context("bare_server not built")?);
                cmd.args(LISTEN);
                if kind == Kind::BareCurrentThread {
                    cmd.arg("--current-thread");
                }
                cmd
            }
            Kind::Python => self.python_command()?,
            Kind::Node => {
                let mut cmd = pinned("node");
                cmd.arg(self.root.join("tests/load/node/server.js"))
                    .args(LISTEN);
                cmd
            }
        };
        cmd.args(extra).current_dir(&self.root);
        let (proc, addr) = launch(
            kind.key(),
            &mut cmd,
            &log,
            &self.work,
            Duration::from_secs(60),
        )?;
        Ok(Server {
            kind,
            proc,
            addr,
            log,
            data_dir: owned_data,
        })
    }

    /// Our server on an existing data dir (left in place when it stops),
    /// and the time from spawning it to its `listening on` line.
    pub fn start_on(&self, data_dir: &Path, ready_within: Duration) -> Result<(Server, Duration)> {
        let log = self.work.join("ours-on-store.log");
        let mut cmd = pinned(&self.server);
        cmd.args(LISTEN).arg("--data-dir").arg(data_dir);
        as_shipped(&mut cmd);
        cmd.current_dir(&self.root);
        let spawned = std::time::Instant::now();
        let (proc, addr) = launch("ours-on-store", &mut cmd, &log, &self.work, ready_within)?;
        let start_up = spawned.elapsed();
        let server = Server {
            kind: Kind::Ours,
            proc,
            addr,
            log,
            data_dir: None,
        };
        Ok((server, start_up))
    }

    /// `server migrate --database-url URL`: the schema our server's
    /// PostgreSQL store needs.
    pub fn migrate(&self, database_url: &str) -> Result<()> {
        let mut cmd = Command::new(&self.server);
        cmd.args(["migrate", "--database-url", database_url]);
        as_shipped(&mut cmd);
        cmd.current_dir(&self.root);
        process::run_ok(
            "server-migrate",
            &mut cmd,
            Duration::from_secs(120),
            &self.work,
        )?;
        Ok(())
    }

    /// Replica `n` of our server on a PostgreSQL database (`--database-url`,
    /// no seed order: the database holds the data set).
    pub fn start_replica(&self, n: usize, database_url: &str) -> Result<Server> {
        let name = format!("ours-replica-{n}");
        let log = self.work.join(format!("{name}.log"));
        let mut cmd = pinned(&self.server);
        cmd.args(LISTEN)
            .args(["--database-url", database_url, "--no-seed"]);
        as_shipped(&mut cmd);
        cmd.current_dir(&self.root);
        let (proc, addr) = launch(&name, &mut cmd, &log, &self.work, Duration::from_secs(120))?;
        Ok(Server {
            kind: Kind::Ours,
            proc,
            addr,
            log,
            data_dir: None,
        })
    }

    fn python_command(&self) -> Result<Command> {
        let py = self.python.as_ref().context("no Python peer")?;
        let mut cmd = pinned(&py.python);
        cmd.arg(self.root.join("tests/interop/peer_server.py"))
            .args(LISTEN)
            .env("PYTHONPATH", &py.pythonpath)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if py.quiet {
            cmd.arg("--quiet");
        }
        Ok(cmd)
    }
}
