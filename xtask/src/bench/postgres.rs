//! PostgreSQL on this machine, the yardstick for durable inserts: a
//! throwaway cluster in the run's temp dir (the disk our data dirs are
//! on), fully durable, reachable only through a Unix socket there, its
//! postmaster pinned to the server core (its backends inherit that);
//! pgbench's insert rate against it; pg_test_fsync's cost of one
//! fdatasync on the same disk.
//!
//! The Debian `postgresql` package provides it (installed with apt-get,
//! as root, when missing). Run as root, every PostgreSQL program that
//! refuses root runs as the `postgres` user (`runuser -u postgres --`),
//! in a directory it owns. The cluster is stopped with `pg_ctl stop` when
//! its handle drops, on an error too; an interrupt kills its process
//! group like every other child's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::config::{LOAD_CORE, SERVER_CORE};
use super::meter::Meter;
use super::process::{self, Proc, Stderr, run_ok};
use super::results::{Fsync, Pgbench};

/// The Debian package that has initdb, postgres, pg_ctl, pgbench and
/// pg_test_fsync.
const PACKAGE: &str = "postgresql";
const PROGRAMS: [&str; 6] = [
    "initdb",
    "postgres",
    "pg_ctl",
    "psql",
    "pgbench",
    "pg_test_fsync",
];
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// Its superuser and the user its programs run as when we are root.
const USER: &str = "postgres";

/// The table every order goes into: the schema.
pub const SCHEMA: &str = "create table orders (id text primary key, items text[], \
                          description text, price real, destination text)";

/// pgbench's transaction: one order row, the same fields as the load
/// generator's addOrder sends, with a unique id from a sequence. Prepared
/// (`-M prepared`): PostgreSQL's fastest protocol.
pub const INSERT_SCRIPT: &str = "insert into orders (id, items, description, price, destination) \
     values ('pgbench-' || nextval('order_ids'), '{\"bench item\",\"another item\"}', \
     'benchmark order', 10.0, 'Seoul');\n";

/// The settings recorded with the results.
const SHOWN: [&str; 7] = [
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "shared_buffers",
    "max_wal_size",
];

/// The installed PostgreSQL programs.
#[derive(Debug, Clone)]
pub struct Installed {
    pub bin: PathBuf,
    /// `postgres --version`.
    pub version: String,
}

/// Finds the newest `/usr/lib/postgresql/MAJOR/bin` holding every program;
/// installs `postgresql` first (as root) when there is none.
pub fn setup(work: &Path) -> Result<Installed> {
    let bin = match find_bin(Path::new(DEBIAN_ROOT)) {
        Some(bin) => bin,
        None if process::is_root() => {
            process::apt_get_install(PACKAGE, work)?;
            find_bin(Path::new(DEBIAN_ROOT))
                .with_context(|| format!("no {DEBIAN_ROOT}/*/bin after installing {PACKAGE}"))?
        }
        None => bail!(
            "PostgreSQL is missing (no {DEBIAN_ROOT}/*/bin): install it with \
             `sudo apt-get install {PACKAGE}`, or leave it out with --skip postgres"
        ),
    };
    let done = run_ok(
        "postgres-version",
        Command::new(bin.join("postgres")).arg("--version"),
        Duration::from_secs(10),
        work,
    )?;
    Ok(Installed {
        bin,
        version: done.stdout.trim().to_owned(),
    })
}

/// The bin dir of the highest major version under `root` that has every
/// program.
fn find_bin(root: &Path) -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            PROGRAMS
                .iter()
                .all(|p| bin.join(p).is_file())
                .then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

/// `PROGRAM`, or `runuser -u postgres -- PROGRAM` when we are root.
fn as_postgres(program: &Path) -> Command {
    if process::is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", USER, "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// `chown postgres:postgres PATH` (as root).
fn give_to_postgres(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(USER).expect("no NUL");
    // SAFETY: getpwnam with a valid C string; the record it returns is read
    // at once, before any other call that could overwrite it.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            bail!("no `{USER}` user (the {PACKAGE} package creates it)");
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("bad path {}", path.display()))?;
    // SAFETY: chown with a valid C string.
    if unsafe { libc::chown(c_path.as_ptr(), uid, gid) } != 0 {
        bail!(
            "cannot chown {} to {USER}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// pg_test_fsync's cost of one fdatasync (after an 8 kB write) on the disk
/// of `work`: its test file is in `work`, pinned to the server core.
pub fn fdatasync_cost(pg: &Installed, seconds: u64, work: &Path) -> Result<Fsync> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", SERVER_CORE])
        .arg(pg.bin.join("pg_test_fsync"))
        .args(["-s", &seconds.to_string(), "-f"])
        .arg(work.join("pg_test_fsync.tmp"));
    // 16 tests of `seconds` each, and the writes between them.
    let done = run_ok(
        "pg_test_fsync",
        &mut cmd,
        Duration::from_secs(20 * seconds + 120),
        work,
    )?;
    let _ = std::fs::remove_file(work.join("pg_test_fsync.tmp"));
    parse_fdatasync(&done.stdout)
}

/// The first `fdatasync` line (one 8 kB write): `fdatasync  467.553 ops/sec  2139 usecs/op`.
fn parse_fdatasync(out: &str) -> Result<Fsync> {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("fdatasync "))
        .context("pg_test_fsync printed no fdatasync line")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let ops: f64 = match words.as_slice() {
        ["fdatasync", ops, "ops/sec", ..] => ops
            .parse()
            .with_context(|| format!("bad fdatasync line: {line}"))?,
        _ => bail!("pg_test_fsync cannot time fdatasync here: {line}"),
    };
    if ops <= 0.0 {
        bail!("bad fdatasync line: {line}");
    }
    Ok(Fsync {
        ops_per_second: ops,
        us_per_op: 1e6 / ops,
    })
}

/// A running throwaway cluster.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// The Unix socket's directory: the only way in.
    socket_dir: PathBuf,
    /// `runuser` (or the postmaster itself): its tree is the server's CPU.
    proc: Proc,
    stopped: bool,
    work: PathBuf,
}

