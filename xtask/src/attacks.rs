//! `cargo xtask attacks`: what the hostile-client attacks of issue 16 cost
//! the server in memory now. Each attack runs against a fresh release server
//! as shipped (every limit at its default), on loopback, server on one core:
//! its RSS before, its peak RSS during (`VmHWM`), its RSS once the attack
//! has gone, and what the server answered. The tests
//! (`tests/it/production/`) check each defence at a small scale; this
//! measures them at the scale.
//!
//! 1. 5,000 TCP connections that never speak;
//! 2. 10 connections x 100 streams, each announcing a 4,000,000-byte
//!    addOrder message and sending all of it but the last byte;
//! 3. 3 updateOrders calls of 1,000 orders of 1,000 items of 1,000 bytes
//!    (~1 GB each);
//! 4. 900 searchOrders streams (each matching 100,000 orders) on peers
//!    that stop reading their sockets, so the server's writes stall;
//! 5. 5,000 health `Watch` streams (they need no token);
//! 6. 30 processOrders streams asking again and again for one ~1 MB order,
//!    on peers that stop reading.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::bench::binaries::bench_binaries;
use crate::bench::config::{Kind, REPORT_DIR};
use crate::bench::process;
use crate::bench::servers::{Server, Servers};
use crate::bench::stores::bulk_load;

/// What the run is asked for.
pub struct AttackOptions {
    /// Also write ATTACKS.md into docs/bench/.
    pub write_report: bool,
    /// Only these attacks (1 to 6); all when empty.
    pub only: Vec<usize>,
    /// Extra server arguments, to try other limits than the defaults.
    pub server_args: Vec<String>,
}

/// One attack's figures, in KiB.
struct Figure {
    attack: &'static str,
    before: u64,
    peak: u64,
    after: u64,
    /// What the server did, in words.
    outcome: String,
}

/// Orders in the store of the updateOrders and searchOrders attacks.
const STORE_ORDERS: usize = 100_000;

