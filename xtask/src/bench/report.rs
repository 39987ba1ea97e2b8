//! From raw measurements to what a reader sees: the summary rows (medians
//! over the verified rounds), the targets with PASS/MISS and the gap, the
//! markdown tables, BENCHMARKS.md and bench-results.json.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::load::{ClientBench, H2load};
use super::{
    CONNECTIONS, IDLE_CONNECTIONS, Kind, LOAD_CORE, ORDER_ID, RSS_SAMPLE, SERVER_CORE,
    STREAMS_PER_CONNECTION, VERIFY_CALLS, WARM_UP_REQUESTS,
};

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
    /// `client bench --count 1000`: every answer compared with order 101.
    pub verify: ClientBench,
    /// The warm-up run (same shape, fixed count), checked exactly.
    pub warm_up: H2load,
    pub h2load: H2load,
    /// h2load's DATA bytes are one order's frame per answer: exactly in the
    /// warm-up, up to the in-flight tail in the measured run.
    pub data_ok: bool,
    pub cpu: Cpu,
    /// `client bench` at -c 50 -m 10 and at -c 1 -m 1.
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
    fn added_kib(&self) -> u64 {
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
    fn growth_kib(&self) -> u64 {
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
    pub machine: Value,
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

#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// Above this many cores used by other processes during a measured h2load
/// run, the round is flagged as disturbed (its numbers still count).
pub const DISTURBED_CORES: f64 = 0.2;

/// One server's line of the table, over its verified rounds.
pub struct Row {
    pub kind: Kind,
    pub runs: usize,
    pub verified: usize,
    /// Rounds in which other processes used at most DISTURBED_CORES.
    pub quiet: usize,
    pub data_ok: usize,
    pub verify_ok: u64,
    pub verify_calls: u64,
    pub rps: Option<Spread>,
    pub loaded_p50: Option<f64>,
    pub loaded_p99: Option<f64>,
    pub single_p50: Option<f64>,
    pub single_p99: Option<f64>,
    pub client_rps: Option<f64>,
    pub cpu_us: Option<f64>,
    pub peak_kib: Option<u64>,
    /// Ours ÷ this server, medians of the same run.
    pub ratio: Option<f64>,
    /// Ours ÷ this server, round by round.
    pub ratios_by_round: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    Skip,
    Info,
}

pub struct Target {
    pub verdict: Verdict,
    pub what: String,
    pub measured: String,
    pub goal: String,
    /// By how much a MISS missed.
    pub gap: String,
}

pub struct Summary<'a> {
    pub results: &'a Results,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
}

pub fn summarize(results: &Results) -> Summary<'_> {
    let mut rows: Vec<Row> = results.kinds.iter().map(|&k| row(results, k)).collect();
    let ours_rps = rows
        .iter()
        .find(|r| r.kind == Kind::Ours)
        .and_then(|r| r.rps.map(|s| s.median));
    for r in &mut rows {
        r.ratio = ours_rps.zip(r.rps).map(|(o, s)| o / s.median);
        r.ratios_by_round = (1..=results.rounds_asked)
            .filter_map(|n| {
                let rps = |k: Kind| {
                    results
                        .rounds
                        .iter()
                        .find(|x| x.kind == k && x.round == n && x.verified())
                        .map(|x| x.h2load.requests_per_second)
                };
                Some(rps(Kind::Ours)? / rps(r.kind)?)
            })
            .collect();
    }
    let targets = targets(results, &rows);
    Summary {
        results,
        rows,
        targets,
    }
}

