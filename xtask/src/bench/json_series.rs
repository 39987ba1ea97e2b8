//! bench-results.json's parts for the series after the getOrder rounds:
//! durable inserts, the store-size series, the PostgreSQL store against the
//! embedded one. Fields in alphabetical order, as in [`super::json`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::json::raw;
use super::results::{
    AddRun, Backends, Inserts, Outcome, Scaling, SizePoint, SplitRun, Usage, median,
};

#[derive(Serialize)]
struct SplitJson<'a> {
    args: &'a [String],
    calls_per_second: f64,
    client_benches: Vec<&'a Value>,
    cpu_us_per_call: f64,
    database_cpu_us_per_call: f64,
    usage: UsageJson,
}

#[derive(Serialize)]
struct BackendRunJson<'a> {
    add_order: SplitJson<'a>,
    backend: &'a str,
    get_order: SplitJson<'a>,
    rare_client_bench: &'a Value,
    rare_query: &'a str,
    rare_server_us: &'a [u64],
    rare_server_us_median: Option<f64>,
    replicas: usize,
    verified: bool,
}

#[derive(Serialize)]
pub(super) struct BackendsJson<'a> {
    orders: Option<usize>,
    runs: Vec<BackendRunJson<'a>>,
    /// Why there is no comparison.
    skipped: Option<&'a str>,
}

#[derive(Serialize)]
struct UsageJson {
    /// The load generator's CPU, in cores.
    client_cores: f64,
    clk_tck: f64,
    /// Every other process's, in cores.
    others_cores: f64,
    seconds: f64,
    server_cores: f64,
    server_ticks: u64,
}

#[derive(Serialize)]
struct AddJson<'a> {
    args: &'a [String],
    client_bench: &'a Value,
    server_cpu_us_per_call: f64,
    usage: UsageJson,
}

#[derive(Serialize)]
struct FsyncJson {
    ops_per_second: f64,
    us_per_op: f64,
}

#[derive(Serialize)]
struct PgbenchJson {
    clients: usize,
    failed: u64,
    latency_ms: f64,
    seconds: u64,
    server_cpu_us_per_insert: f64,
    tps: f64,
    transactions: u64,
    usage: UsageJson,
}

#[derive(Serialize)]
struct PostgresJson<'a> {
    pgbench: Vec<PgbenchJson>,
    script: &'a str,
    settings: BTreeMap<&'a str, &'a str>,
    version: &'a str,
}

#[derive(Serialize)]
pub(super) struct InsertsJson<'a> {
    add_order_1x1: AddJson<'a>,
    /// At ADD_CONNECTIONS x ADD_CONCURRENCY (see its args).
    add_order_loaded: AddJson<'a>,
    fdatasync: Option<FsyncJson>,
    /// Why there is no fdatasync figure.
    fdatasync_missing: Option<&'a str>,
    postgres: Option<PostgresJson<'a>>,
    /// Why there are no PostgreSQL figures.
    postgres_missing: Option<&'a str>,
}

#[derive(Serialize)]
struct StoreJson {
    bytes: u64,
    dir: String,
    load_seconds: f64,
    loaded_at: String,
    loaded_now: bool,
}

#[derive(Serialize)]
struct PointJson<'a> {
    all_client_bench: &'a Value,
    all_expected_messages: u64,
    all_query: &'a str,
    all_rss_peak_kib: u64,
    all_verified: bool,
    get_client_bench: &'a Value,
    get_id: &'a str,
    get_rss_max_kib: u64,
    get_rss_samples: u64,
    hwm_kib: u64,
    orders: usize,
    rare_client_bench: &'a Value,
    rare_query: &'a str,
    rare_server_us: &'a [u64],
    rare_server_us_median: Option<f64>,
    rare_verified: bool,
    rss_at_start_kib: u64,
    start_up_seconds: &'a [f64],
    start_up_seconds_median: Option<f64>,
    stopped_cleanly: bool,
    store: StoreJson,
}

#[derive(Serialize)]
pub(super) struct ScalingJson<'a> {
    get_seconds: Option<u64>,
    points: Vec<PointJson<'a>>,
    /// Why there is no series.
    skipped: Option<&'a str>,
}

fn usage(u: &Usage) -> UsageJson {
    UsageJson {
        client_cores: u.client_cores,
        clk_tck: u.clk_tck,
        others_cores: u.others_cores,
        seconds: u.seconds,
        server_cores: u.server_cores,
        server_ticks: u.server_ticks,
    }
}

