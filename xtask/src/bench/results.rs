//! What one run measured, as measured: the inputs of the summary, the
//! report, the chart and bench-results.json.

use std::path::PathBuf;

use super::config::{Kind, VERIFY_CALLS};
use super::h2load::H2load;
use super::loadgen::ClientBench;
use super::machine::Machine;

/// The server's CPU time over h2load's measurement period.
#[derive(Debug, Clone)]
pub struct Cpu {
    pub ticks: u64,
    pub window_seconds: f64,
    pub clk_tck: f64,
    /// CPU seconds per wall second (1.0 = the whole of core 0).
    pub cpu_share: f64,
    pub us_per_request: f64,
    /// h2load's own CPU, in cores: near 1.0 means the load generator, not
    /// the server, was the limit.
    pub h2load_share: f64,
    /// Every other process's CPU meanwhile, in cores: how quiet the machine was.
    pub others_share: f64,
}

/// One server in one round.
pub struct Round {
    pub kind: Kind,
    pub round: usize,
    /// The load generator's `bench --count 1000`: every answer compared with order 101.
    pub verify: ClientBench,
    /// The warm-up run (same shape, fixed count), checked exactly.
    pub warm_up: H2load,
    pub h2load: H2load,
    /// h2load's DATA bytes are one order's frame per answer: exactly in the
    /// warm-up, up to the in-flight tail in the measured run.
    pub data_ok: bool,
    pub cpu: Cpu,
    /// The load generator's `bench` at -c 50 -m 10 and at -c 1 -m 1.
    pub loaded: ClientBench,
    pub single: ClientBench,
    /// VmHWM at the end of the round.
    pub peak_kib: u64,
    /// Size of the server's stderr log (ours logs a line per call).
    pub log_bytes: Option<u64>,
}

impl Round {
    /// Counts only if every answer, by both checks, was a real order.
    pub fn verified(&self) -> bool {
        self.data_ok && self.verify.all_ok() && self.verify.ok == VERIFY_CALLS
    }
}

pub struct Idle {
    pub kind: Kind,
    pub idle_kib: u64,
    pub connections: usize,
    pub with_connections_kib: u64,
    pub after_close_kib: u64,
}

impl Idle {
    pub fn added_kib(&self) -> u64 {
        self.with_connections_kib.saturating_sub(self.idle_kib)
    }
}

pub struct Search {
    pub orders: usize,
    pub query: String,
    /// The bulk load of the store it ran on (possibly a cached one).
    pub load_seconds: f64,
    pub result: ClientBench,
    pub expected_messages: u64,
    pub verified: bool,
    pub base_kib: u64,
    pub peak_kib: u64,
    pub samples: u64,
    /// Server CPU time over the streams per order sent.
    pub cpu_us_per_order: f64,
}

impl Search {
    pub fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.base_kib)
    }
}

pub struct Streams {
    pub process: ClientBench,
    pub process_args: Vec<String>,
    /// Server CPU time per call over the run.
    pub process_cpu_us: f64,
    pub update: ClientBench,
    pub update_args: Vec<String>,
    pub update_cpu_us: f64,
    pub update_batch: u64,
}

/// CPU over one load generator run, in shares of a core.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub seconds: f64,
    /// The server's CPU (with every process under it), in clock ticks.
    pub server_ticks: u64,
    pub clk_tck: f64,
    pub server_cores: f64,
    /// The load generator's.
    pub client_cores: f64,
    /// Every other process's on the machine: how quiet it was.
    pub others_cores: f64,
}

impl Usage {
    /// Server CPU per call (or transaction), in us.
    pub fn server_us_per(&self, calls: u64) -> f64 {
        self.server_ticks as f64 / self.clk_tck * 1e6 / calls.max(1) as f64
    }
}

/// A part of the run that can be left out or fail without failing the
/// run: what it measured, or why there is nothing.
pub type Outcome<T> = Result<T, String>;

/// One pgbench run of the insert script.
#[derive(Debug, Clone)]
pub struct Pgbench {
    pub clients: usize,
    pub seconds: u64,
    /// Transactions (one insert each) per second, without connection set-up.
    pub tps: f64,
    pub transactions: u64,
    pub failed: u64,
    pub latency_ms: f64,
    /// PostgreSQL's CPU (postmaster and backends) and pgbench's.
    pub usage: Usage,
}

/// pg_test_fsync's `fdatasync` line (one 8 kB write then fdatasync).
#[derive(Debug, Clone, Copy)]
pub struct Fsync {
    pub ops_per_second: f64,
    pub us_per_op: f64,
}

