//! What every part of the benchmark agrees on: the run's options, the
//! servers compared, the cores, the load shapes and the request. A leaf:
//! it uses no other module of the benchmark.

use std::path::PathBuf;
use std::time::Duration;

/// Where `--write-report` writes BENCHMARKS.md, bench-results.json,
/// benchmarks.svg (bench) and PROFILE.md (profile), under the workspace root.
pub const REPORT_DIR: &str = "docs/bench";

/// What `--skip` can leave out: a peer, or a part of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// Both bare tonic servers (multi-thread and current-thread).
    Bare,
    Python,
    Node,
    /// PostgreSQL: pgbench's insert rate and pg_test_fsync's fdatasync
    /// cost (our addOrder rates are still measured).
    Postgres,
    /// The store-size series: bulk-loaded stores of each `--store-sizes`.
    Scaling,
}

/// What `cargo xtask bench` is asked for.
pub struct Options {
    pub rounds: usize,
    pub seconds: u64,
    pub skip: Vec<Peer>,
    pub out: PathBuf,
    pub write_report: bool,
    pub quick: bool,
    /// Orders in each store of the store-size series.
    pub store_sizes: Vec<usize>,
}

/// The store-size series by default: 10M takes longer to load and to
/// stream than the rest of the run together (`--store-sizes` adds it).
pub const STORE_SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// `--quick`'s store sizes.
pub const QUICK_STORE_SIZES: [usize; 2] = [10_000, 100_000];

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
    pub const ALL: [Kind; 5] = [
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
pub const SERVER_CORE: &str = "0";
pub const LOAD_CORE: &str = "1";
/// The h2load shape of the throughput runs (and of one latency run).
pub const CONNECTIONS: usize = 50;
pub const STREAMS_PER_CONNECTION: usize = 10;
/// A same-shape, fixed-count h2load run before each measured one: warms
/// JITs, allocators and pools, and is the exact DATA check.
pub const WARM_UP_REQUESTS: u64 = 20_000;
/// Calls of the per-server correctness pass (the load generator checks each one).
pub const VERIFY_CALLS: u64 = 1000;
pub const IDLE_CONNECTIONS: usize = 1000;
/// The searchOrders data set: every order has an item with this word.
pub const SEARCH_ORDERS: usize = 100_000;
pub const SEARCH_QUERY: &str = "widget";
pub const SEARCH_STREAMS: u64 = 3;
/// How often the server's RSS is sampled during the search streams.
pub const RSS_SAMPLE: Duration = Duration::from_millis(20);
/// The id every getOrder asks for: the seed's order, served by every peer.
pub const ORDER_ID: &str = "101";

/// addOrder's load shapes: the one compared with pgbench at the same
/// number of clients, and one caller alone (its latency is disk syncs).
pub const ADD_CONNECTIONS: usize = 10;
pub const ADD_CONCURRENCY: usize = 10;
/// pgbench's client counts: 1 and 10 compared, 50 for the record.
pub const PGBENCH_CLIENTS: [usize; 3] = [1, 10, 50];
/// pg_test_fsync's seconds per test (`-s`).
pub const FSYNC_TEST_SECONDS: u64 = 2;

/// The store-size series: sequential rare-term searches per store (their
/// server times are read from the call log), server starts per store
/// (median), streams of the query that matches every order.
pub const RARE_SEARCH_CALLS: u64 = 50;
pub const STARTS: usize = 3;
pub const MATCH_ALL_QUERY: &str = "gadget";
pub const MATCH_ALL_STREAMS: u64 = 3;
/// The store size the targets name.
pub const TARGET_STORE_SIZE: usize = 1_000_000;
