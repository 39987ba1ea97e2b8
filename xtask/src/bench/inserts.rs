//! Durable inserts, in one run: the disk's cost of one fdatasync
//! (pg_test_fsync), addOrder on our server (a fresh store each shape),
//! then PostgreSQL's insert rate with pgbench at 1, 10 and 50 clients.
//! Our server and PostgreSQL each run on the server core, their load
//! generators on the load core; their data on the same disk (the run's
//! temp dir); each runs alone.

use std::time::Duration;

use anyhow::Result;

use super::config::{ADD_CONCURRENCY, ADD_CONNECTIONS, FSYNC_TEST_SECONDS, Kind, PGBENCH_CLIENTS};
use super::loadgen::args;
use super::measure::Rig;
use super::meter::Meter;
use super::postgres::{self, Cluster, INSERT_SCRIPT, Installed};
use super::results::{AddRun, Fsync, Inserts, Outcome, Postgres};

pub fn inserts(rig: &mut Rig) -> Result<Inserts> {
    rig.progress.step(&format!(
        "durable inserts: pg_test_fsync; ours: addOrder at {ADD_CONNECTIONS}x{ADD_CONCURRENCY} and 1x1; \
         PostgreSQL: pgbench at {PGBENCH_CLIENTS:?} clients"
    ));
    let fsync = match &rig.postgres {
        Ok(pg) => fdatasync(rig, pg),
        Err(why) => Err(why.clone()),
    };
    let loaded = add_orders(rig, ADD_CONNECTIONS, ADD_CONCURRENCY)?;
    let single = add_orders(rig, 1, 1)?;
    let postgres = match rig.postgres.clone() {
        Ok(pg) => postgres(rig, &pg).map_err(|e| {
            let why = format!("failed: {e:#}");
            rig.progress.note(&format!("PostgreSQL {why}"));
            why
        }),
        Err(why) => Err(why),
    };
    Ok(Inserts {
        loaded,
        single,
        fsync,
        postgres,
    })
}

fn fdatasync(rig: &Rig, pg: &Installed) -> Outcome<Fsync> {
    match postgres::fdatasync_cost(pg, FSYNC_TEST_SECONDS, rig.work()) {
        Ok(f) => {
            rig.progress.note(&format!(
                "pg_test_fsync: fdatasync {:.1} ops/s = {:.0} us/op",
                f.ops_per_second, f.us_per_op
            ));
            Ok(f)
        }
        Err(e) => {
            rig.progress.note(&format!("pg_test_fsync failed: {e:#}"));
            Err(format!("pg_test_fsync failed: {e:#}"))
        }
    }
}

/// addOrder at `connections` x `concurrency` on a fresh store, with the
/// server's CPU.
fn add_orders(rig: &Rig, connections: usize, concurrency: usize) -> Result<AddRun> {
    let server = rig.servers.start(Kind::Ours, None)?;
    let args = args(&[
        "--rpc",
        "add",
        "--connections",
        &connections.to_string(),
        "--concurrency",
        &concurrency.to_string(),
        "--seconds",
        &rig.seconds.to_string(),
    ]);
    let meter = Meter::start(server.pid(), rig.clk_tck)?;
    let bench = rig.loadgen_bench(&server, &args, Duration::from_secs(rig.seconds + 120))?;
    let usage = meter.stop()?;
    rig.progress.note(&format!(
        "ours addOrder {connections}x{concurrency}: {:.0} calls/s, p50 {} us, p99 {} us, {:.1} us server CPU/call \
         ({} right, {} wrong, {} errors; other processes {:.0}% of a core)",
        bench.calls_per_second,
        bench.p50_us,
        bench.p99_us,
        usage.server_us_per(bench.calls),
        bench.ok,
        bench.wrong,
        bench.errors,
        usage.others_cores * 100.0
    ));
    Ok(AddRun { args, bench, usage })
}

/// A throwaway cluster, pgbench at each client count, then `pg_ctl stop`
/// (also when a step fails: the cluster's handle stops it as it drops).
fn postgres(rig: &Rig, pg: &Installed) -> Result<Postgres> {
    let mut cluster = Cluster::start(pg, rig.work())?;
    let settings = cluster.settings()?;
    rig.progress.note(&format!(
        "{}: {}",
        pg.version,
        settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let mut pgbench = Vec::new();
    for clients in PGBENCH_CLIENTS {
        let run = cluster.pgbench(clients, rig.seconds, rig.clk_tck)?;
        rig.progress.note(&format!(
            "pgbench -c {clients}: {:.0} inserts/s, latency average {:.3} ms, {:.1} us PostgreSQL CPU/insert \
             (other processes {:.0}% of a core)",
            run.tps,
            run.latency_ms,
            run.usage.server_us_per(run.transactions),
            run.usage.others_cores * 100.0
        ));
        pgbench.push(run);
    }
    cluster.stop()?;
    Ok(Postgres {
        version: pg.version.clone(),
        settings,
        pgbench,
        script: INSERT_SCRIPT.trim().to_owned(),
    })
}