fn row(results: &Results, kind: Kind) -> Row {
    let all: Vec<&Round> = results.rounds.iter().filter(|r| r.kind == kind).collect();
    let good: Vec<&Round> = all.iter().copied().filter(|r| r.verified()).collect();
    let med = |f: &dyn Fn(&Round) -> f64| {
        spread(&good.iter().map(|r| f(r)).collect::<Vec<_>>()).map(|s| s.median)
    };
    Row {
        kind,
        runs: all.len(),
        verified: good.len(),
        quiet: all
            .iter()
            .filter(|r| r.cpu.others_share <= DISTURBED_CORES)
            .count(),
        data_ok: all.iter().filter(|r| r.data_ok).count(),
        verify_ok: all.iter().map(|r| r.verify.ok).sum(),
        verify_calls: all.iter().map(|r| r.verify.calls).sum(),
        rps: spread(
            &good
                .iter()
                .map(|r| r.h2load.requests_per_second)
                .collect::<Vec<_>>(),
        ),
        loaded_p50: med(&|r| r.loaded.p50_us as f64),
        loaded_p99: med(&|r| r.loaded.p99_us as f64),
        single_p50: med(&|r| r.single.p50_us as f64),
        single_p99: med(&|r| r.single.p99_us as f64),
        client_rps: med(&|r| r.loaded.calls_per_second),
        cpu_us: med(&|r| r.cpu.us_per_request),
        peak_kib: good.iter().map(|r| r.peak_kib).max(),
        ratio: None,
        ratios_by_round: Vec::new(),
    }
}

// ---------- targets ----------

fn pass_or_miss(pass: bool) -> Verdict {
    if pass { Verdict::Pass } else { Verdict::Miss }
}

/// value >= goal; a miss says how far short, absolute and relative.
fn at_least(what: String, value: f64, goal: f64, show: impl Fn(f64) -> String) -> Target {
    Target {
        verdict: pass_or_miss(value >= goal),
        what,
        measured: show(value),
        goal: format!(">= {}", show(goal)),
        gap: format!(
            "short by {} ({:.1}% below the target)",
            show(goal - value),
            (goal - value) / goal * 100.0
        ),
    }
}

/// value <= goal; a miss says how far over.
fn at_most(what: String, value: f64, goal: f64, show: impl Fn(f64) -> String) -> Target {
    Target {
        verdict: pass_or_miss(value <= goal),
        what,
        measured: show(value),
        goal: format!("<= {}", show(goal)),
        gap: format!(
            "over by {} ({:.1}% above the target)",
            show(value - goal),
            (value - goal) / goal * 100.0
        ),
    }
}

fn skip(what: String, why: String) -> Target {
    Target {
        verdict: Verdict::Skip,
        what,
        measured: why,
        goal: String::new(),
        gap: String::new(),
    }
}

fn info(what: String, measured: String) -> Target {
    Target {
        verdict: Verdict::Info,
        what,
        measured,
        goal: "measured and reported".into(),
        gap: String::new(),
    }
}

/// Three decimals below 10x, so that 0.995x does not print as 1.00x.
fn times(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.3}x")
    } else {
        format!("{x:.1}x")
    }
}

