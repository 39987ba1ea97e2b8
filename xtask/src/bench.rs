//! `cargo xtask bench`: our server against its peers, on this machine, in
//! one run.
//!
//! Phases, each a function below: build the release binaries; set up the
//! load generators and peers (h2load, the Python venv, node_modules);
//! idle memory and 1,000 idle connections per server; then rounds of
//! getOrder load, servers alternating within each round so that a slow
//! minute of the machine hits every server alike; then the streaming RPCs
//! on our server; then the table, the targets, the SVG chart and
//! bench-results.json (and BENCHMARKS.md with `--write-report`).
//!
//! The rules that make the numbers comparable: every server is pinned to
//! core 0 and every load generator to core 1 (`taskset`), all on
//! 127.0.0.1; every server is a fresh process per measurement (ours with a
//! fresh durable store and its shipped info logging to a file); a run
//! counts only if every answer was a real order 101.

mod chart;
mod load;
mod process;
mod profile;
mod report;

pub use profile::{ProfileOptions, run_profile};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prost::Message;

use load::{ClientBench, H2load};
use process::{Proc, Stderr, run, run_ok, status_kib};
use report::{Cpu, Idle, Results, Round, Search, Streams};

/// A peer `--skip` can leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// Both bare tonic servers (multi-thread and current-thread).
    Bare,
    Python,
    Node,
}

pub struct Options {
    pub rounds: usize,
    pub seconds: u64,
    pub skip: Vec<Peer>,
    pub out: PathBuf,
    pub write_report: bool,
    pub quick: bool,
}

/// The servers compared, in the order each round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Ours,
    Bare,
    BareCurrentThread,
    Python,
    Node,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Ours,
        Kind::Bare,
        Kind::BareCurrentThread,
        Kind::Python,
        Kind::Node,
    ];

    /// Short name: progress lines, file names, JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Bare => "bare",
            Kind::BareCurrentThread => "bare-current-thread",
            Kind::Python => "python",
            Kind::Node => "node",
        }
    }

    /// Name in the table and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "ours (durable store, info logs)",
            Kind::Bare => "bare tonic (multi-thread)",
            Kind::BareCurrentThread => "bare tonic (current-thread)",
            Kind::Python => "Python grpcio",
            Kind::Node => "Node @grpc/grpc-js",
        }
    }
}

/// Where servers run and where load generators run: one core each, so
/// neither steals the other's CPU and server CPU time is the server's.
const SERVER_CORE: &str = "0";
const LOAD_CORE: &str = "1";
/// The h2load shape of the throughput runs (and of one latency run).
const CONNECTIONS: usize = 50;
const STREAMS_PER_CONNECTION: usize = 10;
/// A same-shape, fixed-count h2load run before each measured one: warms
/// JITs, allocators and pools, and is the exact DATA check.
const WARM_UP_REQUESTS: u64 = 20_000;
/// Calls of the per-server correctness pass (our client checks each one).
const VERIFY_CALLS: u64 = 1000;
const IDLE_CONNECTIONS: usize = 1000;
/// The searchOrders data set: every order has an item with this word.
const SEARCH_ORDERS: usize = 100_000;
const SEARCH_QUERY: &str = "widget";
const SEARCH_STREAMS: u64 = 3;
/// How often the server's RSS is sampled during the search streams.
const RSS_SAMPLE: Duration = Duration::from_millis(20);
/// The id every getOrder asks for: the seed's order, served by every peer.
const ORDER_ID: &str = "101";

/// A Python peer ready to start.
struct PythonPeer {
    python: PathBuf,
    pythonpath: String,
    /// peer_server.py has `--quiet` (no log line per call).
    quiet: bool,
    version: String,
}

/// What every phase needs.
struct Ctx {
    root: PathBuf,
    /// A fresh temp dir for data dirs, logs and command outputs.
    work: PathBuf,
    rounds: usize,
    seconds: u64,
    server: PathBuf,
    client: PathBuf,
    bare: Option<PathBuf>,
    python: Option<PythonPeer>,
    node_version: Option<String>,
    /// Servers in the comparison, in round order.
    kinds: Vec<Kind>,
    /// Peers left out, and why.
    skipped: Vec<(Kind, String)>,
    clk_tck: f64,
    /// The getOrder request body: one gRPC frame of StringValue("101").
    body: PathBuf,
    /// Bytes of one getOrder answer on the wire: 5-byte prefix + order 101.
    answer_bytes: u64,
    h2load_version: String,
    /// /proc/loadavg when the measurements started: other work on the
    /// machine takes cores from the servers and the load generators.
    loadavg_at_start: String,
    progress: Progress,
}

/// Progress lines: elapsed time, step k of n, what is happening.
struct Progress {
    started: Instant,
    step: usize,
    total: usize,
}

impl Progress {
    fn stamp(&self) -> String {
        let s = self.started.elapsed().as_secs();
        format!("[{:2}:{:02}]", s / 60, s % 60)
    }

    fn step(&mut self, what: &str) {
        self.step += 1;
        println!(
            "{} ({}/{}) {what}",
            self.stamp(),
            self.step,
            self.total.max(self.step)
        );
    }

    fn note(&self, what: &str) {
        println!("{}     {what}", self.stamp());
    }
}

