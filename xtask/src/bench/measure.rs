//! The getOrder rounds: per server and round, the correctness pass, the
//! h2load warm-up and measured run with the server's CPU time over it, the
//! latency runs of the load generator, and the peak RSS. Also what every
//! measurement shares: the [`Rig`] and the load generator's runs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::config::{
    CONNECTIONS, Kind, ORDER_ID, RSS_SAMPLE, STREAMS_PER_CONNECTION, VERIFY_CALLS, WARM_UP_REQUESTS,
};
use super::h2load::{self, H2load};
use super::loadgen::{ClientBench, LOAD_GENERATOR, args};
use super::postgres::Installed;
use super::process::{self, Proc, Stderr, run};
use super::progress::Progress;
use super::results::{Cpu, Outcome, Round};
use super::servers::{Server, Servers};
use super::stores::Stores;

/// What every measurement needs: the servers, the load generator, the
/// run's length and the request.
pub struct Rig {
    pub servers: Servers,
    /// The load generator's binary.
    pub loadgen: PathBuf,
    /// The bulk-loaded stores (`examples/bulk_load`, cached).
    pub stores: Stores,
    /// PostgreSQL's programs, or why there are none.
    pub postgres: Outcome<Installed>,
    pub rounds: usize,
    pub seconds: u64,
    pub clk_tck: f64,
    /// The getOrder request body: one gRPC frame of StringValue("101").
    pub body: PathBuf,
    /// Bytes of one getOrder answer on the wire: 5-byte prefix + order 101.
    pub answer_bytes: u64,
    pub progress: Progress,
}

impl Rig {
    /// A fresh temp dir for data dirs, logs and command outputs.
    pub fn work(&self) -> &std::path::Path {
        &self.servers.work
    }

    /// The load generator's `bench ARGS` against `server`, pinned to the
    /// load core. A report with wrong answers still parses (the load
    /// generator then exits 1): the caller judges it.
    pub fn loadgen_bench(
        &self,
        server: &Server,
        args: &[String],
        limit: Duration,
    ) -> Result<ClientBench> {
        let mut cmd = self.loadgen_command(server, args);
        let done = run("client-bench", &mut cmd, limit, self.work())?;
        ClientBench::parse(&done.stdout).with_context(|| {
            format!(
                "{} against {} failed ({}):\n{}",
                LOAD_GENERATOR.bench_name(),
                server.kind.key(),
                done.status,
                done.tail()
            )
        })
    }

    /// The load generator's `bench ARGS` command against `server`.
    pub fn loadgen_command(&self, server: &Server, args: &[String]) -> Command {
        LOAD_GENERATOR.bench(&self.loadgen, &server.url(), args)
    }

    /// A load generator run, and the server's CPU time over it per call,
    /// in us (for updateOrders, its workers' set-up addOrder calls are
    /// included).
    pub fn with_server_cpu(
        &self,
        server: &Server,
        args: &[String],
        limit: Duration,
    ) -> Result<(ClientBench, f64)> {
        let before = process::cpu_ticks(server.pid())?;
        let bench = self.loadgen_bench(server, args, limit)?;
        let ticks = process::cpu_ticks(server.pid())? - before;
        let us = ticks as f64 / self.clk_tck * 1e6 / bench.calls.max(1) as f64;
        Ok((bench, us))
    }

