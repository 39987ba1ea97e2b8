//! The store-size series: our server on bulk-loaded stores of each size
//! (`--store-sizes`), each store loaded once and cached (see [`stores`]).
//! Per store: the time from spawning the server to its `listening on`
//! line (several starts); then, on one more start, getOrder load with the
//! server's RSS sampled meanwhile; then, on another, searchOrders for a
//! term only one order has (the server's own time per call, from its call
//! log) and for a term every order has (orders streamed per second, and
//! the RSS the streaming takes).
//! Every server on a store is stopped with SIGTERM, so that the store is
//! closed cleanly for the next start.
//!
//! [`stores`]: super::stores

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::config::{
    CONNECTIONS, MATCH_ALL_QUERY, MATCH_ALL_STREAMS, RARE_SEARCH_CALLS, STARTS,
    STREAMS_PER_CONNECTION,
};
use super::loadgen::args;
use super::measure::{Rig, mib};
use super::results::{Scaling, SizePoint, StoreFile, median};

/// How long a server may take to open a store and listen (the old store
/// loaded every order at start).
const READY_WITHIN: Duration = Duration::from_secs(900);
/// The method of searchOrders' log lines.
pub const SEARCH_METHOD: &str = "/ecommerce.OrderManagement/searchOrders";

/// The series over `stores`, smallest first.
pub fn series(rig: &mut Rig, stores: &[StoreFile], get_seconds: u64) -> Result<Scaling> {
    let mut points = Vec::new();
    for store in stores {
        points.push(point(rig, store, get_seconds)?);
    }
    Ok(Scaling {
        points,
        get_seconds,
    })
}

/// The index of the order that alone has the rare term: its number written
/// with as many digits as the largest index, all sevens (`widget 77777`
/// in 100k orders: `widget <n>` contains it only for n = 77777, since any
/// longer number starting with it is past the end). The largest index
/// itself when the sevens are past it.
pub fn rare_index(orders: usize) -> usize {
    let last = orders.saturating_sub(1);
    let digits = last.to_string().len();
    let sevens: usize = "7".repeat(digits).parse().unwrap_or(usize::MAX);
    if sevens <= last { sevens } else { last }
}

/// The searchOrders query that matches only order `rare_index`.
pub fn rare_query(orders: usize) -> String {
    format!("widget {}", rare_index(orders))
}