/// Runs the whole benchmark. Returns whether every run was verified (the
/// targets are reported, not enforced: a MISS is a finding, not a failure).
pub fn run_bench(root: &Path, options: Options) -> Result<bool> {
    process::handle_interrupts()?;
    process::raise_open_files_limit();
    let work = tempfile::Builder::new()
        .prefix("order-bench.")
        .tempdir()
        .context("cannot create a temp dir")?;
    process::remove_on_interrupt(work.path());
    let mut ctx = prepare(root, work.path(), &options)?;
    let results = measure(&mut ctx, &options)?;
    let summary = report::summarize(&results);
    print!("\n{}", summary.tables_markdown());
    println!("\n{}", summary.targets_text());
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let svg = options.out.join("benchmarks.svg");
    chart::draw(&svg, &summary)?;
    let json = options.out.join("bench-results.json");
    std::fs::write(&json, summary.json_pretty())
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("wrote {} and {}", json.display(), svg.display());
    if options.write_report {
        let md = options.out.join("BENCHMARKS.md");
        std::fs::write(&md, summary.report_markdown())
            .with_context(|| format!("cannot write {}", md.display()))?;
        println!("wrote {}", md.display());
    }
    let verified = summary.all_verified();
    if !verified {
        println!("some runs were NOT verified (see `checks` above): their numbers are left out");
    }
    Ok(verified)
}

/// Build and setup: everything before the first measurement.
fn prepare(root: &Path, work: &Path, options: &Options) -> Result<Ctx> {
    let mut progress = Progress {
        started: Instant::now(),
        step: 0,
        // Refined once the peers are known.
        total: 4 + Kind::ALL.len() * (1 + options.rounds) + 2,
    };
    let mut skipped = Vec::new();
    let wants = |p: Peer| !options.skip.contains(&p);
    let with_bare = if !wants(Peer::Bare) {
        for k in [Kind::Bare, Kind::BareCurrentThread] {
            skipped.push((k, "skipped: --skip bare".into()));
        }
        false
    } else if !root.join("examples/bare_server.rs").exists() {
        for k in [Kind::Bare, Kind::BareCurrentThread] {
            skipped.push((k, "skipped: not built (no examples/bare_server.rs)".into()));
        }
        false
    } else {
        true
    };
    progress.step("build: cargo build --release (server, client, bare_server)");
    build(root, work, with_bare)?;
    let target = target_dir(root);
    let (server, client) = (target.join("release/server"), target.join("release/client"));
    let bare = with_bare.then(|| target.join("release/examples/bare_server"));

    progress.step("setup: h2load");
    let h2load_version = setup_h2load(work)?;
    progress.note(&h2load_version);

    progress.step("setup: Python grpcio peer");
    let python = if !wants(Peer::Python) {
        skipped.push((Kind::Python, "skipped: --skip python".into()));
        None
    } else if !root.join("tests/interop/peer_server.py").exists() {
        skipped.push((
            Kind::Python,
            "skipped: not built (no tests/interop/peer_server.py)".into(),
        ));
        None
    } else {
        let peer = setup_python(root, work)?;
        progress.note(&peer.version);
        Some(peer)
    };

    progress.step("setup: Node grpc-js peer");
    let node_dir = root.join("tests/load/node");
    let node_version = if !wants(Peer::Node) {
        skipped.push((Kind::Node, "skipped: --skip node".into()));
        None
    } else if !node_dir.join("server.js").exists() || !node_dir.join("package-lock.json").exists() {
        skipped.push((
            Kind::Node,
            "skipped: not built (no tests/load/node/server.js + package-lock.json)".into(),
        ));
        None
    } else {
        let version = setup_node(&node_dir, work)?;
        progress.note(&version);
        Some(version)
    };
    for (kind, why) in &skipped {
        progress.note(&format!("{}: {why}", kind.key()));
    }
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| !skipped.iter().any(|(s, _)| s == k))
        .collect();
    // The exact bytes of the request and of the expected answer, from the
    // generated types: no hand-written protobuf.
    let body = work.join("get-order-101.bin");
    std::fs::write(&body, grpc_frame(&ORDER_ID.to_owned()))?;
    let answer_bytes = order_101_frame_len(root)?;
    let clk_tck = clock_ticks(work)?;
    let loadavg_at_start = loadavg();
    // Measured, not the load average: that still counts our own build.
    let busy = machine_busy(clk_tck)?;
    if busy > 0.1 {
        progress.note(&format!(
            "WARNING: other processes are using {:.0}% of a core right now: they take CPU from \
             the servers and load generators; numbers will be low and noisy",
            busy * 100.0
        ));
    }

    // build + 3 setups, one per server (idle), one per server and round,
    // search, process/update.
    progress.total = 4 + kinds.len() + options.rounds * kinds.len() + 2;
    Ok(Ctx {
        root: root.to_path_buf(),
        work: work.to_path_buf(),
        rounds: options.rounds,
        seconds: options.seconds,
        server,
        client,
        bare,
        python,
        node_version,
        kinds,
        skipped,
        clk_tck,
        body,
        answer_bytes,
        h2load_version,
        loadavg_at_start,
        progress,
    })
}

/// Every measurement phase, in order.
fn measure(ctx: &mut Ctx, options: &Options) -> Result<Results> {
    let mut idle = Vec::new();
    for kind in ctx.kinds.clone() {
        idle.push(measure_idle(ctx, kind)?);
    }
    let mut rounds = Vec::new();
    for round in 1..=ctx.rounds {
        for kind in ctx.kinds.clone() {
            rounds.push(measure_round(ctx, kind, round)?);
        }
    }
    let search = measure_search(ctx)?;
    let streams = measure_streams(ctx)?;
    Ok(Results {
        date: date(&ctx.work),
        machine: machine(ctx),
        rounds_asked: ctx.rounds,
        seconds: ctx.seconds,
        quick: options.quick,
        kinds: ctx.kinds.clone(),
        skipped: ctx.skipped.clone(),
        idle,
        rounds,
        search,
        streams,
        answer_bytes: ctx.answer_bytes,
        commands: process::commands(),
        root: ctx.root.clone(),
        work: ctx.work.clone(),
    })
}

