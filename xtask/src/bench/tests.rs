//! The summary, the report, bench-results.json and the chart, end to end
//! on synthetic results.

use std::path::Path;

use super::config::{IDLE_CONNECTIONS, Kind, SEARCH_ORDERS, SEARCH_QUERY, VERIFY_CALLS};
use super::h2load::H2load;
use super::loadgen::{ClientBench, args};
use super::machine::Machine;
use super::results::{Cpu, Idle, Results, Round, Search, Streams};
use super::{chart, summary};

fn client(ok: u64, p50: u64, p99: u64, rate: f64) -> ClientBench {
    ClientBench {
        calls: ok,
        ok,
        messages: ok,
        calls_per_second: rate,
        messages_per_second: rate,
        p50_us: p50,
        p99_us: p99,
        raw: serde_json::json!({"connections": 4, "concurrency": 4, "ok": ok}),
        ..ClientBench::default()
    }
}

fn h2load(rps: f64, seconds: u64) -> H2load {
    let done = (rps * seconds as f64) as u64;
    H2load {
        seconds: seconds as f64,
        requests_per_second: rps,
        total: done,
        started: done + 500,
        done,
        succeeded: done,
        data_bytes: done * 69,
        ..H2load::default()
    }
}

/// One synthetic round of `kind` (Python's third not verified).
fn round(kind: Kind, round: usize) -> Round {
    let rps = match kind {
        Kind::Ours => 110_000.0,
        Kind::Bare => 100_000.0,
        Kind::BareCurrentThread => 150_000.0,
        Kind::Python => 4_500.0,
        Kind::Node => 16_000.0,
    };
    let r = rps * (1.0 + round as f64 / 100.0);
    let mut warm_up = h2load(20_000.0, 1);
    warm_up.started = 20_000;
    let mut verify = client(VERIFY_CALLS, 50, 90, 20_000.0);
    if kind == Kind::Python && round == 3 {
        verify.wrong = 1;
    }
    Round {
        kind,
        round,
        verify,
        warm_up,
        h2load: h2load(r, 10),
        data_ok: true,
        cpu: Cpu {
            ticks: 950,
            window_seconds: 9.5,
            clk_tck: 100.0,
            cpu_share: 1.0,
            us_per_request: 1e6 / r,
            h2load_share: 1.0,
            others_share: 0.02,
        },
        loaded: client(r as u64 * 10, 4_000, 9_000, r * 0.8),
        single: client(50_000, 60, 150, 15_000.0),
        peak_kib: 20_000,
        log_bytes: None,
    }
}

fn search() -> Search {
    Search {
        orders: SEARCH_ORDERS,
        query: SEARCH_QUERY.into(),
        load_seconds: 1.0,
        result: client(3, 160_000, 170_000, 2.0),
        expected_messages: 300_000,
        verified: false,
        base_kib: 80_000,
        peak_kib: 85_000,
        samples: 25,
        cpu_us_per_order: 1.5,
    }
}

fn streams() -> Streams {
    Streams {
        process: client(6_000, 40_000, 50_000, 2_000.0),
        process_args: args(&["--rpc", "process"]),
        process_cpu_us: 40.0,
        update: client(900, 45_000, 55_000, 300.0),
        update_args: args(&["--rpc", "update"]),
        update_cpu_us: 200.0,
        update_batch: 10,
    }
}

/// Synthetic results: what a run of three rounds over every server
/// (Python's last round not verified) would hand to the report.
fn results(work: &Path) -> Results {
    let rounds = (1..=3)
        .flat_map(|n| Kind::ALL.map(|kind| round(kind, n)))
        .collect();
    let idle = Kind::ALL
        .iter()
        .map(|&kind| Idle {
            kind,
            idle_kib: 16_000,
            connections: IDLE_CONNECTIONS,
            with_connections_kib: 50_000,
            after_close_kib: 40_000,
        })
        .collect();
    Results {
        date: "2026-01-01 00:00 UTC".into(),
        machine: Machine {
            nproc: "2".into(),
            cpu: "test".into(),
            loadavg_at_start: "0.1 0.1 0.1".into(),
            ..Machine::default()
        },
        rounds_asked: 3,
        seconds: 10,
        quick: false,
        kinds: Kind::ALL.to_vec(),
        skipped: Vec::new(),
        idle,
        rounds,
        search: search(),
        streams: streams(),
        answer_bytes: 69,
        commands: vec![
            "/opt/rust/bin/cargo build --release".into(),
            format!(
                "taskset -c 1 h2load -D 10 {}/get-order-101.bin http://127.0.0.1:4242/x",
                work.display()
            ),
        ],
        root: crate::project_root(),
        work: work.to_path_buf(),
    }
}

#[test]
fn summary_report_json_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let results = results(dir.path());
    let summary = summary::summarize(&results);
    let ours = &summary.rows[0];
    assert_eq!(ours.rps.unwrap().median, 112_200.0);
    let python = summary
        .rows
        .iter()
        .find(|r| r.kind == Kind::Python)
        .unwrap();
    assert_eq!((python.runs, python.verified), (3, 2));
    let bare = summary.rows.iter().find(|r| r.kind == Kind::Bare).unwrap();
    assert!((bare.ratio.unwrap() - 1.1).abs() < 1e-9);
    let targets = summary.targets_text();
    assert!(targets.contains("PASS  getOrder req/s, ours / bare tonic (multi-thread)"));
    assert!(targets.contains("MISS  getOrder req/s, ours / Python grpcio"));
    assert!(targets.contains("SKIP  searchOrders"), "{targets}");
    assert!(!targets.contains("WARNING"));
    assert!(summary.tables_markdown().contains("machine quiet in 3/3"));
    assert!(!summary.all_verified());
    let md = summary.report_markdown();
    assert!(
        md.contains("taskset -c 1 h2load -D 10 $WORK/get-order-101.bin http://127.0.0.1:$PORT/x")
    );
    assert!(md.contains("\ncargo build --release\n"));
    assert!(md.contains("![requests/s and p99 latency per server](benchmarks.svg)"));
    assert!(md.contains("| memory GiB | 0.0 |\n| kernel |  |\n"), "{md}");
    assert!(md.contains("| tonic | - |\n"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&summary.json_pretty()).unwrap();
    assert_eq!(json["rounds"].as_array().unwrap().len(), 15);
    let svg = dir.path().join("benchmarks.svg");
    chart::draw(&svg, &summary).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("bare tonic MT") && text.contains("112,200"));
    if let Some(copy) = std::env::var_os("BENCH_CHART_COPY") {
        std::fs::copy(&svg, copy).unwrap();
    }
}

/// bench-results.json lists every object's keys in sorted order, as it did
/// when it was built as a `serde_json::Value` (whose maps sort).
#[test]
fn json_keeps_its_sorted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let results = results(dir.path());
    let text = summary::summarize(&results).json_pretty();
    // The last key seen at each indentation of the pretty text, forgotten
    // when a line at a lower indentation leaves that object.
    let mut last: Vec<Option<&str>> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        last.truncate(indent + 1);
        let key = line
            .trim_start()
            .strip_prefix('"')
            .and_then(|l| l.split_once("\": "));
        if let Some((key, _)) = key {
            last.resize(indent + 1, None);
            if let Some(previous) = last[indent] {
                assert!(previous < key, "{previous:?} before {key:?}");
            }
            last[indent] = Some(key);
        }
    }
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "answer_bytes",
            "commands",
            "commands_as_run",
            "date",
            "idle",
            "machine",
            "options",
            "process_orders",
            "rounds",
            "search",
            "skipped",
            "summary",
            "targets",
            "update_orders"
        ]
    );
}
