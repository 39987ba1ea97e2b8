//! Child processes for the benchmark, and what /proc says about them.
//!
//! Every command runs in its own process group under a deadline, so a
//! timeout ends its whole tree (npm, cargo and apt-get start children of
//! their own). Every group still running is killed when its handle drops
//! (an error return, a panic) and, from the signal thread, on Ctrl-C or
//! SIGTERM: a benchmark never leaves a server behind.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Process groups that may still be running.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Directories the signal thread removes before exiting (a normal exit
/// removes them by `Drop`, which `process::exit` skips).
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Every command started, in order, as a shell line: the report's "exact
/// commands" come from here, not from a hand-written list.
static COMMANDS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Names the output files of each command uniquely.
static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop the cleanup.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SIGKILLs a whole process group (the leader and what it started).
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it has
    // no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Kills every group still registered. Safe to call more than once.
pub fn kill_all() {
    let groups: Vec<i32> = lock(&LIVE).iter().copied().collect();
    groups.into_iter().for_each(kill_group);
}

/// Removes `dir` on Ctrl-C/SIGTERM too (its owner removes it otherwise).
pub fn remove_on_interrupt(dir: &Path) {
    lock(&TEMP_DIRS).push(dir.to_path_buf());
}

/// Installs the SIGINT/SIGTERM handler: kill every child group, remove the
/// temp dirs, exit 130/143. Returns once the handler is in place, so no
/// child can be started before it.
fn handle_interrupts() -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let code = runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let handlers = signal(SignalKind::interrupt())
                    .and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
                let (mut interrupt, mut terminate) = match handlers {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return None;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = interrupt.recv() => Some(130),
                    _ = terminate.recv() => Some(143),
                }
            });
            if let Some(code) = code {
                eprintln!("\nbench: interrupted: killing every process it started");
                kill_all();
                for dir in lock(&TEMP_DIRS).iter() {
                    let _ = std::fs::remove_dir_all(dir);
                }
                std::process::exit(code);
            }
        })
        .context("cannot start the signal thread")?;
    ready_rx
        .recv()
        .context("the signal thread died")?
        .context("cannot install the SIGINT/SIGTERM handlers")
}

/// Raises the soft open-files limit to the hard one (children inherit it):
/// 1,000 idle connections need 1,000 descriptors on each side.
/// A run's temp dir (`order-NAME.XXXXXX`), removed when dropped or when
/// the run is interrupted (interrupts are handled from here on).
pub fn run_dir(name: &str) -> Result<tempfile::TempDir> {
    handle_interrupts()?;
    let work = tempfile::Builder::new()
        .prefix(&format!("order-{name}."))
        .tempdir()
        .context("cannot create a temp dir")?;
    remove_on_interrupt(work.path());
    Ok(work)
}

pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Whether this process runs as root (apt-get needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `apt-get update`, then `apt-get install -y --no-install-recommends
/// PACKAGE` (as root): for a tool the benchmark needs and the machine lacks.
pub fn apt_get_install(package: &str, work: &Path) -> Result<()> {
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run_ok(
        "apt-get-update",
        &mut apt(&["update"]),
        Duration::from_secs(600),
        work,
    )?;
    run_ok(
        "apt-get-install",
        &mut apt(&["install", "-y", "--no-install-recommends", package]),
        Duration::from_secs(900),
        work,
    )?;
    Ok(())
}

/// Quotes one word for a shell line, when it needs it.
fn shell_word(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command as a shell line: variables it sets, then program and args.
pub fn render(cmd: &Command) -> String {
    let mut words: Vec<String> = Vec::new();
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => words.push(format!("{}={}", key.to_string_lossy(), shell_word(v))),
            None => words.push(format!("-u {}", key.to_string_lossy())),
        }
    }
    if !words.is_empty() {
        words.insert(0, "env".into());
    }
    words.push(shell_word(cmd.get_program()));
    words.extend(cmd.get_args().map(shell_word));
    words.join(" ")
}

/// The commands started so far, in order.
pub fn commands() -> Vec<String> {
    lock(&COMMANDS).clone()
}

/// Where a child's stderr goes.
pub enum Stderr {
    /// A file in the work dir, read back by [`Proc::wait`].
    File,
    /// This process's stderr (cargo's build progress).
    Inherit,
    /// A given file (a server's log).
    To(PathBuf),
}