// ---------- build and setup ----------

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The length of getOrder("101")'s answer frame: the 5-byte prefix and order
/// 101 as the reference Python protobuf encodes it (the committed fixture).
/// Read, not computed, so xtask needs no build of the main package.
fn order_101_frame_len(root: &Path) -> Result<u64> {
    let fixture = root.join("tests/fixtures/order_seed_101.bin");
    let order =
        std::fs::read(&fixture).with_context(|| format!("cannot read {}", fixture.display()))?;
    Ok(5 + order.len() as u64)
}

/// `cargo build --release --locked --bins --example bulk_load [--example
/// bare_server]`, its progress on our stderr.
fn build(root: &Path, work: &Path, with_bare: bool) -> Result<()> {
    let mut args = vec!["--bins", "--example", "bulk_load"];
    if with_bare {
        args.extend(["--example", "bare_server"]);
    }
    cargo_build(root, work, &args, &[])
}

/// `cargo build --release --locked ARGS` with `env`, its progress on our stderr.
fn cargo_build(
    root: &Path,
    work: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<()> {
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

/// h2load's version line; installs nghttp2-client with apt-get (as root)
/// when h2load is missing.
fn setup_h2load(work: &Path) -> Result<String> {
    let version = |work: &Path| -> Option<String> {
        let done = run(
            "h2load-version",
            Command::new("h2load").arg("--version"),
            Duration::from_secs(10),
            work,
        )
        .ok()?;
        done.status.success().then(|| {
            done.stdout
                .lines()
                .next()
                .unwrap_or("h2load")
                .trim()
                .to_owned()
        })
    };
    if let Some(v) = version(work) {
        return check_h2load_flags(work).map(|()| v);
    }
    if !process::is_root() {
        bail!("h2load is missing: install it with `sudo apt-get install nghttp2-client`");
    }
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
        &mut apt(&["install", "-y", "--no-install-recommends", "nghttp2-client"]),
        Duration::from_secs(900),
        work,
    )?;
    let v = version(work).context("h2load still missing after installing nghttp2-client")?;
    check_h2load_flags(work)?;
    Ok(v)
}

/// The options this benchmark relies on exist in the installed h2load.
fn check_h2load_flags(work: &Path) -> Result<()> {
    let done = run(
        "h2load-help",
        Command::new("h2load").arg("--help"),
        Duration::from_secs(10),
        work,
    )?;
    let help = format!("{}{}", done.stdout, done.stderr);
    for flag in [
        "--duration",
        "--data",
        "--header",
        "--max-concurrent-streams",
    ] {
        if !help.contains(flag) {
            bail!("this h2load has no {flag} option (need nghttp2 >= 1.38)");
        }
    }
    Ok(())
}

/// The interop venv (tests/interop/.venv), reused when its stamp says it
/// holds requirements.txt's pins for this Python, else made exactly the way
/// tests/interop/run.sh makes it (same stamp, so neither redoes the other's
/// work); and fresh stubs from proto/ in our temp dir (one second; never
/// stale, and never touching run.sh's .gen while it may be running).
fn setup_python(root: &Path, work: &Path) -> Result<PythonPeer> {
    let here = root.join("tests/interop");
    let venv = here.join(".venv");
    let venv_python = venv.join("bin/python");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ten = Duration::from_secs(10);
    let py_version = run_ok(
        "python-version",
        Command::new(&python).args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
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
        println!(
            "        creating {} (as tests/interop/run.sh does)",
            venv.display()
        );
        let _ = std::fs::remove_dir_all(&venv);
        run_ok(
            "python-venv",
            Command::new(&python).arg("-m").arg("venv").arg(&venv),
            Duration::from_secs(120),
            work,
        )
        .context("cannot create the venv (on Debian: apt-get install python3-venv)")?;
        let pip = run_ok(
            "pip-install",
            Command::new(&venv_python)
                .args(["-m", "pip", "install", "--no-input", "--timeout", "60"])
                .args(["--only-binary=:all:", "--no-deps", "-r"])
                .arg(&requirements)
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
            Duration::from_secs(900),
            work,
        );
        if let Err(e) = pip {
            let _ = std::fs::remove_dir_all(&venv);
            return Err(e.context("cannot install tests/interop/requirements.txt from PyPI"));
        }
        run_ok(
            "pip-check",
            Command::new(&venv_python).args(["-m", "pip", "check"]),
            Duration::from_secs(60),
            work,
        )?;
        std::fs::write(venv.join(".interop-stamp"), format!("{stamp}\n"))?;
    }
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

/// node_modules from package-lock.json (`npm ci`), unless npm's own record
/// of the installed tree (node_modules/.package-lock.json) is newer than
/// the lock file.
fn setup_node(dir: &Path, work: &Path) -> Result<String> {
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

/// `getconf CLK_TCK`: the unit of /proc/PID/stat's utime and stime.
fn clock_ticks(work: &Path) -> Result<f64> {
    let done = run_ok(
        "getconf",
        Command::new("getconf").arg("CLK_TCK"),
        Duration::from_secs(10),
        work,
    )?;
    done.stdout
        .trim()
        .parse()
        .context("getconf CLK_TCK printed no number")
}

/// One gRPC message frame: uncompressed flag, big-endian length, message.
fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    frame.extend_from_slice(&encoded);
    frame
}

// ---------- servers ----------

/// A server under test: pinned to core 0, listening on 127.0.0.1.
struct Server {
    kind: Kind,
    proc: Proc,
    addr: SocketAddr,
    log: PathBuf,
    /// Our server's data dir, removed with the server.
    data_dir: Option<PathBuf>,
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
    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn kib(&self, key: &str) -> Result<u64> {
        status_kib(self.pid(), key)
    }
}

/// Starts one server and waits for its `listening on` line. Ours gets
/// `data_dir`, or a fresh one in the work dir.
fn start(ctx: &Ctx, kind: Kind, data_dir: Option<PathBuf>) -> Result<Server> {
    let log = ctx.work.join(format!("{}.log", kind.key()));
    let listen = ["--listen", "127.0.0.1:0"];
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", SERVER_CORE]).current_dir(&ctx.root);
    let mut owned_data = None;
    match kind {
        Kind::Ours => {
            let dir = data_dir.unwrap_or_else(|| {
                let fresh = ctx.work.join("ours-data");
                owned_data = Some(fresh.clone());
                fresh
            });
            cmd.arg(&ctx.server).args(listen).arg("--data-dir").arg(dir);
            // As shipped: no ORDER_* settings of the caller's, default log level.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ORDER_") {
                    cmd.env_remove(key);
                }
            }
            cmd.env_remove("RUST_LOG");
        }
        Kind::Bare | Kind::BareCurrentThread => {
            cmd.arg(ctx.bare.as_ref().context("bare_server not built")?)
                .args(listen);
            if kind == Kind::BareCurrentThread {
                cmd.arg("--current-thread");
            }
        }
        Kind::Python => {
            let py = ctx.python.as_ref().context("no Python peer")?;
            cmd.arg(&py.python)
                .arg(ctx.root.join("tests/interop/peer_server.py"))
                .args(listen)
                .env("PYTHONPATH", &py.pythonpath)
                .env("PYTHONDONTWRITEBYTECODE", "1");
            if py.quiet {
                cmd.arg("--quiet");
            }
        }
        Kind::Node => {
            cmd.arg("node")
                .arg(ctx.root.join("tests/load/node/server.js"))
                .args(listen);
        }
    }
    // Servers are killed by their handle; the limit only bounds a wait.
    let mut proc = Proc::spawn(
        kind.key(),
        &mut cmd,
        Duration::from_secs(3600),
        &ctx.work,
        Stderr::To(log.clone()),
    )?;
    let addr = process::wait_listening(&mut proc, &log, Duration::from_secs(60))?;
    Ok(Server {
        kind,
        proc,
        addr,
        log,
        data_dir: owned_data,
    })
}