impl Cluster {
    /// initdb in `WORK/pg`, then the postmaster pinned to the server core,
    /// fully durable, on a Unix socket in `WORK/pg` only; then the schema.
    pub fn start(pg: &Installed, work: &Path) -> Result<Self> {
        let dir = work.join("pg");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if process::is_root() {
            // The postgres user must reach its directory inside our temp dir.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("cannot chmod {}", work.display()))?;
            give_to_postgres(&dir)?;
        }
        let data = dir.join("data");
        let mut initdb = as_postgres(&pg.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-instructions");
        run_ok("initdb", &mut initdb, Duration::from_secs(300), work)?;

        // The postmaster pinned from its start: every backend it forks
        // inherits the server core.
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", SERVER_CORE]);
        if process::is_root() {
            cmd.args(["runuser", "-u", USER, "--"]);
        }
        cmd.arg(pg.bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"]);
        let log = work.join("postgres.log");
        let mut proc = Proc::spawn(
            "postgres",
            &mut cmd,
            Duration::from_secs(3600),
            work,
            Stderr::To(log.clone()),
        )?;
        wait_ready(&mut proc, &log, Duration::from_secs(60))?;
        let cluster = Self {
            bin: pg.bin.clone(),
            data,
            socket_dir: dir,
            proc,
            stopped: false,
            work: work.to_path_buf(),
        };
        cluster.psql(&format!("{SCHEMA}; create sequence order_ids;"))?;
        Ok(cluster)
    }

    /// The process whose tree is the cluster (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `psql -c SQL` over the socket; its output.
    fn psql(&self, sql: &str) -> Result<String> {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", USER, "-d", "postgres", "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql]);
        Ok(run_ok("psql", &mut cmd, Duration::from_secs(300), &self.work)?.stdout)
    }

    /// The durability settings it runs with, as `SHOW` says, in SHOWN's order.
    pub fn settings(&self) -> Result<Vec<(String, String)>> {
        let shows: Vec<String> = SHOWN
            .iter()
            .map(|name| format!("current_setting('{name}')"))
            .collect();
        let out = self.psql(&format!("select {}", shows.join(", ")))?;
        let values: Vec<&str> = out.trim().split('|').collect();
        if values.len() != SHOWN.len() {
            bail!("psql printed {out:?} for {} settings", SHOWN.len());
        }
        Ok(SHOWN
            .iter()
            .zip(values)
            .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
            .collect())
    }

