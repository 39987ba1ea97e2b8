//! bench-results.json: every raw number of the run, per round, with the
//! summary and the targets, as serde structs.
//!
//! Every struct lists its fields in alphabetical order, which is the order
//! they appear in the file: it has always been written with sorted keys
//! (it used to be a `serde_json::Value`, whose maps sort), and keeping that
//! order keeps the diff between two runs' files to the numbers. A test
//! checks it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::config::WARM_UP_REQUESTS;
use super::loadgen::ClientBench;
use super::machine::Machine;
use super::results::{
    AddRun, Baseline, Idle, Inserts, Outcome, Results, Round, Scaling, Search, SizePoint, Usage,
};
use super::summary::{Row, Summary, Target, Verdict};

#[derive(Serialize)]
struct Document<'a> {
    answer_bytes: u64,
    /// The last report's getOrder figures this run is compared with.
    baseline: Option<BaselineJson<'a>>,
    commands: Vec<String>,
    commands_as_run: &'a [String],
    date: &'a str,
    idle: Vec<IdleJson>,
    inserts: InsertsJson<'a>,
    machine: &'a Machine,
    options: Options<'a>,
    process_orders: ProcessOrders<'a>,
    rounds: Vec<RoundJson<'a>>,
    scaling: ScalingJson<'a>,
    search: SearchJson<'a>,
    skipped: Vec<Skipped<'a>>,
    summary: Vec<RowJson<'a>>,
    targets: Vec<TargetJson<'a>>,
    update_orders: UpdateOrders<'a>,
}

#[derive(Serialize)]
struct Options<'a> {
    quick: bool,
    rounds: usize,
    seconds: u64,
    store_sizes: &'a [usize],
}

#[derive(Serialize)]
struct BaselineJson<'a> {
    bare_rps: Option<f64>,
    date: &'a str,
    ours_rps: f64,
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
struct InsertsJson<'a> {
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
struct ScalingJson<'a> {
    get_seconds: Option<u64>,
    points: Vec<PointJson<'a>>,
    /// Why there is no series.
    skipped: Option<&'a str>,
}

#[derive(Serialize)]
struct Skipped<'a> {
    server: &'static str,
    why: &'a str,
}

#[derive(Serialize)]
struct RowJson<'a> {
    client_calls_per_second_50x10: Option<f64>,
    label: &'static str,
    ours_over_this: Option<f64>,
    ours_over_this_by_round: &'a [f64],
    p50_us_1x1: Option<f64>,
    p50_us_50x10: Option<f64>,
    p99_us_1x1: Option<f64>,
    p99_us_50x10: Option<f64>,
    peak_rss_kib: Option<u64>,
    rps_max: Option<f64>,
    rps_median: Option<f64>,
    rps_min: Option<f64>,
    runs: usize,
    server: &'static str,
    server_cpu_us_per_request: Option<f64>,
    verified_runs: usize,
}

#[derive(Serialize)]
struct TargetJson<'a> {
    /// By how much a MISS missed; null otherwise.
    gap: Option<&'a str>,
    measured: &'a str,
    target: &'a str,
    verdict: &'static str,
    what: &'a str,
}

#[derive(Serialize)]
struct RoundJson<'a> {
    h2load: H2loadJson,
    h2load_warm_up: WarmUpJson,
    latency_client_bench_1x1: &'a Value,
    latency_client_bench_50x10: &'a Value,
    peak_rss_kib: u64,
    round: usize,
    server: &'static str,
    server_cpu: CpuJson,
    server_log_bytes: Option<u64>,
    verified: bool,
    verify_client_bench: &'a Value,
}

#[derive(Serialize)]
struct WarmUpJson {
    data_bytes: u64,
    data_bytes_expected: u64,
    errored: u64,
    failed: u64,
    requests_per_second: f64,
    succeeded: u64,
    timeout: u64,
}

