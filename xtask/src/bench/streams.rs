//! The streaming RPCs, on our server only (the peers serve getOrder
//! alone): searchOrders over 100k stored orders with the server's RSS
//! sampled meanwhile, then processOrders and updateOrders.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::config::{Kind, ORDER_ID, RSS_SAMPLE, SEARCH_ORDERS, SEARCH_QUERY, SEARCH_STREAMS};
use super::loadgen::{ClientBench, LOAD_GENERATOR, args};
use super::measure::{Rig, mib};
use super::process::{self, Proc, Stderr};
use super::results::{Search, Streams};
use super::servers::Server;

/// searchOrders over 100k stored orders to one client, and the server's
/// RSS growth while it streams.
pub fn search(rig: &mut Rig) -> Result<Search> {
    rig.progress.step(&format!(
        "ours: searchOrders(\"{SEARCH_QUERY}\") over {SEARCH_ORDERS} stored orders, {SEARCH_STREAMS} streams"
    ));
    let data = rig.work().join("search-data");
    let loading = Instant::now();
    load_orders(&rig.bulk_load, &data, SEARCH_ORDERS, rig.work())?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let mut server = rig.servers.start(Kind::Ours, Some(data.clone()))?;
    server.data_dir = Some(data);
    std::thread::sleep(Duration::from_millis(500));
    let base_kib = server.kib("VmRSS")?;
    let cpu_before = process::cpu_ticks(server.pid())?;
    let (result, peak_kib, samples) = stream_and_sample(rig, &server, base_kib)?;
    let cpu_ticks = process::cpu_ticks(server.pid())? - cpu_before;
    let expected = SEARCH_STREAMS * SEARCH_ORDERS as u64;
    let cpu_us_per_order = cpu_ticks as f64 / rig.clk_tck * 1e6 / result.messages.max(1) as f64;
    rig.progress.note(&format!(
        "{:.0} orders/s ({} of {expected} orders), {cpu_us_per_order:.2} us server CPU/order; \
         RSS {:.1} -> peak {:.1} MiB ({samples} samples)",
        result.messages_per_second,
        result.messages,
        mib(base_kib),
        mib(peak_kib)
    ));
    Ok(Search {
        orders: SEARCH_ORDERS,
        query: SEARCH_QUERY.into(),
        load_seconds,
        verified: result.all_ok() && result.messages == expected,
        expected_messages: expected,
        result,
        base_kib,
        peak_kib,
        samples,
        cpu_us_per_order,
    })
}

/// The search streams, one after another on one connection, with the
/// server's VmRSS sampled every RSS_SAMPLE meanwhile: the report, the
/// peak RSS (from `base_kib`) and the number of samples.
fn stream_and_sample(rig: &Rig, server: &Server, base_kib: u64) -> Result<(ClientBench, u64, u64)> {
    let mut cmd = rig.loadgen_command(
        server,
        &args(&[
            "--rpc",
            "search",
            "--query",
            SEARCH_QUERY,
            "--connections",
            "1",
            "--concurrency",
            "1",
            "--count",
            &SEARCH_STREAMS.to_string(),
            "--seconds",
            "300",
        ]),
    );
    let limit = Duration::from_secs(360);
    let mut proc = Proc::spawn("client-search", &mut cmd, limit, rig.work(), Stderr::File)?;
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
            "{} search failed ({}):\n{}",
            LOAD_GENERATOR.bench_name(),
            done.status,
            done.tail()
        )
    })?;
    Ok((result, peak_kib, samples))
}

/// The searchOrders data set, written straight into a fresh store by
/// `examples/bulk_load` (every order has an item "widget <n>"), a few
/// transactions instead of 100k fsync'd addOrder calls.
fn load_orders(bulk_load: &Path, dir: &Path, n: usize, work: &Path) -> Result<()> {
    let mut cmd = std::process::Command::new(bulk_load);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--count", &n.to_string()]);
    let line = process::render(&cmd);
    let done = Proc::spawn(
        "bulk-load",
        &mut cmd,
        Duration::from_secs(600),
        work,
        Stderr::File,
    )?
    .wait()?;
    if !done.status.success() {
        bail!("{line} failed: {}", done.tail());
    }
    Ok(())
}

/// processOrders and updateOrders with the load generator (the peers
/// serve getOrder only).
pub fn process_and_update(rig: &mut Rig) -> Result<Streams> {
    rig.progress.step("ours: processOrders and updateOrders");
    let server = rig.servers.start(Kind::Ours, None)?;
    let s = rig.seconds.to_string();
    let limit = Duration::from_secs(rig.seconds + 120);
    let process_args = args(&[
        "--rpc",
        "process",
        "--order-id",
        ORDER_ID,
        "--batch",
        "3",
        "--connections",
        "10",
        "--concurrency",
        "10",
        "--seconds",
        &s,
    ]);
    let (process, process_cpu_us) = rig.with_server_cpu(&server, &process_args, limit)?;
    rig.progress.note(&format!(
        "processOrders: {:.0} calls/s, {:.0} shipments/s, p99 {} us, {process_cpu_us:.1} us server CPU/call",
        process.calls_per_second, process.messages_per_second, process.p99_us
    ));
    // Each update commits (and fsyncs) one transaction: more callers only
    // queue on the store's writer.
    let update_args = args(&[
        "--rpc",
        "update",
        "--batch",
        "10",
        "--connections",
        "4",
        "--concurrency",
        "4",
        "--seconds",
        &s,
    ]);
    let (update, update_cpu_us) = rig.with_server_cpu(&server, &update_args, limit)?;
    rig.progress.note(&format!(
        "updateOrders: {:.0} calls/s ({:.0} orders/s), p99 {} us, {update_cpu_us:.1} us server CPU/call",
        update.calls_per_second,
        update.calls_per_second * 10.0,
        update.p99_us
    ));
    Ok(Streams {
        process,
        process_args,
        process_cpu_us,
        update,
        update_args,
        update_cpu_us,
        update_batch: 10,
    })
}