fn us(x: f64) -> String {
    format!("{x:.1} us")
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// 123456.7 -> "123,457".
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

fn targets(results: &Results, rows: &[Row]) -> Vec<Target> {
    let find = |k: Kind| rows.iter().find(|r| r.kind == k);
    let ours = find(Kind::Ours);
    let mut out = Vec::new();
    for (peer, goal) in [(Kind::Bare, 1.0), (Kind::Python, 30.0), (Kind::Node, 6.0)] {
        let what = format!(
            "getOrder req/s, ours / {} (same run, medians)",
            peer.label()
        );
        let why = results
            .skipped
            .iter()
            .find(|(k, _)| *k == peer)
            .map(|(_, why)| why.clone());
        out.push(match (find(peer).and_then(|r| r.ratio), why) {
            (Some(ratio), _) => at_least(what, ratio, goal, times),
            (None, Some(why)) => skip(what, why),
            (None, None) => skip(what, "no verified run of ours or of the peer".into()),
        });
    }
    let ours_or_skip =
        |what: String, value: Option<f64>, t: &dyn Fn(String, f64) -> Target| match value {
            Some(v) => t(what, v),
            None => skip(what, "no verified run of our server".into()),
        };
    out.push(ours_or_skip(
        format!("server CPU per getOrder at -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION}"),
        ours.and_then(|r| r.cpu_us),
        &|w, v| at_most(w, v, 7.0, us),
    ));
    out.push(ours_or_skip(
        "getOrder p99 latency at -c 1 -m 1".into(),
        ours.and_then(|r| r.single_p99),
        &|w, v| at_most(w, v, 200.0, |x| format!("{x:.0} us")),
    ));
    let search = &results.search;
    let search_what = format!(
        "searchOrders over {} orders to one client",
        thousands(search.orders as f64)
    );
    out.push(if search.verified {
        at_least(
            search_what,
            search.result.messages_per_second,
            300_000.0,
            |x| format!("{} orders/s", thousands(x)),
        )
    } else {
        skip(
            search_what,
            "the stream was not verified (see the table)".into(),
        )
    });
    out.push(at_most(
        "RSS growth during the searchOrders streams".into(),
        search.growth_kib() as f64,
        32.0 * 1024.0,
        mib,
    ));
    let p = &results.streams.process;
    out.push(info(
        "processOrders".into(),
        format!(
            "{} calls/s, {} shipments/s, p99 {} us",
            thousands(p.calls_per_second),
            thousands(p.messages_per_second),
            thousands(p.p99_us as f64)
        ),
    ));
    let u = &results.streams.update;
    out.push(info(
        "updateOrders".into(),
        format!(
            "{} calls/s ({} orders/s), p99 {} us",
            thousands(u.calls_per_second),
            thousands(u.calls_per_second * results.streams.update_batch as f64),
            thousands(u.p99_us as f64)
        ),
    ));
    let idle = results.idle.iter().find(|i| i.kind == Kind::Ours);
    out.push(match idle {
        Some(i) => at_most("idle RSS".into(), i.idle_kib as f64, 32.0 * 1024.0, mib),
        None => skip("idle RSS".into(), "not measured".into()),
    });
    out.push(match idle {
        Some(i) => at_most(
            format!(
                "RSS added by {} idle connections",
                thousands(i.connections as f64)
            ),
            i.added_kib() as f64,
            64.0 * 1024.0,
            mib,
        ),
        None => skip("idle connections".into(), "not measured".into()),
    });
    out
}

// ---------- rendering ----------

fn opt(x: Option<f64>, show: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "-".into(), show)
}

