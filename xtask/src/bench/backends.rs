//! Issue 15: our server on PostgreSQL (`--database-url`) against our
//! server on its embedded store, with the same orders in both (the
//! bulk-loaded store of BACKEND_ORDERS orders, and the same rows written
//! into PostgreSQL): getOrder load, addOrder at 10x10 and sequential
//! rare-term searches, with one replica and, on PostgreSQL, two (two
//! server processes on one database, the load split across them: an
//! embedded store belongs to one process). The server CPU counted is the
//! replicas' and PostgreSQL's together. Everything server-side is pinned
//! to the server core, the load generators to the load core, as elsewhere.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::config::{
    ADD_CONCURRENCY, ADD_CONNECTIONS, BACKEND_ORDERS, CONNECTIONS, PG_REPLICAS, RARE_SEARCH_CALLS,
    STREAMS_PER_CONNECTION,
};
use super::loadgen::args;
use super::measure::Rig;
use super::meter::Meter;
use super::postgres::{Cluster, Installed};
use super::results::{BackendRun, Backends, SplitRun};
use super::scaling::{SEARCH_METHOD, logged_durations, rare_index, rare_query};
use super::servers::Server;

/// The database our server's replicas share.
const DATABASE: &str = "orders";

pub fn backends(rig: &mut Rig, pg: &Installed) -> Result<Backends> {
    let n = BACKEND_ORDERS;
    rig.progress.step(&format!(
        "backends: {n} orders, embedded store vs PostgreSQL with {PG_REPLICAS:?} replicas: getOrder, \
         addOrder {ADD_CONNECTIONS}x{ADD_CONCURRENCY}, rare-term searchOrders"
    ));
    let mut runs = Vec::new();

    // The embedded store: a copy of the cached one (addOrder changes it).
    let store = rig.stores.get(n, rig.work())?;
    let copy = rig.work().join("backends-embedded");
    copy_dir(&store.dir, &copy)?;
    let (server, _) = rig.servers.start_on(&copy, Duration::from_secs(600))?;
    let run = measure(rig, "embedded", &[&server], None)?;
    server.stop();
    note(rig, &run);
    runs.push(run);
    let _ = std::fs::remove_dir_all(&copy);

    let cluster = Cluster::start(pg, rig.work(), "pg-backends")?;
    let url = cluster.create_database(DATABASE)?;
    rig.servers.migrate(&url)?;
    fill(&cluster, n)?;
    for replicas in PG_REPLICAS {
        let servers = (0..replicas)
            .map(|i| rig.servers.start_replica(i, &url))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Server> = servers.iter().collect();
        let run = measure(rig, "PostgreSQL", &refs, Some(&cluster))?;
        for s in servers {
            s.stop();
        }
        note(rig, &run);
        runs.push(run);
        // The next replica count starts from the same orders.
        cluster.psql_in(DATABASE, "delete from orders where id not like 'bulk-%'")?;
        // A statement of its own: VACUUM runs outside a transaction only.
        cluster.psql_in(DATABASE, "vacuum analyze orders")?;
    }
    drop(cluster);
    Ok(Backends { orders: n, runs })
}

/// The bulk-loaded orders (`examples/bulk_load`'s: id `bulk-<n>`, items
/// `widget <n>` and `gadget`), written into the server's table by SQL, with
/// the folded-items column the server's search rule writes (lowercase
/// items joined by a newline: these are lowercase already).
fn fill(cluster: &Cluster, n: usize) -> Result<()> {
    cluster.psql_in(
        DATABASE,
        &format!(
            "insert into orders (id, items, description, price, destination, items_folded) \
             select 'bulk-' || lpad(i::text, 7, '0'), array['widget ' || i, 'gadget'], \
             'bulk-loaded order', (i % 1000) + 0.5, (array['Seoul', 'Busan', 'Incheon', 'Daegu'])[i % 4 + 1], \
             'widget ' || i || E'\\n' || 'gadget' from generate_series(0, {}) as i",
            n - 1
        ),
    )?;
    cluster.psql_in(DATABASE, "vacuum analyze orders")?;
    Ok(())
}

