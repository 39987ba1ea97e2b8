//! The summary, the report, bench-results.json and the chart, end to end
//! on synthetic results.

use std::path::Path;

use super::config::{
    IDLE_CONNECTIONS, Kind, MATCH_ALL_QUERY, RARE_SEARCH_CALLS, SEARCH_ORDERS, SEARCH_QUERY,
    VERIFY_CALLS,
};
use super::h2load::H2load;
use super::loadgen::{ClientBench, args};
use super::machine::Machine;
use super::results::{
    AddRun, Baseline, Cpu, Fsync, Idle, Inserts, Pgbench, Postgres, Results, Round, Scaling,
    Search, SizePoint, StoreFile, Streams, Usage,
};
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

fn usage(server_ticks: u64) -> Usage {
    Usage {
        seconds: 10.0,
        server_ticks,
        clk_tck: 100.0,
        server_cores: server_ticks as f64 / 1000.0,
        client_cores: 0.5,
        others_cores: 0.01,
    }
}

/// Ours at 10x10: 12,000/s (PostgreSQL at 10 clients: 10,000/s); ours at
/// 1x1: p50 3,000 us (one fdatasync: 2,000 us).
fn inserts() -> Inserts {
    let run = |c: &str, rate: f64, p50: u64| AddRun {
        args: args(&["--rpc", "add", "--connections", c]),
        bench: client((rate * 10.0) as u64, p50, p50 * 2, rate),
        usage: usage(900),
    };
    let pgbench = |clients: usize, tps: f64| Pgbench {
        clients,
        seconds: 10,
        tps,
        transactions: (tps * 10.0) as u64,
        failed: 0,
        latency_ms: clients as f64 / tps * 1e3,
        usage: usage(800),
    };
    Inserts {
        loaded: run("10", 12_000.0, 8_000),
        single: run("1", 330.0, 3_000),
        fsync: Ok(Fsync {
            ops_per_second: 500.0,
            us_per_op: 2_000.0,
        }),
        postgres: Ok(Postgres {
            version: "postgres (PostgreSQL) 15.0".into(),
            settings: vec![("fsync".into(), "on".into())],
            pgbench: vec![
                pgbench(1, 300.0),
                pgbench(10, 10_000.0),
                pgbench(50, 20_000.0),
            ],
            script: "insert ...".into(),
        }),
    }
}

