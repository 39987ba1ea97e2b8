//! `cargo xtask bench`: our server against its peers, on this machine, in
//! one run.
//!
//! This module only sequences the phases: build the release binaries; set
//! up the load generators and peers (h2load, the Python venv,
//! node_modules); idle memory and 1,000 idle connections per server; then
//! rounds of getOrder load, servers alternating within each round so that a
//! slow minute of the machine hits every server alike; then the streaming
//! RPCs on our server; then durable inserts (addOrder against PostgreSQL's
//! pgbench, and the disk's fdatasync cost); then the store-size series
//! (our server on bulk-loaded stores of 10k to 1M orders); then our
//! server on PostgreSQL against the embedded store, with one and two
//! replicas; then the tables, the targets, the SVG charts and bench-results.json (and
//! BENCHMARKS.md with `--write-report`).
//!
//! The rules that make the numbers comparable: every server is pinned to
//! core 0 and every load generator to core 1 (`taskset`), all on
//! 127.0.0.1 (PostgreSQL: its postmaster and backends on the server core,
//! pgbench on the load core, a Unix socket); every server is a fresh
//! process per measurement (ours with a fresh durable store, or a cached
//! bulk-loaded one, and its shipped info logging to a file); a run counts
//! only if every answer was a real order 101.
//!
//! The phases live in child modules, which take what they need as
//! arguments and share constants and types through [`config`] (a leaf),
//! never through this module:
//!
//! - [`config`]: options, the servers compared, cores, load shapes.
//! - [`binaries`]: cargo release builds. [`loadgen`]: the load generator
//!   (which binary, how it is run, its report). [`h2load`]: h2load's
//!   set-up, command and summary. [`peers`]: the Python and Node peers.
//! - [`servers`]: server lifecycle. [`process`]: child processes and /proc.
//! - [`postgres`]: a throwaway PostgreSQL cluster, pgbench and
//!   pg_test_fsync. [`stores`]: the bulk-loaded stores, cached under
//!   target/bench/stores/.
//! - [`measure`] (getOrder rounds, CPU accounting), [`meter`] (CPU over
//!   one load run), [`idle`], [`streams`], [`inserts`] (addOrder vs
//!   PostgreSQL), [`scaling`] (the store-size series), [`backends`] (the
//!   PostgreSQL store vs the embedded one, replicas): the measurements,
//!   into [`results`].
//! - [`machine`]: machine facts. [`summary`]: rows and targets;
//!   [`targets`]: PASS/MISS/SKIP/INFO, and the targets of the series after
//!   the getOrder rounds. [`report`]: tables and BENCHMARKS.md; [`tables`]:
//!   the series' tables. [`json`]: bench-results.json (and the last one's
//!   figures); [`json_series`]: the series' parts. [`chart`]:
//!   benchmarks.svg and scaling.svg.

mod backends;
pub(crate) mod binaries;
mod chart;
pub(crate) mod config;
pub(crate) mod h2load;
mod idle;
mod inserts;
mod json;
mod json_series;
pub(crate) mod loadgen;
pub(crate) mod machine;
mod measure;
mod meter;
pub(crate) mod numbers;
mod peers;
mod postgres;
pub(crate) mod process;
mod progress;
mod report;
mod results;
mod scaling;
pub(crate) mod servers;
pub(crate) mod stores;
mod streams;
mod summary;
mod tables;
mod targets;
#[cfg(test)]
mod tests;
pub(crate) mod wire;

pub use config::{Options, Peer, QUICK_STORE_SIZES, REPORT_DIR, STORE_SIZES};

use std::path::Path;

use anyhow::{Context, Result};

use config::Kind;
use machine::Tools;
use measure::Rig;
use progress::Progress;
use results::{Baseline, Outcome, Results, StoreFile};
use servers::Servers;
use stores::Stores;