pub fn run_attacks(root: &Path, options: &AttackOptions) -> Result<()> {
    if options.write_report && (!options.only.is_empty() || !options.server_args.is_empty()) {
        bail!(
            "--write-report writes every attack against the server as shipped: not with --only or --server-arg"
        );
    }
    process::raise_open_files_limit();
    let work = process::run_dir("attacks")?;
    let work = work.path();
    let binaries = bench_binaries(root, work, false)?;
    let servers = Servers::ours_only(root, work, binaries.server.clone());
    let store = work.join("store");
    bulk_load(&binaries.bulk_load, &store, STORE_ORDERS, work)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let extra: Vec<&str> = options.server_args.iter().map(String::as_str).collect();
    let wanted = |n: usize| options.only.is_empty() || options.only.contains(&n);
    let mut figures = Vec::new();
    if wanted(1) {
        println!("1/6 5,000 connections that never speak ...");
        figures.push(measure(
            &servers,
            &extra,
            None,
            "5,000 TCP connections that never speak",
            |s| runtime.block_on(silent_connections(s.addr, 5_000)),
        )?);
    }
    if wanted(2) {
        println!("2/6 1,000 partial 4 MB messages ...");
        figures.push(measure(
            &servers,
            &extra,
            None,
            "10 connections x 100 streams announcing 4 MB addOrder messages, all but the last byte sent",
            |s| runtime.block_on(partial_messages(s.addr, 10, 100, 4_000_000)),
        )?);
    }
    if wanted(3) {
        println!("3/6 3 updateOrders calls of ~1 GB ...");
        figures.push(measure(
            &servers,
            &extra,
            Some(&store),
            "3 updateOrders calls of 1,000 orders x 1,000 items x 1,000 B (~1 GB each)",
            |s| runtime.block_on(huge_updates(s.addr, 3)),
        )?);
    }
    if wanted(4) {
        println!("4/6 900 searchOrders streams whose peers stop reading (~40 s) ...");
        figures.push(measure(
            &servers,
            &extra,
            Some(&store),
            "900 searchOrders streams (100,000 orders each) on peers that stop reading",
            |s| runtime.block_on(stalled_searches(s.addr, 9, 100)),
        )?);
    }
    if wanted(5) {
        println!("5/6 5,000 health watches ...");
        figures.push(measure(
            &servers,
            &extra,
            None,
            "5,000 health Watch streams",
            |s| runtime.block_on(health_watches(s.addr, 50, 100)),
        )?);
    }
    if wanted(6) {
        println!(
            "6/6 30 processOrders streams of ~1 MB orders whose peers stop reading (~40 s) ..."
        );
        figures.push(measure(
            &servers,
            &extra,
            None,
            "30 processOrders streams, each asking 300 times for one ~1 MB order, on peers that stop reading",
            |s| runtime.block_on(stalled_processing(s.addr, 3, 10)),
        )?);
    }

    let text = markdown(&figures);
    println!("\n{text}");
    if options.write_report {
        let path = root.join(REPORT_DIR).join("ATTACKS.md");
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A fresh server (on `store`, or an empty data dir), its RSS before,
/// `attack` (which returns the server's answer in words once the attack
/// has gone), its peak RSS, then its RSS a moment later.
fn measure(
    servers: &Servers,
    extra: &[&str],
    store: Option<&Path>,
    attack: &'static str,
    run: impl FnOnce(&Server) -> Result<String>,
) -> Result<Figure> {
    let server = servers.start_with(Kind::Ours, store.map(Path::to_path_buf), extra)?;
    std::thread::sleep(Duration::from_secs(1));
    let before = server.kib("VmRSS")?;
    let outcome = run(&server).with_context(|| format!("attack: {attack}"))?;
    std::thread::sleep(Duration::from_secs(2));
    let figure = Figure {
        attack,
        before,
        peak: server.kib("VmHWM")?,
        after: server.kib("VmRSS")?,
        outcome,
    };
    if !server.stop() {
        bail!("the server did not stop within 30 s of SIGTERM after: {attack}");
    }
    println!(
        "   RSS {} -> peak {} -> {} MiB: {}",
        mib(figure.before),
        mib(figure.peak),
        mib(figure.after),
        figure.outcome
    );
    Ok(figure)
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn markdown(figures: &[Figure]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Memory under attack\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask attacks --write-report` (`make attacks`): each attack of issue 16 \
         against a fresh release server as shipped (every limit at its default; server on one core, \
         loopback), on an empty store or one of {STORE_ORDERS} bulk-loaded orders. RSS before the \
         attack, the peak during it (`VmHWM`), and 2 s after it has gone (what mimalloc has not \
         returned to the system by then stays counted). The defences are in \
         [RELIABILITY.md](../../RELIABILITY.md#hostile-load-every-total-bounded).\n"
    );
    let _ = writeln!(
        s,
        "| attack | RSS before MiB | peak MiB | after MiB | what the server did |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|---|");
    for f in figures {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            f.attack,
            mib(f.before),
            mib(f.peak),
            mib(f.after),
            f.outcome
        );
    }
    s
}

/// `n` connections that send nothing; how many the server closed, and when.
async fn silent_connections(addr: SocketAddr, n: usize) -> Result<String> {
    let started = Instant::now();
    let mut held = Vec::with_capacity(n);
    for start in (0..n).step_by(100) {
        let mut batch = tokio::task::JoinSet::new();
        for _ in start..(start + 100).min(n) {
            batch.spawn(TcpStream::connect(addr));
        }
        while let Some(opened) = batch.join_next().await {
            held.push(opened??);
        }
    }
    // Each waits for the server to close it (EOF or reset), for up to 30 s.
    let closed = Arc::new(AtomicUsize::new(0));
    let mut waits = tokio::task::JoinSet::new();
    for stream in held {
        let closed = Arc::clone(&closed);
        waits.spawn(async move {
            let mut stream = stream;
            let mut byte = [0u8; 1];
            let read = tokio::io::AsyncReadExt::read(&mut stream, &mut byte);
            if tokio::time::timeout(Duration::from_secs(30), read)
                .await
                .is_ok()
            {
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while waits.join_next().await.is_some() {}
    Ok(format!(
        "closed {} of {n} (those beyond `--max-connections-per-ip` at once, the rest at \
         `--handshake-timeout`) within {:.0} s",
        closed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ))
}

/// Every task's output once all have ended, or an error naming `what` if
/// they have not within `limit`.
async fn all_within<T: 'static>(
    mut tasks: tokio::task::JoinSet<Result<T>>,
    limit: Duration,
    what: &str,
) -> Result<Vec<T>> {
    let mut outputs = Vec::with_capacity(tasks.len());
    let all = tokio::time::timeout(limit, async {
        while let Some(done) = tasks.join_next().await {
            outputs.push(done??);
        }
        anyhow::Ok(())
    });
    all.await
        .with_context(|| format!("{what} within {} s", limit.as_secs()))??;
    Ok(outputs)
}

/// An HTTP/2 connection to `addr` with large windows, as a hostile client
/// would open (and as grpc-go's and tonic's clients do).
async fn connect<T>(io: T) -> Result<h2::client::SendRequest<Bytes>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(64 << 20)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(send)
}

fn grpc_request(addr: SocketAddr, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a valid request")
}

/// One gRPC message: its 5-byte prefix and `payload`.
fn grpc_message(payload: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + payload.len());
    framed.push(0);
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    framed.into()
}

/// Sends `data` as the stream's flow control allows; `false` if the server
/// ended the stream first.
async fn send_paced(send: &mut h2::SendStream<Bytes>, mut data: Bytes) -> bool {
    while !data.is_empty() {
        send.reserve_capacity(data.len().min(1 << 20));
        let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) if n > 0 => n,
            Some(Ok(_)) => continue,
            _ => return false,
        };
        let chunk = data.split_to(granted.min(data.len()));
        if send.send_data(chunk, false).is_err() {
            return false;
        }
    }
    true
}

/// The `grpc-status` of a response that ended in its headers (refused).
fn refused_with(response: &http::Response<h2::RecvStream>) -> Option<String> {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Streams that each announce a `size`-byte addOrder message and send all of
/// it but the last byte, then hold; how many the server refused.
async fn partial_messages(
    addr: SocketAddr,
    connections: usize,
    streams: usize,
    size: usize,
) -> Result<String> {
    let refused = Arc::new(AtomicUsize::new(0));
    let complete = Arc::new(AtomicUsize::new(0));
    let mut attacks = tokio::task::JoinSet::new();
    let payload = Bytes::from(vec![b'x'; size - 1]);
    for _ in 0..connections {
        let h2 = connect(TcpStream::connect(addr).await?).await?;
        for _ in 0..streams {
            let mut h2 = h2.clone().ready().await?;
            let request = grpc_request(addr, "/ecommerce.OrderManagement/addOrder");
            let (mut response, mut send) = h2.send_request(request, false)?;
            let (refused, complete, payload) =
                (Arc::clone(&refused), Arc::clone(&complete), payload.clone());
            attacks.spawn(async move {
                let mut prefix = vec![0u8];
                prefix.extend_from_slice(&(size as u32).to_be_bytes());
                let sent = async {
                    send_paced(&mut send, prefix.into()).await
                        && send_paced(&mut send, payload).await
                };
                let all_sent = tokio::select! {
                    biased;
                    answered = &mut response => {
                        if answered.is_ok_and(|r| refused_with(&r).as_deref() == Some("8")) {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        return anyhow::Ok(None);
                    }
                    all_sent = sent => all_sent,
                };
                if !all_sent {
                    // Stopped by the server: how did it answer?
                    let answer = tokio::time::timeout(Duration::from_secs(10), response).await;
                    if answer
                        .is_ok_and(|a| a.is_ok_and(|r| refused_with(&r).as_deref() == Some("8")))
                    {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    return anyhow::Ok(None);
                }
                complete.fetch_add(1, Ordering::Relaxed);
                // Held, its message one byte short, until the attack ends.
                anyhow::Ok(Some((send, response)))
            });
        }
    }
    // Every stream either refused or all but its last byte sent (bounded).
    let held = all_within(
        attacks,
        Duration::from_secs(120),
        "the partial messages were not all sent or refused",
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcome = format!(
        "{} of {} streams refused (`RESOURCE_EXHAUSTED`, `--max-buffered-bytes`), {} held one byte short",
        refused.load(Ordering::Relaxed),
        connections * streams,
        complete.load(Ordering::Relaxed)
    );
    drop(held);
    Ok(outcome)
}

/// A stored order `bulk-<n>` of 1,000 items of 1,000 bytes, encoded.
fn huge_order(n: usize) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
        out.push(tag);
        let mut len = value.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(value);
    }
    let mut order = Vec::with_capacity(1_010_000);
    field(&mut order, 0x0a, format!("bulk-{n:07}").as_bytes()); // id = 1
    let item = vec![b'i'; 1_000];
    for _ in 0..1_000 {
        field(&mut order, 0x12, &item); // items = 2
    }
    field(&mut order, 0x2a, b"Seoul"); // destination = 5
    order
}

/// `calls` updateOrders calls, each streaming 1,000 huge orders; the status
/// each ended with.
async fn huge_updates(addr: SocketAddr, calls: usize) -> Result<String> {
    let h2 = connect(TcpStream::connect(addr).await?).await?;
    let mut attacks = tokio::task::JoinSet::new();
    for call in 0..calls {
        let mut h2 = h2.clone().ready().await?;
        let request = grpc_request(addr, "/ecommerce.OrderManagement/updateOrders");
        let (response, mut send) = h2.send_request(request, false)?;
        attacks.spawn(async move {
            let sending = async {
                for i in 0..1_000 {
                    let message = grpc_message(&huge_order(call * 1_000 + i));
                    if !send_paced(&mut send, message).await {
                        return;
                    }
                }
                let _ = send.send_data(Bytes::new(), true);
            };
            let (response, ()) = tokio::join!(
                async {
                    let response = response.await?;
                    if let Some(status) = refused_with(&response) {
                        return anyhow::Ok(status);
                    }
                    let mut body = response.into_body();
                    while let Some(data) = body.data().await {
                        let _ = body.flow_control().release_capacity(data?.len());
                    }
                    let trailers = body.trailers().await?.unwrap_or_default();
                    Ok(trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned())
                },
                sending
            );
            response
        });
    }
    let mut statuses = all_within(
        attacks,
        Duration::from_secs(180),
        "the updateOrders calls did not end",
    )
    .await?;
    statuses.sort();
    Ok(format!(
        "each call ended with grpc-status {} (8 = `RESOURCE_EXHAUSTED`, `--max-update-bytes`); nothing applied",
        statuses.join(", ")
    ))
}

/// Stops and resumes the reads of every [`Freezable`] socket sharing it.
#[derive(Default)]
struct Freeze {
    frozen: AtomicBool,
    /// The tasks whose reads were stopped, woken when reads resume.
    waiting: std::sync::Mutex<Vec<std::task::Waker>>,
}

impl Freeze {
    fn set(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
        if !frozen {
            for waker in self.waiting.lock().expect("not poisoned").drain(..) {
                waker.wake();
            }
        }
    }
}

/// A socket whose reads can be stopped: the peer that stops reading.
struct Freezable {
    tcp: TcpStream,
    freeze: Arc<Freeze>,
}

impl AsyncRead for Freezable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.freeze.frozen.load(Ordering::SeqCst) {
            let mut waiting = self.freeze.waiting.lock().expect("not poisoned");
            // Checked again under the lock: `set(false)` may have just run.
            if self.freeze.frozen.load(Ordering::SeqCst) {
                waiting.push(cx.waker().clone());
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Freezable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// `connections` x `streams` searchOrders calls matching every order, on
/// peers that stop reading ([`stalled_streams`]).
async fn stalled_searches(addr: SocketAddr, connections: usize, streams: usize) -> Result<String> {
    let gadget = grpc_message(&[0x0a, 6, b'g', b'a', b'd', b'g', b'e', b't']);
    let path = "/ecommerce.OrderManagement/searchOrders";
    stalled_streams(addr, connections, streams, path, gadget).await
}

/// The id of the large order [`stalled_processing`] adds.
const LARGE_ORDER: usize = 9_999_999;

/// Adds one order of 1,000 items of 1,000 bytes (~1 MB, as large as
/// validation allows), then opens `connections` x `streams` processOrders
/// calls, each sending its id 300 times, on peers that stop reading
/// ([`stalled_streams`]): every shipment is ~3 MB.
async fn stalled_processing(
    addr: SocketAddr,
    connections: usize,
    streams: usize,
) -> Result<String> {
    let mut h2 = connect(TcpStream::connect(addr).await?)
        .await?
        .ready()
        .await?;
    let request = grpc_request(addr, "/ecommerce.OrderManagement/addOrder");
    let (response, mut send) = h2.send_request(request, false)?;
    if !send_paced(&mut send, grpc_message(&huge_order(LARGE_ORDER))).await {
        bail!("the large order's addOrder was ended before it was sent");
    }
    send.send_data(Bytes::new(), true)?;
    let mut body = response.await?.into_body();
    while let Some(data) = body.data().await {
        let _ = body.flow_control().release_capacity(data?.len());
    }
    let status = body.trailers().await?.unwrap_or_default();
    if status.get("grpc-status").is_none_or(|s| s != "0") {
        bail!("adding the large order failed: {status:?}");
    }
    let id = format!("bulk-{LARGE_ORDER:07}");
    let mut value = vec![0x0a, id.len() as u8];
    value.extend_from_slice(id.as_bytes());
    let ids: Vec<u8> = (0..300).flat_map(|_| grpc_message(&value)).collect();
    let path = "/ecommerce.OrderManagement/processOrders";
    stalled_streams(addr, connections, streams, path, ids.into()).await
}

/// `connections` x `streams` calls of `path` sending `request_body`; once
/// each has its first answer, the peers stop reading their sockets. The
/// server's RSS is sampled while they stall, and the connections are
/// watched until the server resets them (`--write-stall-timeout`).
async fn stalled_streams(
    addr: SocketAddr,
    connections: usize,
    streams: usize,
    path: &str,
    request_body: Bytes,
) -> Result<String> {
    let freeze = Arc::new(Freeze::default());
    let mut connections_held = Vec::new();
    let mut answered = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let tcp = TcpStream::connect(addr).await?;
        let h2 = connect(Freezable {
            tcp,
            freeze: Arc::clone(&freeze),
        })
        .await?;
        for _ in 0..streams {
            let mut h2 = h2.clone().ready().await?;
            let request = grpc_request(addr, path);
            let (response, mut send) = h2.send_request(request, false)?;
            send.send_data(request_body.clone(), true)?;
            answered.spawn(async move {
                let response = response.await?;
                // Held, never read: the server must stall.
                anyhow::Ok(response.into_body())
            });
        }
        connections_held.push(h2);
    }
    let bodies = all_within(
        answered,
        Duration::from_secs(60),
        "the streams did not all start",
    )
    .await?;
    freeze.set(true);
    let stalled_at = Instant::now();
    // The write-stall timeout is 30 s: a little more, and the server
    // should have reset the connections.
    tokio::time::sleep(Duration::from_secs(36)).await;
    freeze.set(false);
    let waited = stalled_at.elapsed().as_secs_f64();
    // Reads resume: a reset connection fails each of its streams at once.
    let mut drains = tokio::task::JoinSet::new();
    for mut body in bodies {
        drains.spawn(async move {
            while let Some(data) = body.data().await {
                match data {
                    Ok(data) => {
                        let _ = body.flow_control().release_capacity(data.len());
                    }
                    Err(_) => return true,
                }
            }
            false
        });
    }
    let mut reset = 0;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ended) = drains.join_next().await {
            reset += usize::from(ended.unwrap_or(false));
        }
    })
    .await;
    drains.abort_all();
    drop(connections_held);
    Ok(format!(
        "peers stopped reading with {} streams open; {reset} streams found reset when reading \
         resumed {waited:.0} s later (`--write-stall-timeout`, 30 s)",
        connections * streams,
    ))
}

/// `connections` x `streams` health Watch calls; how many were refused.
async fn health_watches(addr: SocketAddr, connections: usize, streams: usize) -> Result<String> {
    let request_body = grpc_message(&[]);
    let (mut held, mut open_connections) = (Vec::new(), Vec::new());
    let mut refused = 0;
    let mut open = 0;
    for _ in 0..connections {
        let h2 = connect(TcpStream::connect(addr).await?).await?;
        let mut answers = Vec::new();
        for _ in 0..streams {
            let mut h2 = h2.clone().ready().await?;
            let request = grpc_request(addr, "/grpc.health.v1.Health/Watch");
            let (response, mut send) = h2.send_request(request, false)?;
            send.send_data(request_body.clone(), true)?;
            answers.push(response);
        }
        for response in answers {
            let response = tokio::time::timeout(Duration::from_secs(30), response)
                .await
                .context("no answer to a health watch within 30 s")??;
            match refused_with(&response).as_deref() {
                Some("8") => refused += 1,
                Some(other) => bail!("a health watch ended with grpc-status {other}"),
                None => {
                    open += 1;
                    held.push(response);
                }
            }
        }
        open_connections.push(h2);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop((held, open_connections));
    Ok(format!(
        "{open} watches open (`--max-health-watches`), {refused} refused with `RESOURCE_EXHAUSTED`"
    ))
}