/// Stores of 10k, 100k and 1M orders; at 1M: rare search 3 ms, 900k
/// orders/s, start-up 0.2 s, RSS under getOrder 40 MiB.
fn scaling() -> Scaling {
    let point = |orders: usize| {
        let k = orders as f64 / 1e6;
        SizePoint {
            store: StoreFile {
                orders,
                dir: crate::project_root().join(format!("target/bench/stores/{orders}/data")),
                bytes: orders as u64 * 300,
                load_seconds: 30.0 * k,
                loaded_now: orders == 1_000_000,
                loaded_at: "2026-01-01 00:00 UTC".into(),
            },
            start_up_seconds: vec![0.2, 0.1 + 0.1 * k, 0.25],
            rss_at_start_kib: 10_000,
            rare_query: super::scaling::rare_query(orders),
            rare: client(RARE_SEARCH_CALLS, 3_100, 4_000, 300.0),
            rare_server_us: vec![3_000; RARE_SEARCH_CALLS as usize],
            all_query: MATCH_ALL_QUERY.into(),
            all: ClientBench {
                messages: 3 * orders as u64,
                messages_per_second: 900_000.0,
                ..client(3, 1_000_000, 1_100_000, 1.0)
            },
            all_expected: 3 * orders as u64,
            all_peak_kib: 30_000,
            get: client(500_000, 4_000, 9_000, 100_000.0),
            get_id: format!("bulk-{:07}", super::scaling::rare_index(orders)),
            get_peak_kib: 40 * 1024,
            get_samples: 200,
            hwm_kib: 45 * 1024,
            stopped_cleanly: true,
        }
    };
    Scaling {
        points: vec![point(10_000), point(100_000), point(1_000_000)],
        get_seconds: 5,
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
        inserts: inserts(),
        scaling: Ok(scaling()),
        store_sizes: vec![10_000, 100_000, 1_000_000],
        baseline: Some(Baseline {
            date: "2025-12-01 00:00 UTC".into(),
            ours_rps: 110_000.0,
            bare_rps: Some(100_000.0),
        }),
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
    for line in [
        "PASS  getOrder req/s (h2load), ours now / ours in the last report (2025-12-01 00:00 UTC: 110,000): \
         1.020x (112,200 req/s) (target >= 0.950x)",
        "INFO  ours / bare tonic (multi-thread), now and in the last report: 1.100x now, 1.100x then",
        "PASS  addOrder calls/s at 10x10 / PostgreSQL inserts/s at 10 clients (pgbench, same run): \
         1.200x (12,000 vs 10,000 per second) (target >= 1.000x)",
        "MISS  addOrder calls/s at 10x10 / PostgreSQL inserts/s at 10 clients (pgbench, same run) (stretch): \
         1.200x (12,000 vs 10,000 per second) (target >= 2.000x): short by 0.800x (40.0% below the target)",
        "PASS  addOrder p50 latency at 1x1 / one fdatasync (pg_test_fsync, same disk, same run): \
         1.50 fdatasyncs (p50 3,000 us, fdatasync 2000 us) (target <= 2.00 fdatasyncs)",
        "INFO  addOrder at 1x1 / PostgreSQL at 1 client: 1.100x (330 vs 300 per second)",
        "PASS  searchOrders server time for a term in 1 order (median) at 1,000,000 orders: 3.00 ms \
         (target <= 5.00 ms)",
        "MISS  searchOrders for a term in every order, orders streamed at 1,000,000 orders: 900,000 orders/s \
         (target >= 1,000,000 orders/s): short by 100,000 orders/s (10.0% below the target)",
        "PASS  start-up, spawn to `listening on` (median) at 1,000,000 orders: 0.200 s (target <= 0.300 s)",
        "PASS  RSS under getOrder load at 1,000,000 orders: 40.0 MiB (target <= 64.0 MiB)",
        "INFO  bulk load at 1,000,000 orders: 30.0 s (this run), data file 286.1 MiB",
    ] {
        assert!(targets.contains(line), "{line}\nnot in\n{targets}");
    }
    let tables = summary.tables_markdown();
    assert!(
        tables.contains("| 1,000,000 | 30.0 | 286.1 | 200 (200, 200, 250) | 3,000 (3,100) | 900,000 | 100,000 | 9.8 / 40.0 / 45.0 |"),
        "{tables}"
    );
    assert!(tables.contains("| 100,000 | 3.0 (cached) |"), "{tables}");
    assert!(
        tables.contains("| PostgreSQL (pgbench) | 10 clients | 10,000 | average 1.000 ms | 80.0 |"),
        "{tables}"
    );
    assert!(md.contains("![rare-term search"));
    assert!(md.contains("| PostgreSQL | - |"), "{md}");
    let scaling_svg = dir.path().join("scaling.svg");
    chart::draw_scaling(&scaling_svg, &summary).unwrap();
    let text = std::fs::read_to_string(&scaling_svg).unwrap();
    assert!(text.contains("target 5") && text.contains("1M"), "{text}");
    if let Some(copy) = std::env::var_os("BENCH_REPORT_COPY") {
        std::fs::write(copy, &md).unwrap();
    }
    if let Some(copy) = std::env::var_os("BENCH_SCALING_CHART_COPY") {
        std::fs::copy(&scaling_svg, copy).unwrap();
    }
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
            "baseline",
            "commands",
            "commands_as_run",
            "date",
            "idle",
            "inserts",
            "machine",
            "options",
            "process_orders",
            "rounds",
            "scaling",
            "search",
            "skipped",
            "summary",
            "targets",
            "update_orders"
        ]
    );
}
