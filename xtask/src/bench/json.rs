//! bench-results.json: every raw number of the run, per round, with the
//! summary and the targets.

use serde_json::{Value, json};

use super::config::WARM_UP_REQUESTS;
use super::loadgen::ClientBench;
use super::summary::{Summary, Verdict};

impl Summary<'_> {
    /// bench-results.json, pretty-printed, with a final newline.
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
                    "verdict": t.verdict.tag(),
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
}