impl Summary<'_> {
    /// Rounds during whose measured run other processes used more than
    /// DISTURBED_CORES.
    pub fn disturbed_rounds(&self) -> usize {
        self.results
            .rounds
            .iter()
            .filter(|r| r.cpu.others_share > DISTURBED_CORES)
            .count()
    }

    pub fn all_verified(&self) -> bool {
        self.results.rounds.iter().all(Round::verified)
            && self.results.search.verified
            && self.results.streams.process.all_ok()
            && self.results.streams.update.all_ok()
    }

    fn heading(&self) -> String {
        let r = self.results;
        format!(
            "getOrder(\"{ORDER_ID}\"): h2load -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION}, {} round(s) x {} s \
             (each after a warm-up run of {} requests), servers alternating within each round; server on core \
             {SERVER_CORE}, load on core {LOAD_CORE}. req/s: h2load, median and range over the verified \
             rounds. Latency: `client bench` at 50 connections x 10 streams and at 1 x 1 (medians). \
             CPU: server utime+stime over h2load's measurement period / its requests.",
            r.rounds_asked,
            r.seconds,
            thousands(WARM_UP_REQUESTS as f64)
        )
    }

    /// The getOrder table, the memory table, the streaming table.
    pub fn tables_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", self.heading());
        s.push_str(
            "| server | req/s (median) | req/s (min–max) | ours ÷ server | p50 / p99 µs at 50×10 | \
             p50 / p99 µs at 1×1 | server CPU µs/req | peak RSS MiB | checks |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|---|\n",
        );
        for r in &self.rows {
            let pair = |a: Option<f64>, b: Option<f64>| {
                format!("{} / {}", opt(a, thousands), opt(b, thousands))
            };
            let checks = format!(
                "{}/{} rounds verified: h2load DATA = orders ({} B each) in {}/{}; client {}/{} right; \
                 machine quiet in {}/{}",
                r.verified,
                r.runs,
                self.results.answer_bytes,
                r.data_ok,
                r.runs,
                thousands(r.verify_ok as f64),
                thousands(r.verify_calls as f64),
                r.quiet,
                r.runs,
            );
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.kind.label(),
                opt(r.rps.map(|x| x.median), thousands),
                r.rps.map_or("-".into(), |x| format!(
                    "{}–{}",
                    thousands(x.min),
                    thousands(x.max)
                )),
                opt(r.ratio, times),
                pair(r.loaded_p50, r.loaded_p99),
                pair(r.single_p50, r.single_p99),
                opt(r.cpu_us, |x| format!("{x:.1}")),
                opt(r.peak_kib.map(|k| k as f64 / 1024.0), |x| format!("{x:.1}")),
                checks,
            );
        }
        for (kind, why) in &self.results.skipped {
            let _ = writeln!(s, "| {} | {why} | | | | | | | |", kind.label());
        }
        let cpu: Vec<&Cpu> = self.results.rounds.iter().map(|r| &r.cpu).collect();
        if !cpu.is_empty() {
            let max = |f: &dyn Fn(&Cpu) -> f64| cpu.iter().map(|c| f(c)).fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "\nDuring the measured h2load runs: server CPU up to {:.0}% of its core, h2load up to \
                 {:.0}% of its core; other processes on the machine up to {:.0}% of a core{}.",
                max(&|c| c.cpu_share) * 100.0,
                max(&|c| c.h2load_share) * 100.0,
                max(&|c| c.others_share) * 100.0,
                match self.disturbed_rounds() {
                    0 => String::new(),
                    n => format!(
                        " (NOT a quiet machine: more than {:.0}% of a core in {n} of {} runs; \
                         those numbers are disturbed)",
                        DISTURBED_CORES * 100.0,
                        cpu.len()
                    ),
                }
            );
        }

        let _ = write!(
            s,
            "\nMemory: RSS of a fresh server after 1 s; then with {} idle HTTP/2 connections \
             (each: preface, SETTINGS, one PING round trip), 1 s later; then 1 s after closing them.\n\n\
             | server | idle RSS MiB | + {} idle connections MiB | KiB per connection | RSS after closing MiB |\n\
             |---|--:|--:|--:|--:|\n",
            thousands(IDLE_CONNECTIONS as f64),
            thousands(IDLE_CONNECTIONS as f64),
        );
        for i in &self.results.idle {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                i.kind.label(),
                i.idle_kib as f64 / 1024.0,
                i.added_kib() as f64 / 1024.0,
                i.added_kib() as f64 / i.connections as f64,
                i.after_close_kib as f64 / 1024.0,
            );
        }

        let (search, st) = (&self.results.search, &self.results.streams);
        let _ = write!(
            s,
            "\nStreaming RPCs, our server only (the peers serve getOrder alone), load from `client bench`:\n\n\
             | RPC | shape | throughput | p50 / p99 µs per call | server CPU µs | checks |\n|---|---|--:|--:|--:|---|\n"
        );
        let _ = writeln!(
            s,
            "| searchOrders(\"{}\") over {} stored orders | 1 connection, {} streams one after another | \
             {} orders/s; server RSS {:.1} → peak {:.1} MiB (+{:.1}, {} samples every {} ms) | {} / {} | \
             {:.2} per order | {}/{} orders{} |",
            search.query,
            thousands(search.orders as f64),
            search.result.calls,
            thousands(search.result.messages_per_second),
            search.base_kib as f64 / 1024.0,
            search.peak_kib as f64 / 1024.0,
            search.growth_kib() as f64 / 1024.0,
            search.samples,
            RSS_SAMPLE.as_millis(),
            thousands(search.result.p50_us as f64),
            thousands(search.result.p99_us as f64),
            search.cpu_us_per_order,
            thousands(search.result.messages as f64),
            thousands(search.expected_messages as f64),
            if search.verified {
                ", each matching"
            } else {
                ": NOT VERIFIED"
            },
        );
        let checks = |b: &ClientBench| {
            format!(
                "{} right, {} wrong, {} errors",
                thousands(b.ok as f64),
                b.wrong,
                b.errors
            )
        };
        let _ = writeln!(
            s,
            "| processOrders | {} connections × {} streams, 3 ids each | {} calls/s, {} shipments/s | {} / {} | {:.1} per call | {} |",
            st.process.raw["connections"],
            st.process.raw["concurrency"],
            thousands(st.process.calls_per_second),
            thousands(st.process.messages_per_second),
            thousands(st.process.p50_us as f64),
            thousands(st.process.p99_us as f64),
            st.process_cpu_us,
            checks(&st.process),
        );
        let _ = writeln!(
            s,
            "| updateOrders (durable: one fsync'd commit per call) | {} connections × {} callers, {} orders each | \
             {} calls/s = {} orders/s | {} / {} | {:.1} per call | {} |",
            st.update.raw["connections"],
            st.update.raw["concurrency"],
            st.update_batch,
            thousands(st.update.calls_per_second),
            thousands(st.update.calls_per_second * st.update_batch as f64),
            thousands(st.update.p50_us as f64),
            thousands(st.update.p99_us as f64),
            st.update_cpu_us,
            checks(&st.update),
        );
        s
    }

    /// One line per target: PASS/MISS/SKIP/INFO, the value, the goal, the gap.
    pub fn targets_text(&self) -> String {
        let mut s = String::from("Targets (our server as shipped: durable store, info logging):\n");
        let disturbed = self.disturbed_rounds();
        if disturbed > 0 {
            let _ = writeln!(
                s,
                "  WARNING: in {disturbed} of {} getOrder runs other processes used more than {:.0}% \
                 of a core: the machine was not quiet, rerun for numbers to quote",
                self.results.rounds.len(),
                DISTURBED_CORES * 100.0
            );
        }
        for t in &self.targets {
            let tag = match t.verdict {
                Verdict::Pass => "PASS",
                Verdict::Miss => "MISS",
                Verdict::Skip => "SKIP",
                Verdict::Info => "INFO",
            };
            let _ = match t.verdict {
                Verdict::Pass => {
                    writeln!(s, "  {tag}  {}: {} (target {})", t.what, t.measured, t.goal)
                }
                Verdict::Miss => writeln!(
                    s,
                    "  {tag}  {}: {} (target {}): {}",
                    t.what, t.measured, t.goal, t.gap
                ),
                Verdict::Skip | Verdict::Info => writeln!(s, "  {tag}  {}: {}", t.what, t.measured),
            };
        }
        s
    }

    /// The commands as run, made readable: paths relative to the repo,
    /// the temp dir as $WORK, ephemeral ports as $PORT; each shape once.
    pub fn commands_readable(&self) -> Vec<String> {
        let root = format!("{}/", self.results.root.display());
        let work = self.results.work.display().to_string();
        let mut seen = Vec::new();
        for c in &self.results.commands {
            let c = ports_as_placeholder(&c.replace(&work, "$WORK").replace(&root, ""));
            // `cargo xtask` runs us with $CARGO = the toolchain's cargo.
            let c = match c.split_once(' ') {
                Some((program, rest)) if program.ends_with("/cargo") => format!("cargo {rest}"),
                _ => c,
            };
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        seen
    }

    pub fn json_pretty(&self) -> String {
        let r = self.results;
        let client = |b: &ClientBench| b.raw.clone();
        let rounds: Vec<Value> = r
            .rounds
            .iter()
            .map(|x| {
                json!({
                    "server": x.kind.key(),
                    "round": x.round,
                    "verified": x.verified(),
                    "h2load_warm_up": {
                        "requests_per_second": x.warm_up.requests_per_second,
                        "succeeded": x.warm_up.succeeded,
                        "failed": x.warm_up.failed,
                        "errored": x.warm_up.errored,
                        "timeout": x.warm_up.timeout,
                        "data_bytes": x.warm_up.data_bytes,
                        "data_bytes_expected": WARM_UP_REQUESTS * r.answer_bytes,
                    },
                    "h2load": {
                        "requests_per_second": x.h2load.requests_per_second,
                        "seconds": x.h2load.seconds,
                        "total": x.h2load.total,
                        "started": x.h2load.started,
                        "done": x.h2load.done,
                        "succeeded": x.h2load.succeeded,
                        "failed": x.h2load.failed,
                        "errored": x.h2load.errored,
                        "timeout": x.h2load.timeout,
                        "data_bytes": x.h2load.data_bytes,
                        "data_bytes_for_succeeded": x.h2load.succeeded * r.answer_bytes,
                        "answers_in_flight_tail": x.h2load.tail_answers(r.answer_bytes),
                        "data_ok": x.data_ok,
                    },
                    "server_cpu": {
                        "ticks": x.cpu.ticks,
                        "clk_tck": x.cpu.clk_tck,
                        "window_seconds": x.cpu.window_seconds,
                        "cpu_share": x.cpu.cpu_share,
                        "us_per_request": x.cpu.us_per_request,
                        "h2load_cpu_share": x.cpu.h2load_share,
                        "other_processes_cpu_share": x.cpu.others_share,
                    },
                    "verify_client_bench": client(&x.verify),
                    "latency_client_bench_50x10": client(&x.loaded),
                    "latency_client_bench_1x1": client(&x.single),
                    "peak_rss_kib": x.peak_kib,
                    "server_log_bytes": x.log_bytes,
                })
            })
            .collect();
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|x| {
                json!({
                    "server": x.kind.key(),
                    "label": x.kind.label(),
                    "runs": x.runs,
                    "verified_runs": x.verified,
                    "rps_median": x.rps.map(|s| s.median),
                    "rps_min": x.rps.map(|s| s.min),
                    "rps_max": x.rps.map(|s| s.max),
                    "ours_over_this": x.ratio,
                    "ours_over_this_by_round": x.ratios_by_round,
                    "p50_us_50x10": x.loaded_p50,
                    "p99_us_50x10": x.loaded_p99,
                    "p50_us_1x1": x.single_p50,
                    "p99_us_1x1": x.single_p99,
                    "client_calls_per_second_50x10": x.client_rps,
                    "server_cpu_us_per_request": x.cpu_us,
                    "peak_rss_kib": x.peak_kib,
                })
            })
            .collect();
        let idle: Vec<Value> = r
            .idle
            .iter()
            .map(|i| {
                json!({
                    "server": i.kind.key(),
                    "idle_rss_kib": i.idle_kib,
                    "connections": i.connections,
                    "with_connections_rss_kib": i.with_connections_kib,
                    "after_close_rss_kib": i.after_close_kib,
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                json!({
                    "verdict": format!("{:?}", t.verdict).to_uppercase(),
                    "what": t.what,
                    "measured": t.measured,
                    "target": t.goal,
                    "gap": (t.verdict == Verdict::Miss).then_some(&t.gap),
                })
            })
            .collect();
        let s = &r.search;
        let value = json!({
            "date": r.date,
            "machine": r.machine,
            "options": { "rounds": r.rounds_asked, "seconds": r.seconds, "quick": r.quick },
            "skipped": r.skipped.iter().map(|(k, why)| json!({"server": k.key(), "why": why})).collect::<Vec<_>>(),
            "answer_bytes": r.answer_bytes,
            "summary": rows,
            "targets": targets,
            "rounds": rounds,
            "idle": idle,
            "search": {
                "orders": s.orders,
                "query": s.query,
                "load_seconds": s.load_seconds,
                "expected_messages": s.expected_messages,
                "verified": s.verified,
                "rss_base_kib": s.base_kib,
                "rss_peak_kib": s.peak_kib,
                "rss_samples": s.samples,
                "server_cpu_us_per_order": s.cpu_us_per_order,
                "client_bench": client(&s.result),
            },
            "process_orders": {
                "args": r.streams.process_args,
                "server_cpu_us_per_call": r.streams.process_cpu_us,
                "client_bench": client(&r.streams.process),
            },
            "update_orders": {
                "args": r.streams.update_args,
                "orders_per_call": r.streams.update_batch,
                "server_cpu_us_per_call": r.streams.update_cpu_us,
                "client_bench": client(&r.streams.update),
            },
            "commands": self.commands_readable(),
            "commands_as_run": r.commands,
        });
        let mut text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        text.push('\n');
        text
    }

    /// BENCHMARKS.md: machine, date, method, tables, chart, targets, commands.
    pub fn report_markdown(&self) -> String {
        let r = self.results;
        let m = &r.machine;
        let field = |k: &str| match &m[k] {
            _ if k == "loadavg" => format!(
                "{} / {}",
                m["loadavg_at_start"].as_str().unwrap_or("-"),
                m["loadavg_at_end"].as_str().unwrap_or("-")
            ),
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        let mut s = String::from("# Benchmarks\n\n");
        let _ = writeln!(
            s,
            "Every number here comes from one run of `cargo xtask bench --write-report` \
             ({} round(s) x {} s{}) on {}; the raw numbers, per round, are in \
             [bench-results.json](bench-results.json). To measure again: `make bench` \
             (prints the same tables; add `--write-report` to rewrite this file).\n",
            r.rounds_asked,
            r.seconds,
            if r.quick {
                ", --quick: a smoke test, not a measurement"
            } else {
                ""
            },
            r.date
        );
        s.push_str("## Machine\n\n| | |\n|---|---|\n");
        for (label, key) in [
            ("cores (`nproc --all`)", "nproc"),
            ("CPU", "cpu"),
            ("memory GiB", "memory_gib"),
            ("kernel", "kernel"),
            ("rustc", "rustc"),
            ("tonic", "tonic"),
            ("h2load", "h2load"),
            ("load average at start / end (1, 5, 15 min)", "loadavg"),
            ("Python peer", "python"),
            ("Node peer", "node"),
        ] {
            let _ = writeln!(s, "| {label} | {} |", field(key));
        }
        let _ = write!(
            s,
            "\n## Method\n\n\
             - Servers: ours (`target/release/server`, as shipped: a fresh durable store in a temp \
             `--data-dir`, info logging to a file), the bare tonic server built from the same generated \
             code (`examples/bare_server.rs`, multi-thread and `--current-thread`), the Python grpcio \
             server of the interop tests (`tests/interop/peer_server.py`) and a Node @grpc/grpc-js \
             server (`tests/load/node/server.js`). All answer getOrder(\"{ORDER_ID}\") with the same order.\n\
             - Each server runs pinned to core {SERVER_CORE} (`taskset -c {SERVER_CORE}`), each load \
             generator to core {LOAD_CORE}; everything on 127.0.0.1. Every measurement starts a fresh \
             server process; within a round the servers take turns, and the rounds repeat that.\n\
             - Throughput: h2load (nghttp2) posting one gRPC frame of StringValue(\"{ORDER_ID}\"), \
             after a warm-up h2load run of the same shape for {warm} requests (a run of its own, not \
             `--warm-up-time`: h2load 1.52 counts the warm-up's DATA bytes but not its requests). \
             h2load cannot see grpc-status, so a round counts only if (1) the warm-up's DATA bytes are \
             exactly {warm} × {b} B (5-byte prefix + the order; an error is trailers-only, with no \
             DATA); (2) the measured run's DATA bytes are whole orders, one for every answer, plus at \
             most one for each stream still in flight at the deadline (grpc-js writes DATA and trailers \
             separately); (3) `client bench --count {VERIFY_CALLS}` (which compares every answer with \
             order {ORDER_ID}) got {VERIFY_CALLS} right answers from the same process.\n\
             - Server CPU per request: utime+stime from /proc/PID/stat, sampled inside h2load's \
             measurement period, ÷ the period ÷ h2load's req/s. Peak RSS: VmHWM at the end of the \
             round (all its load). Idle RSS and connections: VmRSS. Other processes' CPU: \
             /proc/stat's busy ticks minus the server's and h2load's, over the same period.\n\
             - Streaming (our server only): the searchOrders data set ({orders} orders, each with an \
             item containing \"{query}\") is written into a fresh data dir by the bench itself \
             (`examples/bulk_load`: `RedbStore::insert_many`, one transaction per 10,000 orders), then our server starts on it; the server's \
             VmRSS is sampled every {sample} ms while the streams run.\n\n",
            warm = thousands(WARM_UP_REQUESTS as f64),
            b = r.answer_bytes,
            orders = thousands(r.search.orders as f64),
            query = r.search.query,
            sample = RSS_SAMPLE.as_millis(),
        );
        s.push_str("## Results\n\n");
        s.push_str(&self.tables_markdown());
        s.push_str("\n![requests/s and p99 latency per server](benchmarks.svg)\n\n");
        s.push_str("## Targets\n\n```text\n");
        s.push_str(&self.targets_text());
        s.push_str(
            "```\n\n## Profile\n\nWhat one getOrder costs each server in instructions \
             (callgrind: exact and repeatable, where requests/s on a shared machine are not), and \
             where our server's go: [PROFILE.md](PROFILE.md), from `cargo xtask profile \
             --write-report` (`make profile`).\n",
        );
        s.push_str("\n## Commands\n\nAs run, in order (`$WORK` is the run's temp dir, `$PORT` the server's ephemeral port):\n\n```sh\n");
        for c in self.commands_readable() {
            let _ = writeln!(s, "{c}");
        }
        s.push_str("```\n");
        s
    }
}

/// `127.0.0.1:41234` -> `127.0.0.1:$PORT`; `127.0.0.1:0` stays.
fn ports_as_placeholder(line: &str) -> String {
    const HOST: &str = "127.0.0.1:";
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(HOST) {
        out.push_str(&rest[..i + HOST.len()]);
        rest = &rest[i + HOST.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && &rest[..digits] != "0" {
            out.push_str("$PORT");
        } else {
            out.push_str(&rest[..digits]);
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[1.0, 4.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(
            ports_as_placeholder("h2load http://127.0.0.1:41234/x --listen 127.0.0.1:0"),
            "h2load http://127.0.0.1:$PORT/x --listen 127.0.0.1:0"
        );
    }

    #[test]
    fn misses_say_by_how_much() {
        let t = at_least("ratio".into(), 0.9, 1.0, times);
        assert_eq!(t.verdict, Verdict::Miss);
        assert_eq!(t.gap, "short by 0.100x (10.0% below the target)");
        let t = at_least("ratio".into(), 0.9952, 1.0, times);
        assert_eq!((t.measured.as_str(), t.verdict), ("0.995x", Verdict::Miss));
        assert_eq!(t.gap, "short by 0.005x (0.5% below the target)");
        let t = at_most("cpu".into(), 9.1, 7.0, us);
        assert_eq!(t.gap, "over by 2.1 us (30.0% above the target)");
        assert_eq!(at_most("cpu".into(), 7.0, 7.0, us).verdict, Verdict::Pass);
    }
}