/// Runs the whole benchmark. Returns whether every run was verified (the
/// targets are reported, not enforced: a MISS is a finding, not a failure).
pub fn run_bench(root: &Path, options: Options) -> Result<bool> {
    process::raise_open_files_limit();
    let work = process::run_dir("bench")?;
    // Read before this run may overwrite it.
    let baseline = json::read_baseline(&root.join(REPORT_DIR).join("bench-results.json"));
    let (mut rig, mut found) = prepare(root, work.path(), &options)?;
    found.baseline = baseline;
    let results = measure(&mut rig, found, &options)?;
    let summary = summary::summarize(&results);
    print!("\n{}", summary.tables_markdown());
    println!("\n{}", summary.targets_text());
    write_files(&summary, &options)?;
    let verified = summary.all_verified();
    if !verified {
        println!("some runs were NOT verified (see `checks` above): their numbers are left out");
    }
    Ok(verified)
}

/// benchmarks.svg and bench-results.json, and BENCHMARKS.md with
/// `--write-report`, into the output dir.
fn write_files(summary: &summary::Summary, options: &Options) -> Result<()> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let svg = options.out.join("benchmarks.svg");
    chart::draw(&svg, summary)?;
    let scaling_svg = options.out.join("scaling.svg");
    chart::draw_scaling(&scaling_svg, summary)?;
    let json = options.out.join("bench-results.json");
    std::fs::write(&json, summary.json_pretty())
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!(
        "wrote {}, {} and {}",
        json.display(),
        svg.display(),
        scaling_svg.display()
    );
    if options.write_report {
        let md = options.out.join("BENCHMARKS.md");
        std::fs::write(&md, summary.report_markdown())
            .with_context(|| format!("cannot write {}", md.display()))?;
        println!("wrote {}", md.display());
    }
    Ok(())
}

/// Peers left out, and why.
type Skipped = Vec<(Kind, String)>;

/// What the setup found besides the rig, for the report.
struct Found {
    tools: Tools,
    skipped: Skipped,
    /// /proc/loadavg when the measurements started: other work on the
    /// machine takes cores from the servers and the load generators.
    loadavg_at_start: String,
    /// The bulk-loaded stores of the store-size series, or why none.
    stores: Outcome<Vec<StoreFile>>,
    /// The last report's getOrder figures.
    baseline: Option<Baseline>,
}

/// Steps besides the servers' idle and round steps: build, three peer
/// set-ups, PostgreSQL's set-up, the stores; search, process/update,
/// inserts.
const FIXED_STEPS: usize = 6 + 3;

/// Build and setup: everything before the first measurement.
fn prepare(root: &Path, work: &Path, options: &Options) -> Result<(Rig, Found)> {
    let sizes = store_sizes(options);
    // Refined once the peers are known.
    let mut progress = Progress::new(
        FIXED_STEPS + Kind::ALL.len() * (1 + options.rounds) + sizes.as_ref().map_or(0, Vec::len),
    );
    let mut skipped = Vec::new();
    let wants = |p: Peer| !options.skip.contains(&p);
    let with_bare = bare_wanted(root, wants(Peer::Bare), &mut skipped);
    progress.step(&format!(
        "build: cargo build --release (server, {}, bare_server)",
        loadgen::LOAD_GENERATOR.binary
    ));
    let binaries = binaries::bench_binaries(root, work, with_bare)?;

    progress.step("setup: h2load");
    let h2load_version = h2load::setup(work)?;
    progress.note(&h2load_version);
    progress.step("setup: Python grpcio peer");
    let python = python_peer(root, work, wants(Peer::Python), &mut skipped, &progress)?;
    progress.step("setup: Node grpc-js peer");
    let node = node_peer(root, work, wants(Peer::Node), &mut skipped, &progress)?;
    for (kind, why) in &skipped {
        progress.note(&format!("{}: {why}", kind.key()));
    }
    progress.step("setup: PostgreSQL");
    let pg = postgres_setup(work, wants(Peer::Postgres), &progress);
    let stores = Stores::new(
        root,
        &binaries::target_dir(root),
        binaries.bulk_load.clone(),
        work,
    );
    progress.step("setup: bulk-loaded stores (examples/bulk_load, cached in target/bench/stores/)");
    let store_files = match sizes {
        Ok(sizes) => Ok(load_stores(&stores, &sizes, work, &progress)?),
        Err(why) => {
            progress.note(&why);
            Err(why)
        }
    };
    let body = wire::write_request_body(work)?;
    let answer_bytes = wire::order_101_frame_len(root)?;
    let clk_tck = machine::clock_ticks(work)?;
    let tools = Tools {
        h2load: h2load_version,
        python: python.as_ref().map(|p| p.version.clone()),
        node,
        postgres: pg.as_ref().ok().map(|p| p.version.clone()),
    };
    let loadavg_at_start = machine::loadavg();
    warn_if_busy(clk_tck, &progress)?;
    let kinds = Kind::ALL
        .iter()
        .filter(|k| !skipped.iter().any(|(s, _)| s == *k));
    progress.total = FIXED_STEPS
        + kinds.count() * (1 + options.rounds)
        + store_files.as_ref().map_or(0, Vec::len)
        + usize::from(backends_wanted(&options.skip, &pg).is_ok());
    let rig = Rig {
        servers: Servers {
            root: root.to_path_buf(),
            work: work.to_path_buf(),
            server: binaries.server,
            bare: binaries.bare,
            python,
        },
        loadgen: binaries.loadgen,
        stores,
        postgres: pg,
        rounds: options.rounds,
        seconds: options.seconds,
        clk_tck,
        body,
        answer_bytes,
        progress,
    };
    let found = Found {
        tools,
        skipped,
        loadavg_at_start,
        stores: store_files,
        baseline: None,
    };
    Ok((rig, found))
}