    /// pgbench with the insert script at `clients` clients for `seconds`
    /// (pinned to the load core, `-n`: no vacuum), from an empty table
    /// after a checkpoint; PostgreSQL's CPU over it.
    pub fn pgbench(&self, clients: usize, seconds: u64, clk_tck: f64) -> Result<Pgbench> {
        self.psql("truncate orders; checkpoint;")?;
        let script = self.work.join("insert-order.sql");
        std::fs::write(&script, INSERT_SCRIPT)
            .with_context(|| format!("cannot write {}", script.display()))?;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", LOAD_CORE])
            .arg(self.bin.join("pgbench"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", USER, "-n", "-M", "prepared", "-f"])
            .arg(&script)
            .args(["-c", &clients.to_string(), "-j", "1"])
            .args(["-T", &seconds.to_string(), "postgres"]);
        let meter = Meter::start(self.pid(), clk_tck)?;
        let done = run_ok(
            "pgbench",
            &mut cmd,
            Duration::from_secs(seconds + 120),
            &self.work,
        )?;
        // The backends exit as pgbench disconnects: let the postmaster reap
        // them, so that their CPU is in its children's time.
        std::thread::sleep(Duration::from_millis(300));
        let usage = meter.stop()?;
        let report = parse_pgbench(&done.stdout)?;
        if report.failed > 0 || report.transactions == 0 {
            bail!(
                "pgbench at {clients} clients: {} transactions, {} failed:\n{}",
                report.transactions,
                report.failed,
                done.tail()
            );
        }
        let rows: u64 = self
            .psql("select count(*) from orders")?
            .trim()
            .parse()
            .context("count(*) printed no number")?;
        // Transactions still in flight at the deadline commit too.
        if rows < report.transactions {
            bail!(
                "pgbench counted {} transactions but the table holds {rows} rows",
                report.transactions
            );
        }
        Ok(Pgbench {
            clients,
            seconds,
            tps: report.tps,
            transactions: report.transactions,
            failed: report.failed,
            latency_ms: report.latency_ms,
            usage,
        })
    }

    /// `pg_ctl stop -m fast`, then waits for the postmaster to exit.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "60"]);
        run_ok("pg_ctl-stop", &mut cmd, Duration::from_secs(90), &self.work)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.proc.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // On an error too; the process group is killed after this either way.
        if let Err(e) = self.stop() {
            eprintln!("bench: pg_ctl stop failed: {e:#}");
        }
    }
}

/// Waits for `database system is ready to accept connections`.
fn wait_ready(proc: &mut Proc, log: &Path, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("ready to accept connections") {
            return Ok(());
        }
        if !proc.running() {
            bail!(
                "postgres exited before it was ready:\n{}",
                process::tail(&text, 20)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "postgres was not ready within {} s:\n{}",
                limit.as_secs(),
                process::tail(&text, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What pgbench prints at the end of a run.
#[derive(Debug, PartialEq)]
struct PgbenchReport {
    tps: f64,
    transactions: u64,
    failed: u64,
    latency_ms: f64,
}

fn parse_pgbench(out: &str) -> Result<PgbenchReport> {
    let value = |prefix: &str| -> Option<&str> {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
    };
    let number = |prefix: &str| -> Result<f64> {
        value(prefix)
            .with_context(|| format!("pgbench printed no `{prefix}` line:\n{out}"))?
            .parse()
            .with_context(|| format!("bad pgbench `{prefix}` line"))
    };
    Ok(PgbenchReport {
        tps: number("tps = ")?,
        transactions: number("number of transactions actually processed: ")? as u64,
        // pgbench 15 prints it; older ones abort on the first failure.
        failed: value("number of failed transactions: ")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        latency_ms: number("latency average = ")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pg_test_fsync() {
        let out = "\
Compare file sync methods using one 8kB write:
(in wal_sync_method preference order, except fdatasync is Linux's default)
        open_datasync                       302.385 ops/sec    3307 usecs/op
        fdatasync                           467.553 ops/sec    2139 usecs/op
        fsync                               426.126 ops/sec    2347 usecs/op

Compare file sync methods using two 8kB writes:
        fdatasync                           323.985 ops/sec    3087 usecs/op
";
        let f = parse_fdatasync(out).unwrap();
        assert_eq!(f.ops_per_second, 467.553);
        assert!((f.us_per_op - 2138.8).abs() < 0.1);
        assert!(parse_fdatasync("        fdatasync                   n/a\n").is_err());
        assert!(parse_fdatasync("nothing\n").is_err());
    }

    #[test]
    fn parses_pgbench() {
        let out = "\
transaction type: /tmp/x/insert.sql
scaling factor: 1
query mode: prepared
number of clients: 10
number of threads: 1
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 28514
number of failed transactions: 0 (0.000%)
latency average = 1.050 ms
initial connection time = 23.026 ms
tps = 9524.506213 (without initial connection time)
";
        assert_eq!(
            parse_pgbench(out).unwrap(),
            PgbenchReport {
                tps: 9524.506213,
                transactions: 28514,
                failed: 0,
                latency_ms: 1.050
            }
        );
        assert!(parse_pgbench("connection to server failed\n").is_err());
    }

    /// A real cluster: `cargo test -p xtask -- --ignored` where PostgreSQL
    /// is installed.
    #[test]
    #[ignore = "starts PostgreSQL"]
    fn a_cluster_inserts_and_stops() {
        let work = tempfile::tempdir().unwrap();
        let pg = setup(work.path()).unwrap();
        let mut cluster = Cluster::start(&pg, work.path()).unwrap();
        let settings = cluster.settings().unwrap();
        assert_eq!(settings[0], ("fsync".into(), "on".into()));
        assert_eq!(settings[1], ("synchronous_commit".into(), "on".into()));
        let run = cluster.pgbench(2, 1, 100.0).unwrap();
        assert!(run.tps > 0.0 && run.usage.server_ticks > 0, "{run:?}");
        cluster.stop().unwrap();
        assert!(!cluster.proc.running());
        let fsync = fdatasync_cost(&pg, 1, work.path()).unwrap();
        assert!(fsync.us_per_op > 0.0);
    }

    #[test]
    fn finds_the_newest_complete_bin_dir() {
        let dir = tempfile::tempdir().unwrap();
        for (major, complete) in [("13", true), ("15", true), ("16", false)] {
            let bin = dir.path().join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let programs = if complete {
                &PROGRAMS[..]
            } else {
                &PROGRAMS[..2]
            };
            for p in programs {
                std::fs::write(bin.join(p), "").unwrap();
            }
        }
        assert_eq!(find_bin(dir.path()), Some(dir.path().join("15/bin")));
        assert_eq!(find_bin(&dir.path().join("none")), None);
    }
}
