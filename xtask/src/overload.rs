//! `cargo xtask overload`: does the server keep its promises when asked
//! for more than it can do? Two measurements of our release server, pinned
//! like in the benchmark (server on one core, load on the other):
//!
//! 1. **Writes do not starve reads.** A getOrder probe (1 connection x 1
//!    call) runs alone, then while `loadgen bench --rpc add` offers 20
//!    connections x 100 concurrent writes: far more than the disk can
//!    commit. Reads and writes have separate admission, so the probe's calls
//!    must all be answered, their p99 within 5x the probe's p99 alone.
//! 2. **Admitted calls keep their latency at 10x overload.** With
//!    `--max-concurrent-calls LIMIT`, the same probe runs alone, then while
//!    another load generator offers getOrder at 10 x LIMIT concurrent calls:
//!    the excess is refused at once (RESOURCE_EXHAUSTED, the only failure
//!    allowed, the probe's too), and the p99 of the probe's calls that were
//!    admitted must stay within 5x its p99 alone.
//!
//! Latencies are the load generator's own, of calls answered OK
//! (`ok_p99_us`); a ratio from one run on a shared machine is what is
//! reported, never an absolute time. The load that overloads runs at nice
//! 19 beside the probe on the load's one core: it keeps that core busy (a
//! closed loop re-sends each refusal at once), and at the same priority the
//! probe's calls would wait for the client's own CPU, measuring the load
//! generator's queue instead of the server's shedding. Each measurement
//! also samples the CPU of the server and of the load generators over its
//! middle (the report shows it).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::binaries::bench_binaries;
use crate::bench::config::{Kind, REPORT_DIR};
use crate::bench::loadgen::{ClientBench, LOAD_GENERATOR, args};
use crate::bench::machine;
use crate::bench::process::{self, Proc, Stderr};
use crate::bench::servers::{Server, Servers};

/// What the overload run is asked for.
pub struct OverloadOptions {
    /// Seconds of each measurement.
    pub seconds: u64,
    /// The read admission limit of the second measurement.
    pub limit: u32,
    /// Also write OVERLOAD.md into docs/bench/.
    pub write_report: bool,
}

/// The most a p99 may grow, as a multiple of its unloaded value.
const MAX_RATIO: f64 = 5.0;
/// The nice level of the load that overloads (`nice -n`): the lowest
/// priority, so the probe beside it is not queued behind it.
const BACKGROUND_NICE: &str = "19";
/// The only failure a call may get from a server over its limits.
const REFUSED: &str = "ResourceExhausted";

pub fn run_overload(root: &Path, options: &OverloadOptions) -> Result<bool> {
    process::raise_open_files_limit();
    let work = process::run_dir("overload")?;
    let work = work.path();
    // Other work on the machine takes the cores the measurements pin.
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let binaries = bench_binaries(root, work, false)?;
    let servers = Servers::ours_only(root, work, binaries.server.clone());
    let load = Load {
        binary: &binaries.loadgen,
        work,
        seconds: options.seconds,
        clk_tck: machine::clock_ticks(work)?,
    };

    println!("1/2 getOrder probe alone, then under a 20 x 100 addOrder flood ...");
    let server = servers.start(Kind::Ours, None)?;
    load.run(&server, &probe(1))?; // warm-up
    let alone = load.run_sampled(&server, &probe(options.seconds), None)?;
    let flood = load.spawn(&server, &flood(options.seconds + 2))?;
    std::thread::sleep(Duration::from_secs(1));
    let flooded = load.run_sampled(&server, &probe(options.seconds), Some(&flood))?;
    let writes = load.finish(flood)?;
    drop(server);

    println!(
        "2/2 getOrder probe with --max-concurrent-calls {0}: alone, then beside {1} concurrent getOrder calls ...",
        options.limit,
        options.limit * 10
    );
    let limited = limited_server(&servers, options.limit)?;
    load.run(&limited, &probe(1))?; // warm-up
    let quiet = load.run_sampled(&limited, &probe(options.seconds), None)?;
    let overload = load.spawn(&limited, &reads(options.limit * 10, options.seconds + 2))?;
    std::thread::sleep(Duration::from_secs(1));
    let shed = load.run_sampled(&limited, &probe(options.seconds), Some(&overload))?;
    let tenfold = load.finish(overload)?;
    drop(limited);

    let report = Report {
        loadavg: loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        alone,
        flooded,
        writes,
        limit: options.limit,
        quiet,
        shed,
        tenfold,
    };
    let text = report.markdown(options);
    println!("\n{text}");
    if options.write_report {
        let path = root.join(REPORT_DIR).join("OVERLOAD.md");
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(report.passed())
}

/// Our server as shipped, but with the read admission limit at `limit`.
fn limited_server(servers: &Servers, limit: u32) -> Result<Server> {
    let limit = limit.to_string();
    servers.start_with(Kind::Ours, None, &["--max-concurrent-calls", &limit])
}

fn probe(seconds: u64) -> Vec<String> {
    let s = seconds.to_string();
    args(&[
        "--rpc",
        "get",
        "--connections",
        "1",
        "--concurrency",
        "1",
        "--seconds",
        &s,
    ])
}

fn flood(seconds: u64) -> Vec<String> {
    let s = seconds.to_string();
    args(&[
        "--rpc",
        "add",
        "--connections",
        "20",
        "--concurrency",
        "100",
        "--seconds",
        &s,
    ])
}

/// `calls` concurrent getOrder calls over 10 connections.
fn reads(calls: u32, seconds: u64) -> Vec<String> {
    let per_connection = calls.div_ceil(10).to_string();
    let s = seconds.to_string();
    args(&[
        "--rpc",
        "get",
        "--connections",
        "10",
        "--concurrency",
        &per_connection,
        "--seconds",
        &s,
    ])
}

/// Runs the load generator against a server.
struct Load<'a> {
    binary: &'a Path,
    work: &'a Path,
    seconds: u64,
    /// The unit of /proc/PID/stat's CPU times.
    clk_tck: f64,
}

