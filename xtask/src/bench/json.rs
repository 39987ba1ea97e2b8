//! bench-results.json: every raw number of the run, per round, with the
//! summary and the targets, as serde structs.
//!
//! Every struct lists its fields in alphabetical order, which is the order
//! they appear in the file: it has always been written with sorted keys
//! (it used to be a `serde_json::Value`, whose maps sort), and keeping that
//! order keeps the diff between two runs' files to the numbers. A test
//! checks it. The series after the getOrder rounds are in
//! [`super::json_series`].

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::config::WARM_UP_REQUESTS;
use super::json_series::{BackendsJson, InsertsJson, ScalingJson, backends, inserts, scaling};
use super::loadgen::ClientBench;
use super::machine::Machine;
use super::results::{Baseline, Idle, Results, Round, Search};
use super::summary::{Row, Summary, Target, Verdict};

#[derive(Serialize)]
struct Document<'a> {
    answer_bytes: u64,
    /// Our server on PostgreSQL against the embedded store (issue 15).
    backends: BackendsJson<'a>,
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
            backends: backends(&r.backends),
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
pub(super) fn raw(b: &ClientBench) -> &Value {
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
