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
    pub answer_bytes: u64,
    pub commands: Vec<String>,
    pub root: PathBuf,
    pub work: PathBuf,
}
