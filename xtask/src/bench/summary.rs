//! From raw measurements to what a reader is told: one row per server
//! (medians and ranges over its verified rounds, ours ÷ it) and the targets
//! with PASS/MISS and by how much.

use super::config::{CONNECTIONS, Kind, STREAMS_PER_CONNECTION};
use super::numbers::{mib, thousands, times, us};
use super::results::{BackendRun, Results, Round, SizePoint};
use super::targets::{at_least, at_most, info, skip};

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

pub use super::targets::{Target, Verdict};

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

/// The targets, in the order they are printed: getOrder throughput against
/// each peer, our CPU and latency, the streams, memory.
fn targets(results: &Results, rows: &[Row]) -> Vec<Target> {
    let mut out = peer_targets(results, rows);
    let ours = rows.iter().find(|r| r.kind == Kind::Ours);
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
    out.extend(stream_targets(results));
    out.extend(memory_targets(results));
    let rps = |k: Kind| rows.iter().find(|r| r.kind == k).and_then(|r| r.rps);
    out.extend(super::targets::baseline_targets(
        results,
        rps(Kind::Ours).map(|s| s.median),
        rps(Kind::Bare).map(|s| s.median),
    ));
    out.extend(super::targets::insert_targets(results));
    out.extend(super::targets::scaling_targets(results));
    out.extend(super::targets::backend_targets(results));
    out
}

/// Ours ÷ each peer, getOrder req/s: medians of the same run.
fn peer_targets(results: &Results, rows: &[Row]) -> Vec<Target> {
    let find = |k: Kind| rows.iter().find(|r| r.kind == k);
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
    out
}

/// searchOrders throughput and RSS growth; processOrders and updateOrders
/// as measured.
fn stream_targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
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
    out
}

/// Our idle RSS, and what 1,000 idle connections add to it.
fn memory_targets(results: &Results) -> [Target; 2] {
    let idle = results.idle.iter().find(|i| i.kind == Kind::Ours);
    [
        match idle {
            Some(i) => at_most("idle RSS".into(), i.idle_kib as f64, 32.0 * 1024.0, mib),
            None => skip("idle RSS".into(), "not measured".into()),
        },
        match idle {
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
        },
    ]
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
        let r = self.results;
        r.rounds.iter().all(Round::verified)
            && r.search.verified
            && r.streams.process.all_ok()
            && r.streams.update.all_ok()
            && r.inserts.loaded.bench.all_ok()
            && r.inserts.single.bench.all_ok()
            && r.scaling
                .as_ref()
                .map_or(true, |s| s.points.iter().all(SizePoint::verified))
            && r.backends
                .as_ref()
                .map_or(true, |b| b.runs.iter().all(BackendRun::verified))
    }
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