fn point(rig: &mut Rig, store: &StoreFile, get_seconds: u64) -> Result<SizePoint> {
    let n = store.orders;
    rig.progress.step(&format!(
        "scaling: {n} orders ({:.1} MiB): {STARTS} starts, getOrder load, rare and match-all searchOrders",
        mib(store.bytes / 1024)
    ));
    rig.stores.check_out(store)?;
    let mut stopped_cleanly = true;
    let mut start_up_seconds = Vec::new();
    for _ in 0..STARTS {
        let (server, took) = rig.servers.start_on(&store.dir, READY_WITHIN)?;
        start_up_seconds.push(took.as_secs_f64());
        stopped_cleanly &= server.stop();
    }
    rig.progress.note(&format!(
        "start-up (spawn to `listening on`): {}",
        start_up_seconds
            .iter()
            .map(|s| format!("{:.0} ms", s * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // getOrder load on a server of its own: its RSS is what getOrder
    // needs, not what the searches below leave behind.
    let (server, _) = rig.servers.start_on(&store.dir, READY_WITHIN)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_at_start_kib = server.kib("VmRSS")?;
    let get_id = format!("bulk-{:07}", rare_index(n));
    let get_args = args(&[
        "--rpc",
        "get",
        "--order-id",
        &get_id,
        "--connections",
        &CONNECTIONS.to_string(),
        "--concurrency",
        &STREAMS_PER_CONNECTION.to_string(),
        "--seconds",
        &get_seconds.to_string(),
    ]);
    let (get, get_peak_kib, get_samples) =
        rig.sampling_rss(&server, &get_args, Duration::from_secs(get_seconds + 60), 0)?;
    rig.progress.note(&format!(
        "getOrder(\"{get_id}\") at {CONNECTIONS}x{STREAMS_PER_CONNECTION}: {:.0} calls/s; RSS {:.1} MiB at \
         start, max {:.1} MiB under getOrder ({get_samples} samples)",
        get.calls_per_second,
        mib(rss_at_start_kib),
        mib(get_peak_kib),
    ));
    stopped_cleanly &= server.stop();

    let (server, _) = rig.servers.start_on(&store.dir, READY_WITHIN)?;
    let rare_query = rare_query(n);
    let rare = rig.loadgen_bench(
        &server,
        &args(&[
            "--rpc",
            "search",
            "--query",
            &rare_query,
            "--connections",
            "1",
            "--concurrency",
            "1",
            "--count",
            &RARE_SEARCH_CALLS.to_string(),
            "--seconds",
            "600",
        ]),
        Duration::from_secs(660),
    )?;
    let rare_server_us = logged_durations(&server.log, SEARCH_METHOD, rare.calls as usize)?;
    rig.progress.note(&format!(
        "searchOrders(\"{rare_query}\") x {}: server median {} us (logged {} calls), client p50 {} us; \
         {} orders in all",
        rare.calls,
        median(&rare_server_us.iter().map(|&u| u as f64).collect::<Vec<_>>())
            .map_or("-".into(), |m| format!("{m:.0}")),
        rare_server_us.len(),
        rare.p50_us,
        rare.messages
    ));

    let all_expected = MATCH_ALL_STREAMS * n as u64;
    let all_args = args(&[
        "--rpc",
        "search",
        "--query",
        MATCH_ALL_QUERY,
        "--connections",
        "1",
        "--concurrency",
        "1",
        "--count",
        &MATCH_ALL_STREAMS.to_string(),
        "--seconds",
        "3600",
    ]);
    let before_kib = server.kib("VmRSS")?;
    let (all, all_peak_kib, _) =
        rig.sampling_rss(&server, &all_args, Duration::from_secs(3700), before_kib)?;
    let hwm_kib = server.kib("VmHWM")?;
    rig.progress.note(&format!(
        "searchOrders(\"{MATCH_ALL_QUERY}\") x {MATCH_ALL_STREAMS}: {:.0} orders/s ({} of {all_expected}); \
         RSS {:.1} MiB before, peak {:.1} MiB",
        all.messages_per_second,
        all.messages,
        mib(before_kib),
        mib(hwm_kib)
    ));
    stopped_cleanly &= server.stop();
    if stopped_cleanly {
        rig.stores.check_in(store)?;
    } else {
        rig.progress.note(
            "a server on this store did not stop cleanly: the store will be loaded again next run",
        );
    }
    Ok(SizePoint {
        store: store.clone(),
        start_up_seconds,
        rss_at_start_kib,
        rare_query,
        rare,
        rare_server_us,
        all_query: MATCH_ALL_QUERY.into(),
        all,
        all_expected,
        all_peak_kib,
        get,
        get_id,
        get_peak_kib,
        get_samples,
        hwm_kib,
        stopped_cleanly,
    })
}

/// The server times of `method`'s calls from its log, once `calls` of
/// them are there: the server writes its log lines from a buffer, so the
/// last lines of a run arrive a moment after the run ends. What is there
/// after 5 s otherwise.
fn logged_durations(log: &Path, method: &str, calls: usize) -> Result<Vec<u64>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        let durations = call_durations(&text, method);
        if durations.len() >= calls || Instant::now() >= deadline {
            return Ok(durations);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `duration_us` of every call of `method` in a server log, in order:
/// text lines (`call ended status=Ok duration_us=52 method=/pkg.Svc/m`,
/// ANSI colours or not) and JSON lines (`"fields":{"duration_us":52,
/// "method":"/pkg.Svc/m"}`).
pub fn call_durations(log: &str, method: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| {
            if line.trim_start().starts_with('{') {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let f = &v["fields"];
                (f["method"].as_str()? == method).then(|| f["duration_us"].as_u64())?
            } else {
                let plain = strip_ansi(line);
                let mut duration = None;
                let mut matches = false;
                for word in plain.split_whitespace() {
                    if let Some(d) = word.strip_prefix("duration_us=") {
                        duration = d.parse().ok();
                    } else if let Some(m) = word.strip_prefix("method=") {
                        matches = m.trim_matches('"') == method;
                    }
                }
                duration.filter(|_| matches)
            }
        })
        .collect()
}

/// `line` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rare_term_is_in_one_order_only() {
        assert_eq!(rare_query(10_000), "widget 7777");
        assert_eq!(rare_query(1_000_000), "widget 777777");
        assert_eq!(rare_query(10_000_000), "widget 7777777");
        assert_eq!(rare_index(50_000), 49_999);
        assert_eq!(rare_index(77_778), 77_777);
        // Brute force: exactly one "widget <n>" contains the query.
        for orders in [10, 99, 100, 5_000, 10_000, 12_345] {
            let q = rare_query(orders);
            let hits = (0..orders)
                .filter(|n| format!("widget {n}").contains(&q))
                .count();
            assert_eq!(hits, 1, "{orders}: {q}");
        }
    }

    #[test]
    fn reads_call_durations_from_the_log() {
        let log = "\
2026-11-28T15:43:14.981211Z  INFO order_management::server: listening on 127.0.0.1:4000
2026-11-28T15:43:14.981211Z  INFO order_management::call: call ended status=Ok duration_us=52 method=/ecommerce.OrderManagement/getOrder order_id=101
2026-11-28T15:43:14.981211Z  INFO order_management::call: call ended status=Ok duration_us=1234 method=/ecommerce.OrderManagement/searchOrders peer=127.0.0.1:5
\u{1b}[32m INFO\u{1b}[0m \u{1b}[2morder_management::call\u{1b}[0m: call ended \u{1b}[3mstatus\u{1b}[0m\u{1b}[2m=\u{1b}[0mOk \u{1b}[3mduration_us\u{1b}[0m\u{1b}[2m=\u{1b}[0m77 \u{1b}[3mmethod\u{1b}[0m\u{1b}[2m=\u{1b}[0m/ecommerce.OrderManagement/searchOrders
{\"timestamp\":\"x\",\"level\":\"INFO\",\"fields\":{\"message\":\"call ended\",\"duration_us\":9,\"method\":\"/ecommerce.OrderManagement/searchOrders\"}}
{\"timestamp\":\"x\",\"level\":\"INFO\",\"fields\":{\"message\":\"call ended\",\"duration_us\":8,\"method\":\"/ecommerce.OrderManagement/getOrder\"}}
";
        assert_eq!(call_durations(log, SEARCH_METHOD), [1234, 77, 9]);
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