fn add(a: &AddRun) -> AddJson<'_> {
    AddJson {
        args: &a.args,
        client_bench: raw(&a.bench),
        server_cpu_us_per_call: a.usage.server_us_per(a.bench.calls),
        usage: usage(&a.usage),
    }
}

pub(super) fn inserts(i: &Inserts) -> InsertsJson<'_> {
    InsertsJson {
        add_order_1x1: add(&i.single),
        add_order_loaded: add(&i.loaded),
        fdatasync: i.fsync.as_ref().ok().map(|f| FsyncJson {
            ops_per_second: f.ops_per_second,
            us_per_op: f.us_per_op,
        }),
        fdatasync_missing: i.fsync.as_ref().err().map(String::as_str),
        postgres: i.postgres.as_ref().ok().map(|pg| PostgresJson {
            pgbench: pg
                .pgbench
                .iter()
                .map(|p| PgbenchJson {
                    clients: p.clients,
                    failed: p.failed,
                    latency_ms: p.latency_ms,
                    seconds: p.seconds,
                    server_cpu_us_per_insert: p.usage.server_us_per(p.transactions),
                    tps: p.tps,
                    transactions: p.transactions,
                    usage: usage(&p.usage),
                })
                .collect(),
            script: &pg.script,
            settings: pg
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            version: &pg.version,
        }),
        postgres_missing: i.postgres.as_ref().err().map(String::as_str),
    }
}

pub(super) fn scaling<'a>(s: &'a Outcome<Scaling>, root: &Path) -> ScalingJson<'a> {
    match s {
        Ok(s) => ScalingJson {
            get_seconds: Some(s.get_seconds),
            points: s.points.iter().map(|p| point(p, root)).collect(),
            skipped: None,
        },
        Err(why) => ScalingJson {
            get_seconds: None,
            points: Vec::new(),
            skipped: Some(why),
        },
    }
}

fn point<'a>(p: &'a SizePoint, root: &Path) -> PointJson<'a> {
    PointJson {
        all_client_bench: raw(&p.all),
        all_expected_messages: p.all_expected,
        all_query: &p.all_query,
        all_rss_peak_kib: p.all_peak_kib,
        all_verified: p.all_verified(),
        get_client_bench: raw(&p.get),
        get_id: &p.get_id,
        get_rss_max_kib: p.get_peak_kib,
        get_rss_samples: p.get_samples,
        hwm_kib: p.hwm_kib,
        orders: p.store.orders,
        rare_client_bench: raw(&p.rare),
        rare_query: &p.rare_query,
        rare_server_us: &p.rare_server_us,
        rare_server_us_median: p.rare_server_median_us(),
        rare_verified: p.rare_verified(),
        rss_at_start_kib: p.rss_at_start_kib,
        start_up_seconds: &p.start_up_seconds,
        start_up_seconds_median: p.start_up_median(),
        stopped_cleanly: p.stopped_cleanly,
        store: StoreJson {
            bytes: p.store.bytes,
            dir: p
                .store
                .dir
                .strip_prefix(root)
                .unwrap_or(&p.store.dir)
                .display()
                .to_string(),
            load_seconds: p.store.load_seconds,
            loaded_at: p.store.loaded_at.clone(),
            loaded_now: p.store.loaded_now,
        },
    }
}

fn split(s: &SplitRun) -> SplitJson<'_> {
    let (all, db) = s.cpu_us();
    SplitJson {
        args: &s.args,
        calls_per_second: s.calls_per_second(),
        client_benches: s.benches.iter().map(raw).collect(),
        cpu_us_per_call: all,
        database_cpu_us_per_call: db,
        usage: usage(&s.usage),
    }
}

pub(super) fn backends(b: &Outcome<Backends>) -> BackendsJson<'_> {
    match b {
        Ok(b) => BackendsJson {
            orders: Some(b.orders),
            runs: b
                .runs
                .iter()
                .map(|r| BackendRunJson {
                    add_order: split(&r.add),
                    backend: r.backend,
                    get_order: split(&r.get),
                    rare_client_bench: raw(&r.rare),
                    rare_query: &r.rare_query,
                    rare_server_us: &r.rare_server_us,
                    rare_server_us_median: median(
                        &r.rare_server_us
                            .iter()
                            .map(|&u| u as f64)
                            .collect::<Vec<_>>(),
                    ),
                    replicas: r.replicas,
                    verified: r.verified(),
                })
                .collect(),
            skipped: None,
        },
        Err(why) => BackendsJson {
            orders: None,
            runs: Vec::new(),
            skipped: Some(why),
        },
    }
}