/// CPU used during a measurement, in % of one core.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    server: f64,
    /// Every load generator running (the probe's and the flood's).
    load: f64,
}

/// A measurement: what the load generator saw, and the CPU it took.
struct Sampled {
    bench: ClientBench,
    cpu: CpuUse,
}

impl Load<'_> {
    /// The load that overloads, in the background: at [`BACKGROUND_NICE`],
    /// so that the probe beside it on the load's core gets the CPU when it
    /// needs it (see the module's doc).
    fn spawn(&self, server: &Server, bench_args: &[String]) -> Result<Proc> {
        let bench = LOAD_GENERATOR.bench(self.binary, &server.url(), bench_args);
        let mut cmd = Command::new("nice");
        cmd.args(["-n", BACKGROUND_NICE])
            .arg(bench.get_program())
            .args(bench.get_args());
        self.start(cmd)
    }

    /// A probe: at the load generators' normal priority.
    fn spawn_probe(&self, server: &Server, bench_args: &[String]) -> Result<Proc> {
        self.start(LOAD_GENERATOR.bench(self.binary, &server.url(), bench_args))
    }

    fn start(&self, mut cmd: Command) -> Result<Proc> {
        let limit = Duration::from_secs(self.seconds * 4 + 60);
        Proc::spawn("loadgen", &mut cmd, limit, self.work, Stderr::File)
    }

    fn finish(&self, proc: Proc) -> Result<ClientBench> {
        let done = proc.wait()?;
        if !done.status.success() {
            bail!(
                "the load generator failed ({}):\n{}",
                done.status,
                done.tail()
            );
        }
        ClientBench::parse(&done.stdout)
    }

    /// A probe run, to its end.
    fn run(&self, server: &Server, bench_args: &[String]) -> Result<ClientBench> {
        let proc = self.spawn_probe(server, bench_args)?;
        self.finish(proc)
    }

    /// [`Self::run`], sampling the CPU of the server and of the load
    /// generators (this run's, and `other` if one runs alongside) over the
    /// middle three fifths of the run (the ramp-up and the end left out).
    fn run_sampled(
        &self,
        server: &Server,
        bench_args: &[String],
        other: Option<&Proc>,
    ) -> Result<Sampled> {
        let proc = self.spawn_probe(server, bench_args)?;
        let fifth = Duration::from_secs(self.seconds) / 5;
        std::thread::sleep(fifth);
        let ticks = || -> Result<(u64, u64)> {
            let mut load = process::cpu_ticks(proc.pid())?;
            if let Some(other) = other {
                load += process::cpu_ticks(other.pid())?;
            }
            Ok((process::cpu_ticks(server.pid())?, load))
        };
        let (server_before, load_before) = ticks()?;
        let started = Instant::now();
        std::thread::sleep(fifth * 3);
        let (server_after, load_after) = ticks()?;
        let seconds = started.elapsed().as_secs_f64();
        let percent = |ticks: u64| ticks as f64 / self.clk_tck / seconds * 100.0;
        let cpu = CpuUse {
            server: percent(server_after - server_before),
            load: percent(load_after - load_before),
        };
        Ok(Sampled {
            bench: self.finish(proc)?,
            cpu,
        })
    }
}

struct Report {
    /// /proc/loadavg (1, 5, 15 min) when the run started.
    loadavg: String,
    alone: Sampled,
    flooded: Sampled,
    writes: ClientBench,
    limit: u32,
    /// The probe alone against the limited server.
    quiet: Sampled,
    /// The probe beside the 10x overload.
    shed: Sampled,
    /// The 10x overload itself.
    tenfold: ClientBench,
}

impl Report {
    fn reads_ratio(&self) -> f64 {
        ratio(self.flooded.bench.ok_p99_us, self.alone.bench.ok_p99_us)
    }

