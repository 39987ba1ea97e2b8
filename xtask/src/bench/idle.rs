//! Memory at rest: a fresh server's RSS, then with 1,000 idle HTTP/2
//! connections open, then after closing them.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use super::config::{IDLE_CONNECTIONS, Kind};
use super::measure::{Rig, mib};
use super::process::status_kib;
use super::results::Idle;
use super::servers::Server;

/// A fresh server's RSS, then with 1,000 idle HTTP/2 connections open.
pub fn idle(rig: &mut Rig, kind: Kind) -> Result<Idle> {
    rig.progress.step(&format!(
        "{}: idle RSS, then {IDLE_CONNECTIONS} idle HTTP/2 connections",
        kind.key()
    ));
    let server = rig.servers.start(kind, None)?;
    // Let start-up allocations settle (Python imports, V8's first GC).
    std::thread::sleep(Duration::from_secs(1));
    let idle_kib = server.kib("VmRSS")?;
    let held = hold_idle_connections(&server, IDLE_CONNECTIONS)?;
    let result = Idle {
        kind,
        idle_kib,
        connections: IDLE_CONNECTIONS,
        with_connections_kib: held.0,
        after_close_kib: held.1,
    };
    rig.progress.note(&format!(
        "idle {:.1} MiB; +{:.1} MiB with {IDLE_CONNECTIONS} connections ({:.1} KiB each)",
        mib(idle_kib),
        mib(held.0.saturating_sub(idle_kib)),
        held.0.saturating_sub(idle_kib) as f64 / IDLE_CONNECTIONS as f64
    ));
    Ok(result)
}

/// Opens `n` HTTP/2 connections (preface, SETTINGS, and a PING round
/// trip, so the server has set each one up), waits a second, samples the
/// server's VmRSS; closes them, waits a second, samples again.
fn hold_idle_connections(server: &Server, n: usize) -> Result<(u64, u64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (addr, pid) = (server.addr, server.pid());
    runtime.block_on(async move {
        let work = async move {
            let mut held = Vec::with_capacity(n);
            // 100 handshakes at a time: a burst of 1,000 would overflow the
            // listen backlog, which measures SYN retries, not memory.
            for start in (0..n).step_by(100) {
                let mut batch = tokio::task::JoinSet::new();
                for _ in start..(start + 100).min(n) {
                    batch.spawn(open_idle_connection(addr));
                }
                while let Some(opened) = batch.join_next().await {
                    held.push(opened??);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let with = status_kib(pid, "VmRSS")?;
            held.iter().for_each(tokio::task::JoinHandle::abort);
            drop(held);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = status_kib(pid, "VmRSS")?;
            anyhow::Ok((with, after))
        };
        tokio::time::timeout(Duration::from_secs(120), work)
            .await
            .context("1,000 idle connections did not open within 120 s")?
    })
}

/// One idle connection, kept open by the task returned (abort it to close).
async fn open_idle_connection(addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (send, mut connection) = h2::client::handshake(tcp).await?;
    let mut ping = connection.ping_pong().context("no PING handle")?;
    let task = tokio::spawn(async move {
        // Holding the sender keeps the connection open while idle.
        let _send = send;
        let _ = connection.await;
    });
    ping.ping(h2::Ping::opaque())
        .await
        .context("no PING answer")?;
    Ok(task)
}