#[derive(Serialize)]
struct H2loadJson {
    answers_in_flight_tail: i64,
    data_bytes: u64,
    data_bytes_for_succeeded: u64,
    data_ok: bool,
    done: u64,
    errored: u64,
    failed: u64,
    requests_per_second: f64,
    seconds: f64,
    started: u64,
    succeeded: u64,
    timeout: u64,
    total: u64,
}

#[derive(Serialize)]
struct CpuJson {
    clk_tck: f64,
    cpu_share: f64,
    h2load_cpu_share: f64,
    other_processes_cpu_share: f64,
    ticks: u64,
    us_per_request: f64,
    window_seconds: f64,
}

#[derive(Serialize)]
struct IdleJson {
    after_close_rss_kib: u64,
    connections: usize,
    idle_rss_kib: u64,
    server: &'static str,
    with_connections_rss_kib: u64,
}

#[derive(Serialize)]
struct SearchJson<'a> {
    client_bench: &'a Value,
    expected_messages: u64,
    load_seconds: f64,
    orders: usize,
    query: &'a str,
    rss_base_kib: u64,
    rss_peak_kib: u64,
    rss_samples: u64,
    server_cpu_us_per_order: f64,
    verified: bool,
}

#[derive(Serialize)]
struct ProcessOrders<'a> {
    args: &'a [String],
    client_bench: &'a Value,
    server_cpu_us_per_call: f64,
}

#[derive(Serialize)]
struct UpdateOrders<'a> {
    args: &'a [String],
    client_bench: &'a Value,
    orders_per_call: u64,
    server_cpu_us_per_call: f64,
}

impl Summary<'_> {
    /// bench-results.json, pretty-printed, with a final newline.
    pub fn json_pretty(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(&self.document()).expect("plain data serializes");
        text.push('\n');
        text
    }

    fn document(&self) -> Document<'_> {
        let r = self.results;
        let st = &r.streams;
        Document {
            answer_bytes: r.answer_bytes,
            baseline: r.baseline.as_ref().map(|b| BaselineJson {
                bare_rps: b.bare_rps,
                date: &b.date,
                ours_rps: b.ours_rps,
            }),
            commands: self.commands_readable(),
            commands_as_run: &r.commands,
            date: &r.date,
            idle: r.idle.iter().map(idle).collect(),
            inserts: inserts(&r.inserts),
            machine: &r.machine,
            options: Options {
                quick: r.quick,
                rounds: r.rounds_asked,
                seconds: r.seconds,
                store_sizes: &r.store_sizes,
            },
            process_orders: ProcessOrders {
                args: &st.process_args,
                client_bench: raw(&st.process),
                server_cpu_us_per_call: st.process_cpu_us,
            },
            rounds: r.rounds.iter().map(|x| round(x, r)).collect(),
            scaling: scaling(&r.scaling, &r.root),
            search: search(&r.search),
            skipped: r
                .skipped
                .iter()
                .map(|(k, why)| Skipped {
                    server: k.key(),
                    why,
                })
                .collect(),
            summary: self.rows.iter().map(row).collect(),
            targets: self.targets.iter().map(target).collect(),
            update_orders: UpdateOrders {
                args: &st.update_args,
                client_bench: raw(&st.update),
                orders_per_call: st.update_batch,
                server_cpu_us_per_call: st.update_cpu_us,
            },
        }
    }
}

/// The load generator's report line, as it printed it.
fn raw(b: &ClientBench) -> &Value {
    &b.raw
}