    fn shed_ratio(&self) -> f64 {
        ratio(self.shed.bench.ok_p99_us, self.quiet.bench.ok_p99_us)
    }

    fn reads_passed(&self) -> bool {
        self.alone.bench.all_ok() && self.flooded.bench.all_ok() && self.reads_ratio() <= MAX_RATIO
    }

    /// At 10x: alone, every probe call answered; beside the overload, some
    /// admitted, every failure of the probe and of the load a refusal,
    /// every answer right, and the admitted calls' p99 within
    /// [`MAX_RATIO`].
    fn shed_passed(&self) -> bool {
        let refused_only = |b: &ClientBench| b.wrong == 0 && b.errors_other_than(REFUSED) == 0;
        self.quiet.bench.all_ok()
            && self.shed.bench.ok > 0
            && refused_only(&self.shed.bench)
            && refused_only(&self.tenfold)
            && self.shed_ratio() <= MAX_RATIO
    }

    fn passed(&self) -> bool {
        self.reads_passed() && self.shed_passed()
    }

    fn markdown(&self, options: &OverloadOptions) -> String {
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Overload\n\nWritten by `cargo xtask overload --write-report` (`make overload`); \
             {} s per measurement, server on one core, load on the other; load average \
             {} at the start (other work on a 2-core machine makes every figure worse). \
             The probe is one connection x one getOrder call at a time; the load that \
             overloads runs beside it at nice {BACKGROUND_NICE}, so that the probe measures the \
             server rather than its own wait for the load's core. Latencies are of the calls \
             answered OK. CPU: % of one core, over the middle three fifths of the measurement \
             (load: every load generator running then, on the load's one core).\n",
            options.seconds, self.loadavg
        );
        let _ = writeln!(
            out,
            "| measurement | calls | OK | refused/failed | p50 µs | p99 µs | server CPU | load CPU |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|"
        );
        let limit = self.limit;
        let tenfold = limit * 10;
        for (name, (b, cpu)) in [
            ("getOrder probe, alone".to_owned(), self.alone.row()),
            (
                "getOrder probe, beside the addOrder flood".to_owned(),
                self.flooded.row(),
            ),
            (
                "addOrder flood 20x100 (writes), nice 19".to_owned(),
                (&self.writes, None),
            ),
            (
                format!("getOrder probe, alone, `--max-concurrent-calls {limit}`"),
                self.quiet.row(),
            ),
            (
                format!("getOrder probe, beside {tenfold} concurrent getOrder calls"),
                self.shed.row(),
            ),
            (
                format!("getOrder {tenfold} concurrent calls (10x the limit), nice 19"),
                (&self.tenfold, None),
            ),
        ] {
            let (server, load) = match cpu {
                Some(c) => (format!("{:.0}%", c.server), format!("{:.0}%", c.load)),
                None => ("(as above)".to_owned(), "(as above)".to_owned()),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {server} | {load} |",
                b.calls, b.ok, b.errors, b.ok_p50_us, b.ok_p99_us
            );
        }
        let _ = writeln!(
            out,
            "\n- Reads under a write flood: probe p99 {:.2}x its p99 alone, {} of {} probe calls \
             not answered OK (target: none, and <= {MAX_RATIO}x): **{}**",
            self.reads_ratio(),
            self.flooded.bench.calls - self.flooded.bench.ok,
            self.flooded.bench.calls,
            verdict(self.reads_passed())
        );
        let _ = writeln!(
            out,
            "- 10x overload (`--max-concurrent-calls {limit}`, {tenfold} concurrent calls offered \
             beside the probe): the p99 of the probe's admitted calls is {:.2}x its p99 alone \
             (target <= {MAX_RATIO}x); {} of the probe's {} calls and {} of the load's {} were \
             refused; failures other than RESOURCE_EXHAUSTED: {} (target: none): **{}**",
            self.shed_ratio(),
            self.shed.bench.errors,
            self.shed.bench.calls,
            self.tenfold.errors,
            self.tenfold.calls,
            self.shed.bench.errors_other_than(REFUSED)
                + self.tenfold.errors_other_than(REFUSED)
                + self.shed.bench.wrong
                + self.tenfold.wrong,
            verdict(self.shed_passed())
        );
        let _ = writeln!(
            out,
            "- The load's own admitted calls wait for its saturated core and its closed \
             loop: their p99 ({} µs) is the load generator's queue, not a figure of the \
             server, and is not judged.",
            self.tenfold.ok_p99_us
        );
        out
    }
}

impl Sampled {
    /// A row of the table: the bench, and its CPU.
    fn row(&self) -> (&ClientBench, Option<CpuUse>) {
        (&self.bench, Some(self.cpu))
    }
}

fn ratio(loaded: u64, quiet: u64) -> f64 {
    loaded as f64 / quiet.max(1) as f64
}