/// `client --server URL --json bench ARGS`, pinned to core 1. A report
/// with wrong answers still parses (the client then exits 1): the caller
/// judges it.
fn client_bench(
    ctx: &Ctx,
    server: &Server,
    args: &[String],
    limit: Duration,
) -> Result<ClientBench> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", LOAD_CORE])
        .arg(&ctx.client)
        .args(["--server", &server.url(), "--json", "bench"])
        .args(args);
    let done = run("client-bench", &mut cmd, limit, &ctx.work)?;
    ClientBench::parse(&done.stdout).with_context(|| {
        format!(
            "client bench against {} failed ({}):\n{}",
            server.kind.key(),
            done.status,
            done.tail()
        )
    })
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------- phase: idle memory and idle connections ----------

/// A fresh server's RSS, then with 1,000 idle HTTP/2 connections open.
fn measure_idle(ctx: &mut Ctx, kind: Kind) -> Result<Idle> {
    ctx.progress.step(&format!(
        "{}: idle RSS, then {IDLE_CONNECTIONS} idle HTTP/2 connections",
        kind.key()
    ));
    let server = start(ctx, kind, None)?;
    // Let start-up allocations settle (Python imports, V8's first GC).
    std::thread::sleep(Duration::from_secs(1));
    let idle_kib = server.kib("VmRSS")?;
    let held = hold_idle_connections(&server, IDLE_CONNECTIONS)?;
    let result = Idle {
        kind,
        idle_kib,
        connections: IDLE_CONNECTIONS,
        with_connections_kib: held.0,
        after_close_kib: held.1,
    };
    ctx.progress.note(&format!(
        "idle {:.1} MiB; +{:.1} MiB with {IDLE_CONNECTIONS} connections ({:.1} KiB each)",
        mib(idle_kib),
        mib(held.0.saturating_sub(idle_kib)),
        held.0.saturating_sub(idle_kib) as f64 / IDLE_CONNECTIONS as f64
    ));
    Ok(result)
}