    /// A load generator run with the server's VmRSS sampled every
    /// RSS_SAMPLE meanwhile: its report, the peak RSS (from `base_kib`)
    /// and the number of samples.
    pub fn sampling_rss(
        &self,
        server: &Server,
        args: &[String],
        limit: Duration,
        base_kib: u64,
    ) -> Result<(ClientBench, u64, u64)> {
        let mut cmd = self.loadgen_command(server, args);
        let mut proc = Proc::spawn("client-bench", &mut cmd, limit, self.work(), Stderr::File)?;
        let (started, mut peak_kib, mut samples) = (Instant::now(), base_kib, 0u64);
        while proc.running() && started.elapsed() < limit {
            if let Ok(kib) = server.kib("VmRSS") {
                peak_kib = peak_kib.max(kib);
                samples += 1;
            }
            std::thread::sleep(RSS_SAMPLE);
        }
        let done = proc.wait()?;
        let result = ClientBench::parse(&done.stdout).with_context(|| {
            format!(
                "{} {} failed ({}):\n{}",
                LOAD_GENERATOR.bench_name(),
                args.join(" "),
                done.status,
                done.tail()
            )
        })?;
        Ok((result, peak_kib, samples))
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One server, one round: the correctness pass, h2load throughput with the
/// server's CPU time, load generator latency at -c 50 -m 10 and -c 1 -m 1,
/// and the peak RSS of it all.
pub fn round(rig: &mut Rig, kind: Kind, round: usize) -> Result<Round> {
    rig.progress.step(&format!(
        "round {round}/{}: {}: getOrder(\"{ORDER_ID}\")",
        rig.rounds,
        kind.key()
    ));
    let server = rig.servers.start(kind, None)?;
    let verify = verify(rig, &server)?;
    let (warm_up, h2load, cpu) = h2load_get_order(rig, &server)?;
    let bytes = rig.answer_bytes;
    let data_ok =
        warm_up.exactly_orders(WARM_UP_REQUESTS, bytes) && h2load.orders_for_every_answer(bytes);
    note_h2load(rig, &warm_up, &h2load, &cpu);
    let (loaded, single) = latency(rig, &server)?;
    let peak_kib = server.kib("VmHWM")?;
    let log_bytes = std::fs::metadata(&server.log).map(|m| m.len()).ok();
    Ok(Round {
        kind,
        round,
        verify,
        warm_up,
        h2load,
        data_ok,
        cpu,
        loaded,
        single,
        peak_kib,
        log_bytes,
    })
}

/// The correctness pass: VERIFY_CALLS getOrder calls, each answer compared
/// with order 101 by the load generator.
fn verify(rig: &Rig, server: &Server) -> Result<ClientBench> {
    let verify = rig.loadgen_bench(
        server,
        &args(&[
            "--rpc",
            "get",
            "--order-id",
            ORDER_ID,
            "--connections",
            "1",
            "--concurrency",
            "10",
            "--count",
            &VERIFY_CALLS.to_string(),
            "--seconds",
            "120",
        ]),
        Duration::from_secs(180),
    )?;
    rig.progress.note(&format!(
        "{} check: {} of {VERIFY_CALLS} calls answered order {ORDER_ID} ({} wrong, {} errors)",
        LOAD_GENERATOR.binary, verify.ok, verify.wrong, verify.errors
    ));
    Ok(verify)
}

/// The progress lines of the warm-up and the measured h2load run.
fn note_h2load(rig: &Rig, warm_up: &H2load, h2load: &H2load, cpu: &Cpu) {
    let bytes = rig.answer_bytes;
    rig.progress.note(&format!(
        "h2load warm-up -n {WARM_UP_REQUESTS}: DATA {} B = {} x {bytes} B: {}",
        warm_up.data_bytes,
        warm_up.succeeded,
        if warm_up.exactly_orders(WARM_UP_REQUESTS, bytes) {
            "ok"
        } else {
            "MISMATCH"
        }
    ));
    rig.progress.note(&format!(
        "h2load -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION} -D {}: {:.0} req/s, {:.2} us server CPU/req \
         (server {:.0}%, h2load {:.0}%, other processes {:.0}% of a core); DATA {} B = ({} + {} in flight) x {bytes} B: {}",
        rig.seconds,
        h2load.requests_per_second,
        cpu.us_per_request,
        cpu.cpu_share * 100.0,
        cpu.h2load_share * 100.0,
        cpu.others_share * 100.0,
        h2load.data_bytes,
        h2load.succeeded,
        h2load.tail_answers(bytes),
        if h2load.orders_for_every_answer(bytes) { "ok" } else { "MISMATCH (errors answered, not orders)" }
    ));
}

/// Load generator latency at -c 50 -m 10, then at -c 1 -m 1.
fn latency(rig: &Rig, server: &Server) -> Result<(ClientBench, ClientBench)> {
    let s = rig.seconds.to_string();
    let shape = |c: usize, m: usize| {
        args(&[
            "--rpc",
            "get",
            "--order-id",
            ORDER_ID,
            "--connections",
            &c.to_string(),
            "--concurrency",
            &m.to_string(),
            "--seconds",
            &s,
        ])
    };
    let limit = Duration::from_secs(rig.seconds + 60);
    let name = LOAD_GENERATOR.binary;
    let loaded = rig.loadgen_bench(server, &shape(CONNECTIONS, STREAMS_PER_CONNECTION), limit)?;
    rig.progress.note(&format!(
        "{name} -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION}: {:.0} calls/s, p50 {} us, p99 {} us",
        loaded.calls_per_second, loaded.p50_us, loaded.p99_us
    ));
    let single = rig.loadgen_bench(server, &shape(1, 1), limit)?;
    rig.progress.note(&format!(
        "{name} -c 1 -m 1: {:.0} calls/s, p50 {} us, p99 {} us",
        single.calls_per_second, single.p50_us, single.p99_us
    ));
    Ok((loaded, single))
}

/// The warm-up (fixed count, checked exactly), then the measured run, with
/// the server's CPU time sampled inside the measured period (clear of
/// connection set-up and tear-down): CPU per request = (CPU seconds / wall
/// seconds) / (requests / second) over the same load h2load measured.
fn h2load_get_order(rig: &Rig, server: &Server) -> Result<(H2load, H2load, Cpu)> {
    let body = &rig.body;
    let mut warm = h2load::get_order(&server.url(), body, ["-n", &WARM_UP_REQUESTS.to_string()]);
    let warm_line = process::render(&warm);
    let done = run(
        "h2load-warm-up",
        &mut warm,
        Duration::from_secs(120),
        rig.work(),
    )?;
    if !done.status.success() {
        bail!("`{warm_line}` failed ({}):\n{}", done.status, done.tail());
    }
    let warm_up = H2load::parse(&done.stdout)?;

    let mut cmd = h2load::get_order(&server.url(), body, ["-D", &rig.seconds.to_string()]);
    let line = process::render(&cmd);
    let mut proc = Proc::spawn(
        "h2load",
        &mut cmd,
        Duration::from_secs(rig.seconds + 60),
        rig.work(),
        Stderr::File,
    )?;
    let window = sample_cpu(rig.seconds, server.pid(), proc.pid())?;
    let still_running = proc.running();
    let done = proc.wait()?;
    if !done.status.success() {
        bail!("`{line}` failed ({}):\n{}", done.status, done.tail());
    }
    let h2load = H2load::parse(&done.stdout)?;
    if !still_running {
        bail!(
            "h2load ended before its measurement period did:\n{}",
            done.tail()
        );
    }
    let cpu = window.cpu(rig.clk_tck, h2load.requests_per_second);
    Ok((warm_up, h2load, cpu))
}

/// CPU ticks of the server, of h2load and of the whole machine over one
/// measurement window.
struct CpuWindow {
    server: u64,
    h2load: u64,
    machine: u64,
    seconds: f64,
}

/// Samples the CPU counters 250 ms after a run of `seconds` started (now)
/// and 250 ms before it ends, clear of connection set-up and tear-down.
fn sample_cpu(seconds: u64, server_pid: u32, h2load_pid: u32) -> Result<CpuWindow> {
    let started = Instant::now();
    let margin = Duration::from_millis(250);
    // (server ticks, h2load ticks, whole-machine busy ticks, when)
    let sample = |at: Instant| -> Result<(u64, u64, u64, Instant)> {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        Ok((
            process::cpu_ticks(server_pid)?,
            process::cpu_ticks(h2load_pid)?,
            process::system_busy_ticks()?,
            Instant::now(),
        ))
    };
    let (s0, h0, b0, w0) = sample(started + margin)?;
    let (s1, h1, b1, w1) = sample(started + Duration::from_secs(seconds) - margin)?;
    Ok(CpuWindow {
        server: s1 - s0,
        h2load: h1 - h0,
        machine: b1 - b0,
        seconds: (w1 - w0).as_secs_f64(),
    })
}

impl CpuWindow {
    /// The server's CPU per request at `requests_per_second`, and who else
    /// used the cores meanwhile.
    fn cpu(&self, clk_tck: f64, requests_per_second: f64) -> Cpu {
        let cores = |t: u64| t as f64 / clk_tck / self.seconds;
        let cpu_share = cores(self.server);
        Cpu {
            ticks: self.server,
            window_seconds: self.seconds,
            clk_tck,
            cpu_share,
            us_per_request: cpu_share * 1e6 / requests_per_second.max(1e-9),
            h2load_share: cores(self.h2load),
            // What the rest of the machine (this process, other people's builds)
            // took from the two cores meanwhile.
            others_share: cores(self.machine.saturating_sub(self.server + self.h2load)),
        }
    }
}
