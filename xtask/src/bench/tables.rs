//! The tables of the series after the getOrder rounds, printed after a
//! run and put in BENCHMARKS.md: durable inserts (ours against
//! PostgreSQL), the store-size series, the PostgreSQL store against the
//! embedded one.

use std::fmt::Write as _;

use super::config::{
    ADD_CONCURRENCY, ADD_CONNECTIONS, CONNECTIONS, LOAD_CORE, MATCH_ALL_QUERY, MATCH_ALL_STREAMS,
    RARE_SEARCH_CALLS, RSS_SAMPLE, SERVER_CORE, STARTS, STREAMS_PER_CONNECTION,
};
use super::loadgen::LOAD_GENERATOR;
use super::numbers::{opt, thousands};
use super::summary::Summary;

impl Summary<'_> {
    /// addOrder on ours, pgbench's inserts on PostgreSQL, fdatasync's cost.
    pub(super) fn inserts_table(&self, s: &mut String) {
        let ins = &self.results.inserts;
        let _ = write!(
            s,
            "\nDurable inserts, same run, same disk: our addOrder (a fresh store per shape, `{}`) and \
             PostgreSQL's pgbench inserting one order row per transaction. Server (or postmaster and \
             backends) on core {SERVER_CORE}, load on core {LOAD_CORE}, {} s each.\n\n\
             | server | load | inserts/s | latency | server CPU µs/insert | checks |\n\
             |---|---|--:|--:|--:|---|\n",
            LOAD_GENERATOR.bench_name(),
            self.results.seconds,
        );
        for (run, shape) in [
            (
                &ins.loaded,
                format!("{ADD_CONNECTIONS} connections × {ADD_CONCURRENCY} calls"),
            ),
            (&ins.single, "1 connection × 1 call".to_owned()),
        ] {
            let b = &run.bench;
            let _ = writeln!(
                s,
                "| ours (addOrder) | {shape} | {} | p50 {} / p99 {} µs | {:.1} | {} right, {} wrong, {} errors; \
                 other processes {:.0}% of a core |",
                thousands(b.calls_per_second),
                thousands(b.p50_us as f64),
                thousands(b.p99_us as f64),
                run.usage.server_us_per(b.calls),
                thousands(b.ok as f64),
                b.wrong,
                b.errors,
                run.usage.others_cores * 100.0,
            );
        }
        match &ins.postgres {
            Ok(pg) => {
                for p in &pg.pgbench {
                    let _ = writeln!(
                        s,
                        "| PostgreSQL (pgbench) | {} client{} | {} | average {:.3} ms | {:.1} | {} transactions, {} failed; \
                         other processes {:.0}% of a core |",
                        p.clients,
                        if p.clients == 1 { "" } else { "s" },
                        thousands(p.tps),
                        p.latency_ms,
                        p.usage.server_us_per(p.transactions),
                        thousands(p.transactions as f64),
                        p.failed,
                        p.usage.others_cores * 100.0,
                    );
                }
            }
            Err(why) => {
                let _ = writeln!(s, "| PostgreSQL (pgbench) | {why} | | | | |");
            }
        }
        let _ = match &ins.fsync {
            Ok(f) => writeln!(
                s,
                "\nOne fdatasync on this disk (pg_test_fsync, one 8 kB write then fdatasync, same dir): \
                 {:.1} ops/s = {:.0} µs.",
                f.ops_per_second, f.us_per_op
            ),
            Err(why) => writeln!(s, "\nfdatasync's cost: {why}."),
        };
        if let Ok(pg) = &ins.postgres {
            let _ = writeln!(
                s,
                "\n{}: {}. Script: `{}`",
                pg.version,
                pg.settings
                    .iter()
                    .map(|(k, v)| format!("`{k}={v}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                pg.script
            );
        }
    }

    /// One row per store size.
    pub(super) fn scaling_table(&self, s: &mut String) {
        let scaling = match &self.results.scaling {
            Ok(sc) => sc,
            Err(why) => {
                let _ = writeln!(s, "\nStore-size series: {why}.");
                return;
            }
        };
        let _ = write!(
            s,
            "\nStore size: our server on bulk-loaded stores (`examples/bulk_load`, orders `bulk-0000000`… \
             with items `widget <n>` and `gadget`), each loaded once and cached. Start-up: spawn to \
             `listening on`, {STARTS} starts (page cache warm). Rare term: {RARE_SEARCH_CALLS} sequential \
             searchOrders for the one order that has it, the server's time per call from its call log \
             (`duration_us`). Every order: then {MATCH_ALL_STREAMS} searchOrders(\"{MATCH_ALL_QUERY}\") streams \
             to one client, on the same server (its peak RSS: VmHWM after them). getOrder: on a server of its \
             own, {CONNECTIONS}×{STREAMS_PER_CONNECTION} for {} s with VmRSS sampled every {} ms.\n\n\
             | orders | bulk load s | data MiB | start-up ms: median (each) | rare term: server µs median (client p50) | \
             every order: orders/s | getOrder calls/s | RSS MiB: at start / max under getOrder / peak of the search server | checks |\n\
             |--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
            scaling.get_seconds,
            RSS_SAMPLE.as_millis(),
        );
        for p in &scaling.points {
            let checks = format!(
                "rare: {}/{} calls, 1 order each, {} server times logged{}; every order: {}/{} orders{}; \
                 getOrder: {} right, {} wrong, {} errors{}",
                p.rare.ok,
                p.rare.calls,
                p.rare_server_us.len(),
                if p.rare_verified() {
                    ""
                } else {
                    " NOT VERIFIED"
                },
                thousands(p.all.messages as f64),
                thousands(p.all_expected as f64),
                if p.all_verified() {
                    ""
                } else {
                    " NOT VERIFIED"
                },
                thousands(p.get.ok as f64),
                p.get.wrong,
                p.get.errors,
                if p.stopped_cleanly {
                    ""
                } else {
                    "; a server did NOT stop cleanly"
                },
            );
            let _ = writeln!(
                s,
                "| {} | {:.1}{} | {:.1} | {} ({}) | {} ({}) | {} | {} | {:.1} / {:.1} / {:.1} | {checks} |",
                thousands(p.store.orders as f64),
                p.store.load_seconds,
                if p.store.loaded_now { "" } else { " (cached)" },
                p.store.bytes as f64 / 1024.0 / 1024.0,
                opt(p.start_up_median(), |x| format!("{:.0}", x * 1e3)),
                p.start_up_seconds
                    .iter()
                    .map(|x| format!("{:.0}", x * 1e3))
                    .collect::<Vec<_>>()
                    .join(", "),
                opt(p.rare_server_median_us(), thousands),
                thousands(p.rare.p50_us as f64),
                thousands(p.all.messages_per_second),
                thousands(p.get.calls_per_second),
                p.rss_at_start_kib as f64 / 1024.0,
                p.get_peak_kib as f64 / 1024.0,
                p.hwm_kib as f64 / 1024.0,
            );
        }
    }
}