/// PostgreSQL's programs for the backend comparison, or why it is left out.
fn backends_wanted(
    skip: &[Peer],
    pg: &Outcome<postgres::Installed>,
) -> Outcome<postgres::Installed> {
    if skip.contains(&Peer::Backends) {
        return Err("skipped: --skip backends".into());
    }
    pg.clone().map_err(|why| format!("PostgreSQL {why}"))
}

/// The store sizes to measure, smallest first, or why none.
fn store_sizes(options: &Options) -> Outcome<Vec<usize>> {
    if options.skip.contains(&Peer::Scaling) {
        return Err("skipped: --skip scaling".into());
    }
    let mut sizes = options.store_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    sizes.retain(|&n| n > 0);
    if sizes.is_empty() {
        return Err("skipped: no --store-sizes".into());
    }
    Ok(sizes)
}

/// Each store, from the cache or loaded now.
fn load_stores(
    stores: &Stores,
    sizes: &[usize],
    work: &Path,
    progress: &Progress,
) -> Result<Vec<StoreFile>> {
    if stores.key.is_none() {
        progress.note(
            "src/store/ or examples/bulk_load.rs has changes not committed (or no git):              every store is loaded afresh and not kept",
        );
    }
    let mut files = Vec::new();
    for &n in sizes {
        let store = stores.get(n, work)?;
        let how = if store.loaded_now {
            format!("loaded in {:.1} s", store.load_seconds)
        } else {
            format!(
                "cached (loaded {} in {:.1} s)",
                store.loaded_at, store.load_seconds
            )
        };
        progress.note(&format!(
            "{n} orders: {how}, {:.1} MiB",
            store.bytes as f64 / 1024.0 / 1024.0
        ));
        files.push(store);
    }
    Ok(files)
}

/// PostgreSQL's programs, unless skipped; a failure to set them up is
/// reported, not fatal.
fn postgres_setup(work: &Path, wanted: bool, progress: &Progress) -> Outcome<postgres::Installed> {
    if !wanted {
        progress.note("skipped: --skip postgres");
        return Err("skipped: --skip postgres".into());
    }
    match postgres::setup(work) {
        Ok(pg) => {
            progress.note(&format!("{} ({})", pg.version, pg.bin.display()));
            Ok(pg)
        }
        Err(e) => {
            let why = format!("not set up: {e:#}");
            progress.note(&format!("PostgreSQL {why}"));
            Err(why)
        }
    }
}

