//! What a reader sees: the markdown tables (printed after a run and put in
//! BENCHMARKS.md), the targets as text, the commands as run, and
//! BENCHMARKS.md itself.

use std::fmt::Write as _;

use super::config::{
    ADD_CONCURRENCY, ADD_CONNECTIONS, CONNECTIONS, FSYNC_TEST_SECONDS, IDLE_CONNECTIONS, LOAD_CORE,
    ORDER_ID, PGBENCH_CLIENTS, RARE_SEARCH_CALLS, RSS_SAMPLE, SERVER_CORE, STREAMS_PER_CONNECTION,
    VERIFY_CALLS, WARM_UP_REQUESTS,
};
use super::loadgen::{ClientBench, LOAD_GENERATOR};
use super::numbers::{opt, thousands, times};
use super::results::Cpu;
use super::summary::{DISTURBED_CORES, Summary, Verdict};

impl Summary<'_> {
    fn heading(&self) -> String {
        let r = self.results;
        format!(
            "getOrder(\"{ORDER_ID}\"): h2load -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION}, {} round(s) x {} s \
             (each after a warm-up run of {} requests), servers alternating within each round; server on core \
             {SERVER_CORE}, load on core {LOAD_CORE}. req/s: h2load, median and range over the verified \
             rounds. Latency: `{loadgen}` at 50 connections x 10 streams and at 1 x 1 (medians). \
             CPU: server utime+stime over h2load's measurement period / its requests.",
            r.rounds_asked,
            r.seconds,
            thousands(WARM_UP_REQUESTS as f64),
            loadgen = LOAD_GENERATOR.bench_name(),
        )
    }

    /// The getOrder table, the memory table, the streaming table.
    pub fn tables_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", self.heading());
        self.get_order_table(&mut s);
        self.cpu_line(&mut s);
        self.memory_table(&mut s);
        self.streams_table(&mut s);
        self.inserts_table(&mut s);
        self.scaling_table(&mut s);
        self.backends_table(&mut s);
        s
    }

    /// Our server on PostgreSQL against the embedded store.
    fn backends_table(&self, s: &mut String) {
        let b = match &self.results.backends {
            Ok(b) => b,
            Err(why) => {
                let _ = writeln!(s, "\nPostgreSQL store vs embedded store: {why}.");
                return;
            }
        };
        let _ = write!(
            s,
            "\nPostgreSQL store vs embedded store (issue 15): our server with `--database-url` (PostgreSQL in the \
             run's temp dir, as above, in a database of its own) and with its embedded store, both holding the \
             same {} bulk-loaded orders. Replicas: server processes on one database, the load split evenly \
             across them (one `{}` per replica, all on core {LOAD_CORE}); every replica and PostgreSQL on core \
             {SERVER_CORE}. {} s per load. CPU per call: the replicas' and PostgreSQL's (postmaster and \
             backends) together, PostgreSQL's part in brackets. Latency: the worst replica's. Rare term: \
             {RARE_SEARCH_CALLS} sequential calls to the first replica, its call log's `duration_us`.\n\n\
             | store | replicas | getOrder calls/s ({CONNECTIONS}×{STREAMS_PER_CONNECTION}) | p50 / p99 µs | CPU µs/call | \
             addOrder calls/s ({ADD_CONNECTIONS}×{ADD_CONCURRENCY}) | p50 / p99 µs | CPU µs/call | rare term: server µs \
             median (client p50) | checks |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
            thousands(b.orders as f64),
            LOAD_GENERATOR.bench_name(),
            self.results.seconds,
        );
        for r in &b.runs {
            let cpu = |run: &super::results::SplitRun| {
                let (all, db) = run.cpu_us();
                if r.backend == "embedded" {
                    format!("{all:.1}")
                } else {
                    format!("{all:.1} ({db:.1})")
                }
            };
            let rare = super::results::median(
                &r.rare_server_us
                    .iter()
                    .map(|&u| u as f64)
                    .collect::<Vec<_>>(),
            );
            let checks = |run: &super::results::SplitRun| {
                let sum = |f: fn(&ClientBench) -> u64| run.benches.iter().map(f).sum::<u64>();
                format!(
                    "{} right, {} wrong, {} errors",
                    thousands(sum(|b| b.ok) as f64),
                    sum(|b| b.wrong),
                    sum(|b| b.errors)
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} | {} | {} | {} / {} | {} | {} ({}) | getOrder: {}; addOrder: {}; rare: {}/{} \
                 calls, {} server times logged |",
                r.backend,
                r.replicas,
                thousands(r.get.calls_per_second()),
                thousands(r.get.p50_us() as f64),
                thousands(r.get.p99_us() as f64),
                cpu(&r.get),
                thousands(r.add.calls_per_second()),
                thousands(r.add.p50_us() as f64),
                thousands(r.add.p99_us() as f64),
                cpu(&r.add),
                opt(rare, thousands),
                thousands(r.rare.p50_us as f64),
                checks(&r.get),
                checks(&r.add),
                r.rare.ok,
                r.rare.calls,
                r.rare_server_us.len(),
            );
        }
    }

    /// One row per server: throughput, latency, CPU, memory, checks.
    fn get_order_table(&self, s: &mut String) {
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
                "{}/{} rounds verified: h2load DATA = orders ({} B each) in {}/{}; {} {}/{} right; \
                 machine quiet in {}/{}",
                r.verified,
                r.runs,
                self.results.answer_bytes,
                r.data_ok,
                r.runs,
                LOAD_GENERATOR.binary,
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
    }

    /// How busy the cores were during the measured h2load runs.
    fn cpu_line(&self, s: &mut String) {
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
    }

    /// Idle RSS, and with 1,000 idle connections.
    fn memory_table(&self, s: &mut String) {
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
    }

    /// searchOrders, processOrders and updateOrders, ours only.
    fn streams_table(&self, s: &mut String) {
        let (search, st) = (&self.results.search, &self.results.streams);
        let _ = write!(
            s,
            "\nStreaming RPCs, our server only (the peers serve getOrder alone), load from `{}`:\n\n\
             | RPC | shape | throughput | p50 / p99 µs per call | server CPU µs | checks |\n|---|---|--:|--:|--:|---|\n",
            LOAD_GENERATOR.bench_name()
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
            let tag = t.verdict.tag();
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

    /// BENCHMARKS.md: machine, date, method, tables, chart, targets, commands.
    pub fn report_markdown(&self) -> String {
        let r = self.results;
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
        self.machine_section(&mut s);
        self.method_section(&mut s);
        s.push_str("## Results\n\n");
        s.push_str(&self.tables_markdown());
        s.push_str("\n![requests/s and p99 latency per server](benchmarks.svg)\n\n");
        if self.results.scaling.is_ok() {
            s.push_str(
                "![rare-term search, match-all search, start-up, RSS, bulk load and data size against \
                 store size](scaling.svg)\n\n",
            );
        }
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

    /// The machine table: what the numbers depend on.
    fn machine_section(&self, s: &mut String) {
        let m = &self.results.machine;
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        s.push_str("## Machine\n\n| | |\n|---|---|\n");
        for (label, value) in [
            ("cores (`nproc --all`)", m.nproc.clone()),
            ("CPU", m.cpu.clone()),
            // As JSON prints it (24.0, not 24): the table has always shown that.
            (
                "memory GiB",
                serde_json::Value::from(m.memory_gib).to_string(),
            ),
            ("kernel", m.kernel.clone()),
            ("rustc", m.rustc.clone()),
            ("tonic", or_dash(&m.tonic)),
            ("h2load", m.h2load.clone()),
            (
                "load average at start / end (1, 5, 15 min)",
                format!("{} / {}", m.loadavg_at_start, m.loadavg_at_end),
            ),
            ("Python peer", or_dash(&m.python)),
            ("Node peer", or_dash(&m.node)),
            ("PostgreSQL", or_dash(&m.postgres)),
        ] {
            let _ = writeln!(s, "| {label} | {value} |");
        }
    }

    /// How the numbers were measured.
    fn method_section(&self, s: &mut String) {
        let r = self.results;
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
             separately); (3) `{loadgen} --count {VERIFY_CALLS}` (which compares every answer with \
             order {ORDER_ID}) got {VERIFY_CALLS} right answers from the same process.\n\
             - Server CPU per request: utime+stime from /proc/PID/stat, sampled inside h2load's \
             measurement period, ÷ the period ÷ h2load's req/s. Peak RSS: VmHWM at the end of the \
             round (all its load). Idle RSS and connections: VmRSS. Other processes' CPU: \
             /proc/stat's busy ticks minus the server's and h2load's, over the same period.\n\
             - Streaming (our server only): the searchOrders data set ({orders} orders, each with an \
             item containing \"{query}\") is the bulk-loaded store of that size (`examples/bulk_load`, \
             through `RedbStore::insert_many`; cached, see the store sizes below); our server starts on \
             it, and its VmRSS is sampled every {sample} ms while the streams run.\n\
             - Durable inserts: our addOrder (`{loadgen} --rpc add`, a fresh data dir per shape) at \
             {ADD_CONNECTIONS} connections × {ADD_CONCURRENCY} calls and at 1 × 1; PostgreSQL started \
             by the bench itself in the run's temp dir (the disk of our data dirs): `initdb`, then \
             `postgres` with `fsync=on` and `synchronous_commit=on` (every commit durable), listening \
             on a Unix socket in that dir only, its postmaster pinned to core {SERVER_CORE} with \
             `taskset` (the backends it forks inherit that), stopped with `pg_ctl stop` at the end; \
             `pgbench -n -M prepared` on core {LOAD_CORE} with a script inserting one order row per \
             transaction (a unique id from a sequence) at {clients} clients, each from an empty \
             table after a checkpoint. Server CPU: our server's utime+stime; PostgreSQL's, the \
             postmaster's and every backend's (reaped ones included: cutime+cstime). The disk: \
             `pg_test_fsync -s {FSYNC_TEST_SECONDS}` with its file in the same dir, its fdatasync line \
             (one 8 kB write, then fdatasync).\n\
             - Store size: see the table's heading. The stores are cached in `target/bench/stores/N/`, \
             valid while their marker names the git trees of `src/store/` and `examples/bulk_load.rs` \
             and redb's version, and is removed while a server has the store open (a server on a \
             store is stopped with SIGTERM, so that the store is closed cleanly). \
             The baseline of the getOrder target is the `ours` median req/s of the \
             bench-results.json this run replaced.\n\n",
            warm = thousands(WARM_UP_REQUESTS as f64),
            b = r.answer_bytes,
            orders = thousands(r.search.orders as f64),
            query = r.search.query,
            sample = RSS_SAMPLE.as_millis(),
            loadgen = LOAD_GENERATOR.bench_name(),
            clients = PGBENCH_CLIENTS
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
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
    fn ports_become_placeholders() {
        assert_eq!(
            ports_as_placeholder("h2load http://127.0.0.1:41234/x --listen 127.0.0.1:0"),
            "h2load http://127.0.0.1:$PORT/x --listen 127.0.0.1:0"
        );
    }
}
