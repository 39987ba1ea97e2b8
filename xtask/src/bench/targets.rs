//! What a reader is told about each number: a target with PASS/MISS (and
//! by how much), SKIP (and why) or INFO; and the targets of the series
//! added after the getOrder rounds (issues 14 and 15): getOrder against
//! the last report, durable inserts against PostgreSQL and the disk, the
//! store-size series, the PostgreSQL store against the embedded one.

use super::config::{ADD_CONCURRENCY, ADD_CONNECTIONS, TARGET_STORE_SIZE};
use super::numbers::{mib, thousands, times};
use super::results::{BackendRun, Results};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    Skip,
    Info,
}

impl Verdict {
    /// As the targets text and bench-results.json print it.
    pub fn tag(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Skip => "SKIP",
            Verdict::Info => "INFO",
        }
    }
}

pub struct Target {
    pub verdict: Verdict,
    pub what: String,
    pub measured: String,
    pub goal: String,
    /// By how much a MISS missed.
    pub gap: String,
}

pub fn pass_or_miss(pass: bool) -> Verdict {
    if pass { Verdict::Pass } else { Verdict::Miss }
}

/// value >= goal; a miss says how far short, absolute and relative.
pub fn at_least(what: String, value: f64, goal: f64, show: impl Fn(f64) -> String) -> Target {
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
pub fn at_most(what: String, value: f64, goal: f64, show: impl Fn(f64) -> String) -> Target {
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

pub fn skip(what: String, why: String) -> Target {
    Target {
        verdict: Verdict::Skip,
        what,
        measured: why,
        goal: String::new(),
        gap: String::new(),
    }
}

pub fn info(what: String, measured: String) -> Target {
    Target {
        verdict: Verdict::Info,
        what,
        measured,
        goal: "measured and reported".into(),
        gap: String::new(),
    }
}

/// Issue 15 sets no numbers: PostgreSQL ÷ embedded, as measured.
pub fn backend_targets(results: &Results) -> Vec<Target> {
    let what = "our server on PostgreSQL / on the embedded store (same orders, same run)";
    let b = match &results.backends {
        Ok(b) => b,
        Err(why) => return vec![skip(what.into(), why.clone())],
    };
    let Some(embedded) = b.runs.iter().find(|r| r.backend == "embedded") else {
        return vec![skip(what.into(), "no embedded run".into())];
    };
    b.runs
        .iter()
        .filter(|r| r.backend != "embedded")
        .map(|r| {
            let rare = |x: &BackendRun| {
                super::results::median(
                    &x.rare_server_us.iter().map(|&u| u as f64).collect::<Vec<_>>(),
                )
            };
            let ratio = |a: f64, b: f64| times(a / b.max(1e-9));
            info(
                format!(
                    "PostgreSQL with {} replica{} / embedded (1 process), {} orders",
                    r.replicas,
                    if r.replicas == 1 { "" } else { "s" },
                    thousands(b.orders as f64)
                ),
                format!(
                    "getOrder calls/s {}, CPU/call {}; addOrder calls/s {}, CPU/call {}; rare-term search \
                     server time {}{}",
                    ratio(r.get.calls_per_second(), embedded.get.calls_per_second()),
                    ratio(r.get.cpu_us().0, embedded.get.cpu_us().0),
                    ratio(r.add.calls_per_second(), embedded.add.calls_per_second()),
                    ratio(r.add.cpu_us().0, embedded.add.cpu_us().0),
                    match (rare(r), rare(embedded)) {
                        (Some(a), Some(e)) => ratio(a, e),
                        _ => "-".into(),
                    },
                    if r.verified() && embedded.verified() {
                        ""
                    } else {
                        " (NOT all verified: see the table)"
                    }
                ),
            )
        })
        .collect()
}

/// The getOrder throughput must stay within 5% of the last report's.
pub const BASELINE_SHARE: f64 = 0.95;
/// Ours at 10x10 ÷ PostgreSQL at 10 clients: the target and the stretch.
pub const INSERT_RATIO: f64 = 1.0;
pub const INSERT_STRETCH: f64 = 2.0;
/// Our 1x1 addOrder p50, in fdatasyncs.
pub const FDATASYNCS_PER_ADD: f64 = 2.0;
/// At TARGET_STORE_SIZE: rare-term searchOrders server time (us), orders
/// streamed per second, start-up (s), RSS under getOrder (KiB).
pub const RARE_SEARCH_US: f64 = 5_000.0;
pub const MATCH_ALL_PER_SECOND: f64 = 1_000_000.0;
pub const START_UP_SECONDS: f64 = 0.3;
pub const RSS_UNDER_LOAD_KIB: f64 = 64.0 * 1024.0;

/// Ours now ÷ ours in the last report (medians of h2load's getOrder req/s).
pub fn baseline_targets(results: &Results, ours: Option<f64>, bare: Option<f64>) -> Vec<Target> {
    let what = "getOrder req/s (h2load), ours now / ours in the last report".to_owned();
    let Some(base) = &results.baseline else {
        return vec![skip(
            what,
            "no earlier docs/bench/bench-results.json".into(),
        )];
    };
    let Some(ours) = ours else {
        return vec![skip(what, "no verified run of our server".into())];
    };
    let mut target = at_least(
        format!("{what} ({}: {})", base.date, thousands(base.ours_rps)),
        ours / base.ours_rps,
        BASELINE_SHARE,
        times,
    );
    target.measured = format!("{} ({} req/s)", target.measured, thousands(ours));
    let mut out = vec![target];
    if let (Some(bare), Some(bare_then)) = (bare, base.bare_rps) {
        out.push(info(
            "ours / bare tonic (multi-thread), now and in the last report".into(),
            format!(
                "{} now, {} then (bare tonic {} req/s now, {} then: how much of a change is the machine's)",
                times(ours / bare),
                times(base.ours_rps / bare_then),
                thousands(bare),
                thousands(bare_then)
            ),
        ));
    }
    out
}

/// addOrder against PostgreSQL's inserts and the disk's fdatasync.
pub fn insert_targets(results: &Results) -> Vec<Target> {
    let ins = &results.inserts;
    let mut out = Vec::new();
    let what = format!(
        "addOrder calls/s at {ADD_CONNECTIONS}x{ADD_CONCURRENCY} / PostgreSQL inserts/s at 10 clients \
         (pgbench, same run)"
    );
    let pg10 = match &ins.postgres {
        Ok(pg) => pg
            .at(10)
            .ok_or_else(|| "no pgbench run at 10 clients".to_owned()),
        Err(why) => Err(format!("PostgreSQL {why}")),
    };
    match (&pg10, ins.loaded.bench.all_ok()) {
        (Ok(pg), true) => {
            let ratio = ins.loaded.bench.calls_per_second / pg.tps;
            let detail = format!(
                " ({} vs {} per second)",
                thousands(ins.loaded.bench.calls_per_second),
                thousands(pg.tps)
            );
            for (goal, label) in [(INSERT_RATIO, ""), (INSERT_STRETCH, " (stretch)")] {
                let mut t = at_least(format!("{what}{label}"), ratio, goal, times);
                t.measured.push_str(&detail);
                out.push(t);
            }
        }
        (Err(why), _) => out.push(skip(what, why.clone())),
        (_, false) => out.push(skip(what, "our addOrder run was not verified".into())),
    }
    let what = "addOrder p50 latency at 1x1 / one fdatasync (pg_test_fsync, same disk, same run)";
    out.push(match (&ins.fsync, ins.single.bench.all_ok()) {
        (Ok(f), true) => {
            let p50 = ins.single.bench.p50_us as f64;
            let mut t = at_most(what.into(), p50 / f.us_per_op, FDATASYNCS_PER_ADD, |x| {
                format!("{x:.2} fdatasyncs")
            });
            t.measured = format!(
                "{} (p50 {} us, fdatasync {:.0} us)",
                t.measured,
                thousands(p50),
                f.us_per_op
            );
            t
        }
        (Err(why), _) => skip(what.into(), why.clone()),
        (_, false) => skip(what.into(), "our addOrder run was not verified".into()),
    });
    if let (Ok(pg), true) = (&ins.postgres, ins.single.bench.all_ok())
        && let Some(pg1) = pg.at(1)
    {
        out.push(info(
            "addOrder at 1x1 / PostgreSQL at 1 client".into(),
            format!(
                "{} ({} vs {} per second)",
                times(ins.single.bench.calls_per_second / pg1.tps),
                thousands(ins.single.bench.calls_per_second),
                thousands(pg1.tps)
            ),
        ));
    }
    out
}

/// The store-size targets, at TARGET_STORE_SIZE (or, when the run has no
/// store that large, at its largest, said so).
pub fn scaling_targets(results: &Results) -> Vec<Target> {
    let names = [
        "searchOrders server time for a term in 1 order (median)",
        "searchOrders for a term in every order, orders streamed",
        "start-up, spawn to `listening on` (median)",
        "RSS under getOrder load",
    ];
    let scaling = match &results.scaling {
        Ok(s) => s,
        Err(why) => {
            return names
                .iter()
                .map(|n| skip((*n).into(), why.clone()))
                .collect();
        }
    };
    let point = scaling
        .points
        .iter()
        .find(|p| p.store.orders == TARGET_STORE_SIZE)
        .or_else(|| scaling.points.iter().max_by_key(|p| p.store.orders));
    let Some(p) = point else {
        return names
            .iter()
            .map(|n| skip((*n).into(), "no store measured".into()))
            .collect();
    };
    let at = if p.store.orders == TARGET_STORE_SIZE {
        format!(" at {} orders", thousands(p.store.orders as f64))
    } else {
        format!(
            " at {} orders (no {}-order store in this run)",
            thousands(p.store.orders as f64),
            thousands(TARGET_STORE_SIZE as f64)
        )
    };
    let with = |i: usize| format!("{}{at}", names[i]);
    let ms = |x: f64| format!("{:.2} ms", x / 1e3);
    let per_second = |x: f64| format!("{} orders/s", thousands(x));
    vec![
        match (p.rare_verified(), p.rare_server_median_us()) {
            (true, Some(us)) => at_most(with(0), us, RARE_SEARCH_US, ms),
            _ => skip(
                with(0),
                "the rare-term calls were not verified (see the table)".into(),
            ),
        },
        if p.all_verified() {
            at_least(
                with(1),
                p.all.messages_per_second,
                MATCH_ALL_PER_SECOND,
                per_second,
            )
        } else {
            skip(
                with(1),
                "the streams were not verified (see the table)".into(),
            )
        },
        match p.start_up_median() {
            Some(s) => at_most(with(2), s, START_UP_SECONDS, |x| format!("{x:.3} s")),
            None => skip(with(2), "not measured".into()),
        },
        at_most(with(3), p.get_peak_kib as f64, RSS_UNDER_LOAD_KIB, mib),
        info(
            format!("bulk load{at}"),
            format!(
                "{:.1} s ({}), data file {:.1} MiB",
                p.store.load_seconds,
                if p.store.loaded_now {
                    "this run"
                } else {
                    "cached from an earlier run"
                },
                p.store.bytes as f64 / 1024.0 / 1024.0
            ),
        ),
    ]
}