/// A running child: its own process group, stdout (and usually stderr) in
/// files, a deadline. Dropping it kills the group.
pub struct Proc {
    name: String,
    child: Child,
    pgid: i32,
    started: Instant,
    limit: Duration,
    stdout: PathBuf,
    stderr: Option<PathBuf>,
    status: Option<ExitStatus>,
}

/// A child that has exited.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The last lines of stderr (or stdout), for error messages.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        tail(text, 15)
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Proc {
    /// Starts `cmd` in a new process group with stdin closed, stdout (and
    /// stderr, per `stderr`) going to files in `work`.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        limit: Duration,
        work: &Path,
        stderr: Stderr,
    ) -> Result<Self> {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{n:03}-{name}");
        let stdout = work.join(format!("{stem}.out"));
        let stderr_path = match stderr {
            Stderr::File => Some(work.join(format!("{stem}.err"))),
            Stderr::To(path) => Some(path),
            Stderr::Inherit => None,
        };
        let err_stdio = match &stderr_path {
            Some(path) => Stdio::from(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        cmd.stdin(Stdio::null())
            .stdout(
                File::create(&stdout)
                    .with_context(|| format!("cannot create {}", stdout.display()))?,
            )
            .stderr(err_stdio)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // If this process dies without cleaning up (SIGKILL), the kernel
        // kills the child too; it survives taskset's exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let line = render(cmd);
        lock(&COMMANDS).push(line.clone());
        // Registered under the lock the signal thread takes, so a Ctrl-C
        // between spawn and registration cannot miss this child.
        let mut live = lock(&LIVE);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let pgid = child.id() as i32;
        live.insert(pgid);
        drop(live);
        Ok(Self {
            name: name.to_owned(),
            child,
            pgid,
            started: Instant::now(),
            limit,
            stdout,
            stderr: stderr_path,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills its group now and reaps it (its `Drop` would, later).
    pub fn kill(&mut self) {
        kill_group(self.pgid);
        let _ = self.child.wait();
    }

    /// SIGTERM to the process (not its group: a server shuts down on its
    /// own and closes its files), then waits up to `limit` for it to exit.
    /// Whether it exited, with status 0, in time; its `Drop` kills the
    /// group either way.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        if self.running() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is
            // our unreaped child's, so it cannot have been reused.
            unsafe {
                libc::kill(self.pid() as i32, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + limit;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status.is_some_and(|s| s.success())
    }

    /// Whether it is still running (reaps it if not).
    pub fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_none()
    }

    /// Waits for it to exit, at most until its deadline; past that, kills
    /// its group and fails.
    pub fn wait(mut self) -> Result<Finished> {
        let deadline = self.started + self.limit;
        while self.running() {
            if Instant::now() >= deadline {
                kill_group(self.pgid);
                bail!(
                    "`{}` did not finish within {} s and was killed",
                    self.name,
                    self.limit.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Ok(Finished {
            status: self.status.expect("exited"),
            stdout: read(&self.stdout),
            stderr: self.stderr.as_deref().map(read).unwrap_or_default(),
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Also after a normal exit: whatever it left behind in its group.
        kill_group(self.pgid);
        let _ = self.child.wait();
        lock(&LIVE).remove(&self.pgid);
    }
}

/// Runs `cmd` to completion within `limit`; its exit status is the caller's
/// to judge.
pub fn run(name: &str, cmd: &mut Command, limit: Duration, work: &Path) -> Result<Finished> {
    Proc::spawn(name, cmd, limit, work, Stderr::File)?.wait()
}

/// Runs `cmd` within `limit` and fails, with its stderr's tail, unless it
/// exits 0.
pub fn run_ok(name: &str, cmd: &mut Command, limit: Duration, work: &Path) -> Result<Finished> {
    let line = render(cmd);
    let done = run(name, cmd, limit, work)?;
    if !done.status.success() {
        bail!("`{line}` failed ({}):\n{}", done.status, done.tail());
    }
    Ok(done)
}

/// Waits for the `listening on ADDR` line every server here prints once it
/// accepts connections, and returns ADDR. Fails if the server exits first.
/// Polls every 2 ms: the start-up time of a server is measured by it.
pub fn wait_listening(proc: &mut Proc, log: &Path, limit: Duration) -> Result<SocketAddr> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = listening_addr(&text) {
            return Ok(addr);
        }
        if !proc.running() {
            bail!(
                "{} exited before listening:\n{}",
                proc.name,
                tail(&text, 20)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not print `listening on` within {} s:\n{}",
                proc.name,
                limit.as_secs(),
                tail(&text, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The address after `listening on ` (our server's log line may carry
/// ANSI colour codes or fields after it: only address characters count).
pub fn listening_addr(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = &line[line.find("listening on ")? + "listening on ".len()..];
        let addr: String = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || "[].:".contains(*c))
            .collect();
        addr.parse().ok()
    })
}

/// utime + stime of the whole process (every thread), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let after = &stat[stat.rfind(')').context("bad /proc/PID/stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("short /proc/PID/stat")?
            .parse()
            .context("bad /proc/PID/stat")
    };
    Ok(field(14)? + field(15)?)
}

/// Fields of /proc/PID/stat after the command name, which may hold
/// spaces: the first is field 3 of stat(5) (the state), the second the ppid.
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("bad /proc/PID/stat")? + 2..];
    Ok(after.split_whitespace().map(str::to_owned).collect())
}

/// CPU time of a process and of everything under it, in clock ticks: its
/// own and its reaped children's (cutime, cstime: a backend that has
/// exited still counts), and so on for every live descendant. For a
/// server that forks a process per connection (PostgreSQL).
pub fn tree_cpu_ticks(pid: u32) -> Result<u64> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").context("cannot read /proc")? {
        let Some(child) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A process may exit between the listing and the read.
        if let Ok(fields) = stat_fields(child)
            && let Some(ppid) = fields.get(1).and_then(|p| p.parse().ok())
        {
            parents.push((child, ppid));
        }
    }
    let mut total = 0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let fields = match stat_fields(p) {
            Ok(f) => f,
            // A descendant gone since the listing: its parent's cutime has it.
            Err(_) if p != pid => continue,
            Err(e) => return Err(e),
        };
        // utime, stime, cutime, cstime: fields 14 to 17 of stat(5).
        for n in 14..=17 {
            total += fields
                .get(n - 3)
                .and_then(|f| f.parse::<u64>().ok())
                .context("short /proc/PID/stat")?;
        }
        todo.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
    }
    Ok(total)
}

/// CPU time of this process's children that have exited and been waited
/// for (getrusage RUSAGE_CHILDREN), in clock ticks: a load generator's
/// CPU, read after it ends.
pub fn reaped_children_ticks(clk_tck: f64) -> u64 {
    // SAFETY: getrusage with a valid pointer to a zeroed rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ((seconds(usage.ru_utime) + seconds(usage.ru_stime)) * clk_tck).round() as u64
}

/// CPU time every process on the machine spent, in clock ticks: the first
/// line of /proc/stat, all but idle and iowait (guest time is in user).
pub fn system_busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().context("bad /proc/stat"))
        .collect::<Result<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Ok([0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum())
}

/// A `kB` line of /proc/PID/status (VmRSS, VmHWM), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_every_servers_line() {
        let ours =
            "2025-01-01T00:00:00Z  INFO order_management::server: listening on 127.0.0.1:4000\n";
        assert_eq!(
            listening_addr(ours),
            Some("127.0.0.1:4000".parse().unwrap())
        );
        let coloured = "\x1b[32m INFO\x1b[0m listening on 127.0.0.1:4001\x1b[0m";
        assert_eq!(
            listening_addr(coloured),
            Some("127.0.0.1:4001".parse().unwrap())
        );
        let python = "peer_server: listening on 127.0.0.1:4002";
        assert_eq!(
            listening_addr(python),
            Some("127.0.0.1:4002".parse().unwrap())
        );
        assert_eq!(listening_addr("starting\n"), None);
    }

    #[test]
    fn renders_shell_lines() {
        let mut cmd = Command::new("h2load");
        cmd.args(["-H", "te: trailers", "-c", "50"]).env("A", "b c");
        assert_eq!(render(&cmd), "env A='b c' h2load -H 'te: trailers' -c 50");
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(status_kib(pid, "VmRSS").unwrap() > 0);
        cpu_ticks(pid).unwrap();
        system_busy_ticks().unwrap();
        assert!(tree_cpu_ticks(pid).unwrap() >= cpu_ticks(pid).unwrap());
        reaped_children_ticks(100.0);
    }
}