fn round<'a>(x: &'a Round, r: &Results) -> RoundJson<'a> {
    let (w, h, c) = (&x.warm_up, &x.h2load, &x.cpu);
    RoundJson {
        h2load: H2loadJson {
            answers_in_flight_tail: h.tail_answers(r.answer_bytes),
            data_bytes: h.data_bytes,
            data_bytes_for_succeeded: h.succeeded * r.answer_bytes,
            data_ok: x.data_ok,
            done: h.done,
            errored: h.errored,
            failed: h.failed,
            requests_per_second: h.requests_per_second,
            seconds: h.seconds,
            started: h.started,
            succeeded: h.succeeded,
            timeout: h.timeout,
            total: h.total,
        },
        h2load_warm_up: WarmUpJson {
            data_bytes: w.data_bytes,
            data_bytes_expected: WARM_UP_REQUESTS * r.answer_bytes,
            errored: w.errored,
            failed: w.failed,
            requests_per_second: w.requests_per_second,
            succeeded: w.succeeded,
            timeout: w.timeout,
        },
        latency_client_bench_1x1: raw(&x.single),
        latency_client_bench_50x10: raw(&x.loaded),
        peak_rss_kib: x.peak_kib,
        round: x.round,
        server: x.kind.key(),
        server_cpu: CpuJson {
            clk_tck: c.clk_tck,
            cpu_share: c.cpu_share,
            h2load_cpu_share: c.h2load_share,
            other_processes_cpu_share: c.others_share,
            ticks: c.ticks,
            us_per_request: c.us_per_request,
            window_seconds: c.window_seconds,
        },
        server_log_bytes: x.log_bytes,
        verified: x.verified(),
        verify_client_bench: raw(&x.verify),
    }
}

fn row(x: &Row) -> RowJson<'_> {
    RowJson {
        client_calls_per_second_50x10: x.client_rps,
        label: x.kind.label(),
        ours_over_this: x.ratio,
        ours_over_this_by_round: &x.ratios_by_round,
        p50_us_1x1: x.single_p50,
        p50_us_50x10: x.loaded_p50,
        p99_us_1x1: x.single_p99,
        p99_us_50x10: x.loaded_p99,
        peak_rss_kib: x.peak_kib,
        rps_max: x.rps.map(|s| s.max),
        rps_median: x.rps.map(|s| s.median),
        rps_min: x.rps.map(|s| s.min),
        runs: x.runs,
        server: x.kind.key(),
        server_cpu_us_per_request: x.cpu_us,
        verified_runs: x.verified,
    }
}

fn target(t: &Target) -> TargetJson<'_> {
    TargetJson {
        gap: (t.verdict == Verdict::Miss).then_some(t.gap.as_str()),
        measured: &t.measured,
        target: &t.goal,
        verdict: t.verdict.tag(),
        what: &t.what,
    }
}

fn idle(i: &Idle) -> IdleJson {
    IdleJson {
        after_close_rss_kib: i.after_close_kib,
        connections: i.connections,
        idle_rss_kib: i.idle_kib,
        server: i.kind.key(),
        with_connections_rss_kib: i.with_connections_kib,
    }
}

fn search(s: &Search) -> SearchJson<'_> {
    SearchJson {
        client_bench: raw(&s.result),
        expected_messages: s.expected_messages,
        load_seconds: s.load_seconds,
        orders: s.orders,
        query: &s.query,
        rss_base_kib: s.base_kib,
        rss_peak_kib: s.peak_kib,
        rss_samples: s.samples,
        server_cpu_us_per_order: s.cpu_us_per_order,
        verified: s.verified,
    }
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

fn inserts(i: &Inserts) -> InsertsJson<'_> {
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

fn scaling<'a>(s: &'a Outcome<Scaling>, root: &Path) -> ScalingJson<'a> {
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

/// The figures of an earlier run's bench-results.json this run is
/// compared with: its date and the median getOrder req/s of ours and of
/// bare tonic (multi-thread). None if there is no such file or it lacks them.
pub fn read_baseline(path: &Path) -> Option<Baseline> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let rps = |server: &str| {
        doc["summary"]
            .as_array()?
            .iter()
            .find(|r| r["server"] == server)?["rps_median"]
            .as_f64()
    };
    Some(Baseline {
        date: doc["date"].as_str()?.to_owned(),
        ours_rps: rps("ours")?,
        bare_rps: rps("bare"),
    })
}