/// PostgreSQL's side of the insert comparison.
pub struct Postgres {
    pub version: String,
    /// The settings it ran with, as `SHOW` reported them.
    pub settings: Vec<(String, String)>,
    pub pgbench: Vec<Pgbench>,
    /// pgbench's script, as run.
    pub script: String,
}

impl Postgres {
    pub fn at(&self, clients: usize) -> Option<&Pgbench> {
        self.pgbench.iter().find(|p| p.clients == clients)
    }
}

/// One addOrder run of ours on a fresh store.
pub struct AddRun {
    pub args: Vec<String>,
    pub bench: ClientBench,
    pub usage: Usage,
}

/// addOrder on our server, PostgreSQL's insert rate and the disk's
/// fdatasync cost, in the same run.
pub struct Inserts {
    /// At ADD_CONNECTIONS x ADD_CONCURRENCY.
    pub loaded: AddRun,
    /// At 1 x 1.
    pub single: AddRun,
    pub fsync: Outcome<Fsync>,
    pub postgres: Outcome<Postgres>,
}

/// A bulk-loaded store of the store-size series.
#[derive(Debug, Clone)]
pub struct StoreFile {
    pub orders: usize,
    pub dir: PathBuf,
    /// The data dir's size on disk after loading.
    pub bytes: u64,
    pub load_seconds: f64,
    /// Loaded by this run (else reused from an earlier one).
    pub loaded_now: bool,
    /// When it was loaded (`date -u`).
    pub loaded_at: String,
}

/// Our server on one bulk-loaded store.
pub struct SizePoint {
    pub store: StoreFile,
    /// Spawn to `listening on`, each start.
    pub start_up_seconds: Vec<f64>,
    /// VmRSS of the getOrder server 0.5 s after its start.
    pub rss_at_start_kib: u64,
    pub rare_query: String,
    pub rare: ClientBench,
    /// The server's duration_us of each rare-query call, from its call log.
    pub rare_server_us: Vec<u64>,
    pub all_query: String,
    pub all: ClientBench,
    pub all_expected: u64,
    /// VmRSS peak while those streams ran.
    pub all_peak_kib: u64,
    /// getOrder load on a server of its own, with VmRSS sampled meanwhile.
    pub get: ClientBench,
    pub get_id: String,
    pub get_peak_kib: u64,
    pub get_samples: u64,
    /// VmHWM of the search server at its end: the peak of its whole life.
    pub hwm_kib: u64,
    /// Every stop of a server on this store was clean (SIGTERM, exit 0).
    pub stopped_cleanly: bool,
}

impl SizePoint {
    /// Every rare-term call found its one order, and the server logged
    /// its time for each.
    pub fn rare_verified(&self) -> bool {
        self.rare.all_ok()
            && self.rare.messages == self.rare.calls
            && self.rare_server_us.len() as u64 == self.rare.calls
    }

    pub fn all_verified(&self) -> bool {
        self.all.all_ok() && self.all.messages == self.all_expected
    }

    pub fn verified(&self) -> bool {
        self.rare_verified() && self.all_verified() && self.get.all_ok() && self.stopped_cleanly
    }

    /// The median start-up, in seconds.
    pub fn start_up_median(&self) -> Option<f64> {
        median(&self.start_up_seconds)
    }

    /// The median server time of the rare-term calls, in us.
    pub fn rare_server_median_us(&self) -> Option<f64> {
        median(
            &self
                .rare_server_us
                .iter()
                .map(|&u| u as f64)
                .collect::<Vec<_>>(),
        )
    }
}

/// The median of finite values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The store-size series.
pub struct Scaling {
    pub points: Vec<SizePoint>,
    pub get_seconds: u64,
}

/// The figures of the report this run replaces (docs/bench/bench-results.json).
#[derive(Debug, Clone)]
pub struct Baseline {
    pub date: String,
    pub ours_rps: f64,
    pub bare_rps: Option<f64>,
}

/// Everything one run measured.
pub struct Results {
    pub date: String,
    pub machine: Machine,
    pub rounds_asked: usize,
    pub seconds: u64,
    pub quick: bool,
    pub kinds: Vec<Kind>,
    pub skipped: Vec<(Kind, String)>,
    pub idle: Vec<Idle>,
    pub rounds: Vec<Round>,
    pub search: Search,
    pub streams: Streams,
    pub inserts: Inserts,
    pub scaling: Outcome<Scaling>,
    pub store_sizes: Vec<usize>,
    pub baseline: Option<Baseline>,
    pub answer_bytes: u64,
    pub commands: Vec<String>,
    pub root: PathBuf,
    pub work: PathBuf,
}