/// Whether to build and measure the bare tonic servers.
fn bare_wanted(root: &Path, wanted: bool, skipped: &mut Skipped) -> bool {
    let why = if !wanted {
        "skipped: --skip bare"
    } else if !root.join("examples/bare_server.rs").exists() {
        "skipped: not built (no examples/bare_server.rs)"
    } else {
        return true;
    };
    for k in [Kind::Bare, Kind::BareCurrentThread] {
        skipped.push((k, why.into()));
    }
    false
}

/// The Python peer, unless skipped or absent.
fn python_peer(
    root: &Path,
    work: &Path,
    wanted: bool,
    skipped: &mut Skipped,
    progress: &Progress,
) -> Result<Option<peers::PythonPeer>> {
    let why = if !wanted {
        "skipped: --skip python"
    } else if !root.join("tests/interop/peer_server.py").exists() {
        "skipped: not built (no tests/interop/peer_server.py)"
    } else {
        let peer = peers::setup_python(root, work)?;
        progress.note(&peer.version);
        return Ok(Some(peer));
    };
    skipped.push((Kind::Python, why.into()));
    Ok(None)
}

/// The Node peer's versions, unless skipped or absent.
fn node_peer(
    root: &Path,
    work: &Path,
    wanted: bool,
    skipped: &mut Skipped,
    progress: &Progress,
) -> Result<Option<String>> {
    let dir = root.join("tests/load/node");
    let why = if !wanted {
        "skipped: --skip node"
    } else if !dir.join("server.js").exists() || !dir.join("package-lock.json").exists() {
        "skipped: not built (no tests/load/node/server.js + package-lock.json)"
    } else {
        let version = peers::setup_node(&dir, work)?;
        progress.note(&version);
        return Ok(Some(version));
    };
    skipped.push((Kind::Node, why.into()));
    Ok(None)
}

/// Says so when other processes keep the machine busy now. Measured, not
/// the load average: that still counts our own build.
fn warn_if_busy(clk_tck: f64, progress: &Progress) -> Result<()> {
    let busy = machine::busy_cores(clk_tck)?;
    if busy > 0.1 {
        progress.note(&format!(
            "WARNING: other processes are using {:.0}% of a core right now: they take CPU from \
             the servers and load generators; numbers will be low and noisy",
            busy * 100.0
        ));
    }
    Ok(())
}

/// Every measurement phase, in order.
fn measure(rig: &mut Rig, found: Found, options: &Options) -> Result<Results> {
    let Found {
        tools,
        skipped,
        loadavg_at_start,
        stores,
        baseline,
    } = found;
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| !skipped.iter().any(|(s, _)| s == k))
        .collect();
    let mut idle = Vec::new();
    for &kind in &kinds {
        idle.push(idle::idle(rig, kind)?);
    }
    let mut rounds = Vec::new();
    for round in 1..=rig.rounds {
        for &kind in &kinds {
            rounds.push(measure::round(rig, kind, round)?);
        }
    }
    let search = streams::search(rig)?;
    let streams = streams::process_and_update(rig)?;
    let inserts = inserts::inserts(rig)?;
    // A few seconds of getOrder per store: long enough for RSS to settle.
    let get_seconds = rig.seconds.min(5);
    let scaling = match stores {
        Ok(files) => Ok(scaling::series(rig, &files, get_seconds)?),
        Err(why) => Err(why),
    };
    let backends = match backends_wanted(&options.skip, &rig.postgres) {
        Ok(pg) => backends::backends(rig, &pg).map_err(|e| {
            let why = format!("failed: {e:#}");
            rig.progress.note(&format!("backends {why}"));
            why
        }),
        Err(why) => Err(why),
    };
    let work = rig.work().to_path_buf();
    Ok(Results {
        date: machine::date(&work),
        machine: machine::probe(&rig.servers.root, &work, tools, loadavg_at_start),
        rounds_asked: rig.rounds,
        seconds: rig.seconds,
        quick: options.quick,
        kinds,
        skipped,
        idle,
        rounds,
        search,
        streams,
        inserts,
        scaling,
        backends,
        store_sizes: options.store_sizes.clone(),
        baseline,
        answer_bytes: rig.answer_bytes,
        commands: process::commands(),
        root: rig.servers.root.clone(),
        work,
    })
}