/// Opens `n` HTTP/2 connections (preface, SETTINGS, and a PING round
/// trip, so the server has set each one up), waits a second, samples the
/// server's VmRSS; closes them, waits a second, samples again.
fn hold_idle_connections(server: &Server, n: usize) -> Result<(u64, u64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (addr, pid) = (server.addr, server.pid());
    runtime.block_on(async move {
        let work = async move {
            let mut held = Vec::with_capacity(n);
            // 100 handshakes at a time: a burst of 1,000 would overflow the
            // listen backlog, which measures SYN retries, not memory.
            for start in (0..n).step_by(100) {
                let mut batch = tokio::task::JoinSet::new();
                for _ in start..(start + 100).min(n) {
                    batch.spawn(open_idle_connection(addr));
                }
                while let Some(opened) = batch.join_next().await {
                    held.push(opened??);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let with = status_kib(pid, "VmRSS")?;
            held.iter().for_each(tokio::task::JoinHandle::abort);
            drop(held);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = status_kib(pid, "VmRSS")?;
            anyhow::Ok((with, after))
        };
        tokio::time::timeout(Duration::from_secs(120), work)
            .await
            .context("1,000 idle connections did not open within 120 s")?
    })
}

/// One idle connection, kept open by the task returned (abort it to close).
async fn open_idle_connection(addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (send, mut connection) = h2::client::handshake(tcp).await?;
    let mut ping = connection.ping_pong().context("no PING handle")?;
    let task = tokio::spawn(async move {
        // Holding the sender keeps the connection open while idle.
        let _send = send;
        let _ = connection.await;
    });
    ping.ping(h2::Ping::opaque())
        .await
        .context("no PING answer")?;
    Ok(task)
}

// ---------- phase: getOrder rounds ----------

/// One server, one round: the correctness pass, h2load throughput with the
/// server's CPU time, client-bench latency at -c 50 -m 10 and -c 1 -m 1,
/// and the peak RSS of it all.
fn measure_round(ctx: &mut Ctx, kind: Kind, round: usize) -> Result<Round> {
    ctx.progress.step(&format!(
        "round {round}/{}: {}: getOrder(\"{ORDER_ID}\")",
        ctx.rounds,
        kind.key()
    ));
    let server = start(ctx, kind, None)?;
    let s = ctx.seconds.to_string();

    let verify = client_bench(
        ctx,
        &server,
        &args(&[
            "--rpc",
            "get",
            "--order-id",
            ORDER_ID,
            "--connections",
            "1",
            "--concurrency",
            "10",
            "--count",
            &VERIFY_CALLS.to_string(),
            "--seconds",
            "120",
        ]),
        Duration::from_secs(180),
    )?;
    ctx.progress.note(&format!(
        "client check: {} of {VERIFY_CALLS} calls answered order {ORDER_ID} ({} wrong, {} errors)",
        verify.ok, verify.wrong, verify.errors
    ));

    let (warm_up, h2load, cpu) = h2load_get_order(ctx, &server)?;
    let bytes = ctx.answer_bytes;
    let data_ok =
        warm_up.exactly_orders(WARM_UP_REQUESTS, bytes) && h2load.orders_for_every_answer(bytes);
    ctx.progress.note(&format!(
        "h2load warm-up -n {WARM_UP_REQUESTS}: DATA {} B = {} x {bytes} B: {}",
        warm_up.data_bytes,
        warm_up.succeeded,
        if warm_up.exactly_orders(WARM_UP_REQUESTS, bytes) {
            "ok"
        } else {
            "MISMATCH"
        }
    ));
    ctx.progress.note(&format!(
        "h2load -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION} -D {}: {:.0} req/s, {:.2} us server CPU/req \
         (server {:.0}%, h2load {:.0}%, other processes {:.0}% of a core); DATA {} B = ({} + {} in flight) x {bytes} B: {}",
        ctx.seconds,
        h2load.requests_per_second,
        cpu.us_per_request,
        cpu.cpu_share * 100.0,
        cpu.h2load_share * 100.0,
        cpu.others_share * 100.0,
        h2load.data_bytes,
        h2load.succeeded,
        h2load.tail_answers(bytes),
        if h2load.orders_for_every_answer(bytes) { "ok" } else { "MISMATCH (errors answered, not orders)" }
    ));

    let shape = |c: usize, m: usize| {
        args(&[
            "--rpc",
            "get",
            "--order-id",
            ORDER_ID,
            "--connections",
            &c.to_string(),
            "--concurrency",
            &m.to_string(),
            "--seconds",
            &s,
        ])
    };
    let limit = Duration::from_secs(ctx.seconds + 60);
    let loaded = client_bench(
        ctx,
        &server,
        &shape(CONNECTIONS, STREAMS_PER_CONNECTION),
        limit,
    )?;
    ctx.progress.note(&format!(
        "client -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION}: {:.0} calls/s, p50 {} us, p99 {} us",
        loaded.calls_per_second, loaded.p50_us, loaded.p99_us
    ));
    let single = client_bench(ctx, &server, &shape(1, 1), limit)?;
    ctx.progress.note(&format!(
        "client -c 1 -m 1: {:.0} calls/s, p50 {} us, p99 {} us",
        single.calls_per_second, single.p50_us, single.p99_us
    ));

    let peak_kib = server.kib("VmHWM")?;
    let log_bytes = std::fs::metadata(&server.log).map(|m| m.len()).ok();
    Ok(Round {
        kind,
        round,
        verify,
        warm_up,
        h2load,
        data_ok,
        cpu,
        loaded,
        single,
        peak_kib,
        log_bytes,
    })
}

/// The h2load command against getOrder: `-D SECONDS` or `-n COUNT`.
///
/// No `--warm-up-time`: h2load (1.52) counts the warm-up's DATA bytes in
/// its traffic line but not its requests, which would break the DATA check;
/// the warm-up is a run of its own instead (see [`h2load_get_order`]).
fn h2load_command(ctx: &Ctx, server: &Server, length: [&str; 2]) -> Command {
    let url = format!("{}/ecommerce.OrderManagement/getOrder", server.url());
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", LOAD_CORE, "h2load"])
        .args(["-c", &CONNECTIONS.to_string()])
        .args(["-m", &STREAMS_PER_CONNECTION.to_string()])
        .args(length)
        .arg("-d")
        .arg(&ctx.body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(url);
    cmd
}

/// The warm-up (fixed count, checked exactly), then the measured run, with
/// the server's CPU time sampled inside the measured period (clear of
/// connection set-up and tear-down): CPU per request = (CPU seconds / wall
/// seconds) / (requests / second) over the same load h2load measured.
fn h2load_get_order(ctx: &Ctx, server: &Server) -> Result<(H2load, H2load, Cpu)> {
    let mut warm = h2load_command(ctx, server, ["-n", &WARM_UP_REQUESTS.to_string()]);
    let warm_line = process::render(&warm);
    let done = run(
        "h2load-warm-up",
        &mut warm,
        Duration::from_secs(120),
        &ctx.work,
    )?;
    if !done.status.success() {
        bail!("`{warm_line}` failed ({}):\n{}", done.status, done.tail());
    }
    let warm_up = H2load::parse(&done.stdout)?;

    let mut cmd = h2load_command(ctx, server, ["-D", &ctx.seconds.to_string()]);
    let line = process::render(&cmd);
    let mut proc = Proc::spawn(
        "h2load",
        &mut cmd,
        Duration::from_secs(ctx.seconds + 60),
        &ctx.work,
        Stderr::File,
    )?;
    let started = Instant::now();
    let margin = Duration::from_millis(250);
    let h2load_pid = proc.pid();
    // (server ticks, h2load ticks, whole-machine busy ticks, when)
    let sample = |at: Instant| -> Result<(u64, u64, u64, Instant)> {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        Ok((
            process::cpu_ticks(server.pid())?,
            process::cpu_ticks(h2load_pid)?,
            process::system_busy_ticks()?,
            Instant::now(),
        ))
    };
    let (s0, h0, b0, w0) = sample(started + margin)?;
    let (s1, h1, b1, w1) = sample(started + Duration::from_secs(ctx.seconds) - margin)?;
    let still_running = proc.running();
    let done = proc.wait()?;
    if !done.status.success() {
        bail!("`{line}` failed ({}):\n{}", done.status, done.tail());
    }
    let h2load = H2load::parse(&done.stdout)?;
    if !still_running {
        bail!(
            "h2load ended before its measurement period did:\n{}",
            done.tail()
        );
    }
    let window = (w1 - w0).as_secs_f64();
    let ticks = s1 - s0;
    let cores = |t: u64| t as f64 / ctx.clk_tck / window;
    let cpu_share = cores(ticks);
    let cpu = Cpu {
        ticks,
        window_seconds: window,
        clk_tck: ctx.clk_tck,
        cpu_share,
        us_per_request: cpu_share * 1e6 / h2load.requests_per_second.max(1e-9),
        h2load_share: cores(h1 - h0),
        // What the rest of the machine (this process, other people's builds)
        // took from the two cores meanwhile.
        others_share: cores((b1 - b0).saturating_sub((s1 - s0) + (h1 - h0))),
    };
    Ok((warm_up, h2load, cpu))
}

// ---------- phase: streaming RPCs (ours only) ----------

/// searchOrders over 100k stored orders to one client, and the server's
/// RSS growth while it streams.
fn measure_search(ctx: &mut Ctx) -> Result<Search> {
    ctx.progress.step(&format!(
        "ours: searchOrders(\"{SEARCH_QUERY}\") over {SEARCH_ORDERS} stored orders, {SEARCH_STREAMS} streams"
    ));
    let data = ctx.work.join("search-data");
    let loading = Instant::now();
    let bulk_load = ctx
        .server
        .parent()
        .context("the server binary has a directory")?
        .join("examples/bulk_load");
    load_orders(&bulk_load, &data, SEARCH_ORDERS, &ctx.work)?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let mut server = start(ctx, Kind::Ours, Some(data.clone()))?;
    server.data_dir = Some(data);
    std::thread::sleep(Duration::from_millis(500));
    let base_kib = server.kib("VmRSS")?;

    let mut cmd = Command::new("taskset");
    cmd.args(["-c", LOAD_CORE])
        .arg(&ctx.client)
        .args(["--server", &server.url(), "--json", "bench"])
        .args([
            "--rpc",
            "search",
            "--query",
            SEARCH_QUERY,
            "--connections",
            "1",
        ])
        .args(["--concurrency", "1", "--count", &SEARCH_STREAMS.to_string()])
        .args(["--seconds", "300"]);
    let limit = Duration::from_secs(360);
    let cpu_before = process::cpu_ticks(server.pid())?;
    let mut proc = Proc::spawn("client-search", &mut cmd, limit, &ctx.work, Stderr::File)?;
    let (started, mut peak_kib, mut samples) = (Instant::now(), base_kib, 0u64);
    while proc.running() && started.elapsed() < limit {
        if let Ok(kib) = server.kib("VmRSS") {
            peak_kib = peak_kib.max(kib);
            samples += 1;
        }
        std::thread::sleep(RSS_SAMPLE);
    }
    let done = proc.wait()?;
    let cpu_ticks = process::cpu_ticks(server.pid())? - cpu_before;
    let result = ClientBench::parse(&done.stdout).with_context(|| {
        format!(
            "client bench search failed ({}):\n{}",
            done.status,
            done.tail()
        )
    })?;
    let expected = SEARCH_STREAMS * SEARCH_ORDERS as u64;
    let cpu_us_per_order = cpu_ticks as f64 / ctx.clk_tck * 1e6 / result.messages.max(1) as f64;
    ctx.progress.note(&format!(
        "{:.0} orders/s ({} of {expected} orders), {cpu_us_per_order:.2} us server CPU/order; \
         RSS {:.1} -> peak {:.1} MiB ({samples} samples)",
        result.messages_per_second,
        result.messages,
        mib(base_kib),
        mib(peak_kib)
    ));
    Ok(Search {
        orders: SEARCH_ORDERS,
        query: SEARCH_QUERY.into(),
        load_seconds,
        verified: result.all_ok() && result.messages == expected,
        expected_messages: expected,
        result,
        base_kib,
        peak_kib,
        samples,
        cpu_us_per_order,
    })
}

/// The searchOrders data set, written straight into a fresh store by
/// `examples/bulk_load` (every order has an item "widget <n>"), a few
/// transactions instead of 100k fsync'd addOrder calls.
fn load_orders(bulk_load: &Path, dir: &Path, n: usize, work: &Path) -> Result<()> {
    let mut cmd = Command::new(bulk_load);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--count", &n.to_string()]);
    let line = process::render(&cmd);
    let done = Proc::spawn(
        "bulk-load",
        &mut cmd,
        Duration::from_secs(600),
        work,
        Stderr::File,
    )?
    .wait()?;
    if !done.status.success() {
        bail!("{line} failed: {}", done.tail());
    }
    Ok(())
}

/// processOrders and updateOrders with our client's load mode (the peers
/// serve getOrder only).
fn measure_streams(ctx: &mut Ctx) -> Result<Streams> {
    ctx.progress.step("ours: processOrders and updateOrders");
    let server = start(ctx, Kind::Ours, None)?;
    let s = ctx.seconds.to_string();
    let limit = Duration::from_secs(ctx.seconds + 120);
    let process_args = args(&[
        "--rpc",
        "process",
        "--order-id",
        ORDER_ID,
        "--batch",
        "3",
        "--connections",
        "10",
        "--concurrency",
        "10",
        "--seconds",
        &s,
    ]);
    let (process, process_cpu_us) = with_server_cpu(ctx, &server, &process_args, limit)?;
    ctx.progress.note(&format!(
        "processOrders: {:.0} calls/s, {:.0} shipments/s, p99 {} us, {process_cpu_us:.1} us server CPU/call",
        process.calls_per_second, process.messages_per_second, process.p99_us
    ));
    // Each update commits (and fsyncs) one transaction: more callers only
    // queue on the store's writer.
    let update_args = args(&[
        "--rpc",
        "update",
        "--batch",
        "10",
        "--connections",
        "4",
        "--concurrency",
        "4",
        "--seconds",
        &s,
    ]);
    let (update, update_cpu_us) = with_server_cpu(ctx, &server, &update_args, limit)?;
    ctx.progress.note(&format!(
        "updateOrders: {:.0} calls/s ({:.0} orders/s), p99 {} us, {update_cpu_us:.1} us server CPU/call",
        update.calls_per_second,
        update.calls_per_second * 10.0,
        update.p99_us
    ));
    Ok(Streams {
        process,
        process_args,
        process_cpu_us,
        update,
        update_args,
        update_cpu_us,
        update_batch: 10,
    })
}

/// A client bench, and the server's CPU time over it per call, in us
/// (for updateOrders, its workers' set-up addOrder calls are included).
fn with_server_cpu(
    ctx: &Ctx,
    server: &Server,
    args: &[String],
    limit: Duration,
) -> Result<(ClientBench, f64)> {
    let before = process::cpu_ticks(server.pid())?;
    let bench = client_bench(ctx, server, args, limit)?;
    let ticks = process::cpu_ticks(server.pid())? - before;
    let us = ticks as f64 / ctx.clk_tck * 1e6 / bench.calls.max(1) as f64;
    Ok((bench, us))
}

// ---------- the machine ----------

fn date(work: &Path) -> String {
    run_ok(
        "date",
        Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
        Duration::from_secs(10),
        work,
    )
    .map(|d| d.stdout.trim().to_owned())
    .unwrap_or_else(|_| "unknown".into())
}

/// What the numbers depend on: cores, CPU, kernel, memory, toolchains.
fn machine(ctx: &Ctx) -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let output = |program: &str, arg: &str| {
        run(
            "version",
            Command::new(program).arg(arg),
            Duration::from_secs(30),
            &ctx.work,
        )
        .map(|d| d.stdout.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
    };
    serde_json::json!({
        "nproc": output("nproc", "--all"),
        "cpu": cpu,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "rustc": output("rustc", "--version"),
        "tonic": lock_version(&ctx.root, "tonic"),
        "h2load": ctx.h2load_version,
        "loadavg_at_start": ctx.loadavg_at_start,
        "loadavg_at_end": loadavg(),
        "python": ctx.python.as_ref().map(|p| p.version.clone()),
        "node": ctx.node_version,
    })
}

/// How many cores the machine keeps busy over one second (this process
/// sleeps meanwhile, and has no child running).
fn machine_busy(clk_tck: f64) -> Result<f64> {
    let before = process::system_busy_ticks()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let ticks = process::system_busy_ticks()? - before;
    Ok(ticks as f64 / clk_tck / started.elapsed().as_secs_f64())
}

/// The first three fields of /proc/loadavg (1, 5, 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A package's version in Cargo.lock.
fn lock_version(root: &Path, name: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    lines.find(|l| *l == format!("name = \"{name}\""))?;
    lines
        .next()?
        .strip_prefix("version = \"")
        .map(|v| v.trim_end_matches('"').to_owned())
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

    fn client(ok: u64, p50: u64, p99: u64, rate: f64) -> ClientBench {
        ClientBench {
            calls: ok,
            ok,
            messages: ok,
            calls_per_second: rate,
            messages_per_second: rate,
            p50_us: p50,
            p99_us: p99,
            raw: serde_json::json!({"connections": 4, "concurrency": 4, "ok": ok}),
            ..ClientBench::default()
        }
    }

    fn h2load(rps: f64, seconds: u64) -> H2load {
        let done = (rps * seconds as f64) as u64;
        H2load {
            seconds: seconds as f64,
            requests_per_second: rps,
            total: done,
            started: done + 500,
            done,
            succeeded: done,
            data_bytes: done * 69,
            ..H2load::default()
        }
    }

    /// Synthetic results: what a run of three rounds over every server
    /// (Python's last round not verified) would hand to the report.
    fn results(work: &Path) -> Results {
        let rps = |k: Kind| match k {
            Kind::Ours => 110_000.0,
            Kind::Bare => 100_000.0,
            Kind::BareCurrentThread => 150_000.0,
            Kind::Python => 4_500.0,
            Kind::Node => 16_000.0,
        };
        let mut rounds = Vec::new();
        for round in 1..=3 {
            for kind in Kind::ALL {
                let r = rps(kind) * (1.0 + round as f64 / 100.0);
                let mut warm_up = h2load(20_000.0, 1);
                warm_up.started = 20_000;
                let mut verify = client(VERIFY_CALLS, 50, 90, 20_000.0);
                if kind == Kind::Python && round == 3 {
                    verify.wrong = 1;
                }
                rounds.push(Round {
                    kind,
                    round,
                    verify,
                    warm_up,
                    h2load: h2load(r, 10),
                    data_ok: true,
                    cpu: Cpu {
                        ticks: 950,
                        window_seconds: 9.5,
                        clk_tck: 100.0,
                        cpu_share: 1.0,
                        us_per_request: 1e6 / r,
                        h2load_share: 1.0,
                        others_share: 0.02,
                    },
                    loaded: client(r as u64 * 10, 4_000, 9_000, r * 0.8),
                    single: client(50_000, 60, 150, 15_000.0),
                    peak_kib: 20_000,
                    log_bytes: None,
                });
            }
        }
        let idle = Kind::ALL
            .iter()
            .map(|&kind| Idle {
                kind,
                idle_kib: 16_000,
                connections: IDLE_CONNECTIONS,
                with_connections_kib: 50_000,
                after_close_kib: 40_000,
            })
            .collect();
        Results {
            date: "2026-01-01 00:00 UTC".into(),
            machine: serde_json::json!({"nproc": "2", "cpu": "test", "loadavg_at_start": "0.1 0.1 0.1"}),
            rounds_asked: 3,
            seconds: 10,
            quick: false,
            kinds: Kind::ALL.to_vec(),
            skipped: Vec::new(),
            idle,
            rounds,
            search: Search {
                orders: SEARCH_ORDERS,
                query: SEARCH_QUERY.into(),
                load_seconds: 1.0,
                result: client(3, 160_000, 170_000, 2.0),
                expected_messages: 300_000,
                verified: false,
                base_kib: 80_000,
                peak_kib: 85_000,
                samples: 25,
                cpu_us_per_order: 1.5,
            },
            streams: Streams {
                process: client(6_000, 40_000, 50_000, 2_000.0),
                process_args: args(&["--rpc", "process"]),
                process_cpu_us: 40.0,
                update: client(900, 45_000, 55_000, 300.0),
                update_args: args(&["--rpc", "update"]),
                update_cpu_us: 200.0,
                update_batch: 10,
            },
            answer_bytes: 69,
            commands: vec![
                "/opt/rust/bin/cargo build --release".into(),
                format!(
                    "taskset -c 1 h2load -D 10 {}/get-order-101.bin http://127.0.0.1:4242/x",
                    work.display()
                ),
            ],
            root: crate::project_root(),
            work: work.to_path_buf(),
        }
    }

    #[test]
    fn summary_report_json_and_chart() {
        let dir = tempfile::tempdir().unwrap();
        let results = results(dir.path());
        let summary = report::summarize(&results);
        let ours = &summary.rows[0];
        assert_eq!(ours.rps.unwrap().median, 112_200.0);
        let python = summary
            .rows
            .iter()
            .find(|r| r.kind == Kind::Python)
            .unwrap();
        assert_eq!((python.runs, python.verified), (3, 2));
        let bare = summary.rows.iter().find(|r| r.kind == Kind::Bare).unwrap();
        assert!((bare.ratio.unwrap() - 1.1).abs() < 1e-9);
        let targets = summary.targets_text();
        assert!(targets.contains("PASS  getOrder req/s, ours / bare tonic (multi-thread)"));
        assert!(targets.contains("MISS  getOrder req/s, ours / Python grpcio"));
        assert!(targets.contains("SKIP  searchOrders"), "{targets}");
        assert!(!targets.contains("WARNING"));
        assert!(summary.tables_markdown().contains("machine quiet in 3/3"));
        assert!(!summary.all_verified());
        let md = summary.report_markdown();
        assert!(md.contains(
            "taskset -c 1 h2load -D 10 $WORK/get-order-101.bin http://127.0.0.1:$PORT/x"
        ));
        assert!(md.contains("\ncargo build --release\n"));
        assert!(md.contains("![requests/s and p99 latency per server](benchmarks.svg)"));
        let json: serde_json::Value = serde_json::from_str(&summary.json_pretty()).unwrap();
        assert_eq!(json["rounds"].as_array().unwrap().len(), 15);
        let svg = dir.path().join("benchmarks.svg");
        chart::draw(&svg, &summary).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("bare tonic MT") && text.contains("112,200"));
        if let Some(copy) = std::env::var_os("BENCH_CHART_COPY") {
            std::fs::copy(&svg, copy).unwrap();
        }
    }

    #[test]
    fn reads_versions_from_the_lock_file() {
        let root = crate::project_root();
        assert!(lock_version(&root, "tonic").unwrap().starts_with("0.14"));
        assert_eq!(lock_version(&root, "no-such-package"), None);
    }
}