/// getOrder and addOrder, split across `servers`, with the CPU of the
/// replicas and of the database; then the rare-term searches on the first.
fn measure(
    rig: &Rig,
    backend: &'static str,
    servers: &[&Server],
    cluster: Option<&Cluster>,
) -> Result<BackendRun> {
    let replicas = servers.len();
    let s = rig.seconds.to_string();
    let get_id = format!("bulk-{:07}", rare_index(BACKEND_ORDERS));
    let get = split(
        rig,
        servers,
        cluster,
        args(&[
            "--rpc",
            "get",
            "--order-id",
            &get_id,
            "--connections",
            &(CONNECTIONS / replicas).to_string(),
            "--concurrency",
            &STREAMS_PER_CONNECTION.to_string(),
            "--seconds",
            &s,
        ]),
    )?;
    let rare_query = rare_query(BACKEND_ORDERS);
    let rare = rig.loadgen_bench(
        servers[0],
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
    let rare_server_us = logged_durations(&servers[0].log, SEARCH_METHOD, rare.calls as usize)?;
    let add = split(
        rig,
        servers,
        cluster,
        args(&[
            "--rpc",
            "add",
            "--connections",
            &(ADD_CONNECTIONS / replicas).to_string(),
            "--concurrency",
            &ADD_CONCURRENCY.to_string(),
            "--seconds",
            &s,
        ]),
    )?;
    Ok(BackendRun {
        backend,
        replicas,
        get,
        add,
        rare_query,
        rare,
        rare_server_us,
    })
}

/// One load split across the replicas, with the CPU of the replicas and
/// the database together and of the database alone.
fn split(
    rig: &Rig,
    servers: &[&Server],
    cluster: Option<&Cluster>,
    args: Vec<String>,
) -> Result<SplitRun> {
    let mut pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    pids.extend(cluster.map(Cluster::pid));
    let all = Meter::start_many(&pids, rig.clk_tck)?;
    let database = cluster
        .map(|c| Meter::start(c.pid(), rig.clk_tck))
        .transpose()?;
    let benches = rig.loadgen_split(servers, &args, Duration::from_secs(rig.seconds + 120))?;
    // The backends of closed connections: reaped into the postmaster's time.
    if cluster.is_some() {
        std::thread::sleep(Duration::from_millis(300));
    }
    let database_ticks = database
        .map(Meter::stop)
        .transpose()?
        .map_or(0, |u| u.server_ticks);
    let usage = all.stop()?;
    Ok(SplitRun {
        args,
        benches,
        usage,
        database_ticks,
    })
}

fn note(rig: &Rig, run: &BackendRun) {
    let (get_cpu, get_db) = run.get.cpu_us();
    let (add_cpu, add_db) = run.add.cpu_us();
    let rare = super::results::median(
        &run.rare_server_us
            .iter()
            .map(|&u| u as f64)
            .collect::<Vec<_>>(),
    );
    rig.progress.note(&format!(
        "{} x{}: getOrder {:.0} calls/s (p99 {} us, {get_cpu:.1} us CPU/call, database {get_db:.1}); \
         addOrder {:.0} calls/s (p99 {} us, {add_cpu:.1} us CPU/call, database {add_db:.1}); \
         searchOrders(\"{}\") server median {} us ({} logged)",
        run.backend,
        run.replicas,
        run.get.calls_per_second(),
        run.get.p99_us(),
        run.add.calls_per_second(),
        run.add.p99_us(),
        run.rare_query,
        rare.map_or("-".into(), |m| format!("{m:.0}")),
        run.rare_server_us.len()
    ));
}

/// A copy of a store's data dir (its files, one level of directories).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}
