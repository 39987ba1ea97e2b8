//! The streaming RPCs, on our server only (the peers serve getOrder
//! alone): searchOrders over 100k stored orders with the server's RSS
//! sampled meanwhile, then processOrders and updateOrders.

use std::time::Duration;

use anyhow::Result;

use super::config::{Kind, ORDER_ID, SEARCH_ORDERS, SEARCH_QUERY, SEARCH_STREAMS};
use super::loadgen::args;
use super::measure::{Rig, mib};
use super::process;
use super::results::{Search, Streams};

/// searchOrders over 100k stored orders to one client, and the server's
/// RSS growth while it streams. On the cached bulk-loaded store of 100k
/// orders (every order has an item "widget <n>"), stopped cleanly after.
pub fn search(rig: &mut Rig) -> Result<Search> {
    rig.progress.step(&format!(
        "ours: searchOrders(\"{SEARCH_QUERY}\") over {SEARCH_ORDERS} stored orders, {SEARCH_STREAMS} streams"
    ));
    let store = rig.stores.get(SEARCH_ORDERS, rig.work())?;
    rig.stores.check_out(&store)?;
    let (server, _) = rig.servers.start_on(&store.dir, Duration::from_secs(600))?;
    std::thread::sleep(Duration::from_millis(500));
    let base_kib = server.kib("VmRSS")?;
    let cpu_before = process::cpu_ticks(server.pid())?;
    let search_args = args(&[
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
    ]);
    let (result, peak_kib, samples) =
        rig.sampling_rss(&server, &search_args, Duration::from_secs(360), base_kib)?;
    let cpu_ticks = process::cpu_ticks(server.pid())? - cpu_before;
    if server.stop() {
        rig.stores.check_in(&store)?;
    }
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
        load_seconds: store.load_seconds,
        verified: result.all_ok() && result.messages == expected,
        expected_messages: expected,
        result,
        base_kib,
        peak_kib,
        samples,
        cpu_us_per_order,
    })
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
