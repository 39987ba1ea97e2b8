//! Accepting connections, with every total bounded.
//!
//! tonic's own `TcpIncoming` accepts whatever comes: no cap on connections,
//! none per client address, no deadline for a client that connects and never
//! speaks, and on `EMFILE` (no file descriptors left) its accept loop retries
//! at once, burning a core without a word. Here:
//!
//! - at most `max_connections` connections, and `max_per_ip` from one IP
//!   address; beyond either, a new connection is closed at once (and
//!   counted). The default total stays below the process's file-descriptor
//!   limit, so the limit is reached before the kernel's.
//! - a connection must send the HTTP/2 preface and its SETTINGS frame
//!   ([`PREFACE_BYTES`]) within `handshake_timeout`, or it is closed. (With
//!   TLS those bytes arrive inside the TLS handshake, which `tls_accept`
//!   bounds with the same timeout.)
//! - a connection with no call in flight for `idle_timeout` is sent GOAWAY,
//!   then closed (by `serve`, which holds the HTTP connection; the count of
//!   calls in flight it reads is kept here, in [`ConnState`]).
//! - a connection whose peer reads nothing for `write_stall_timeout` while
//!   we have bytes for it is closed with a reset (see `write_stall`).
//! - a peer that vanished (host down, cable cut, NAT entry dropped) is found
//!   by TCP keepalive: after `tcp_keepalive` of silence both ways the kernel
//!   probes every [`TCP_KEEPALIVE_INTERVAL`], and closes the connection after
//!   [`TCP_KEEPALIVE_PROBES`] unanswered (Go's listeners do the same for
//!   every grpc-go server). Unlike HTTP/2 pings, this costs a call nothing.
//! - `EMFILE`/`ENFILE` (and `ENOBUFS`/`ENOMEM`) make the accept loop back off
//!   (1 ms doubling to 1 s), with a warning at most every 10 s and a count.
//!
//! Each connection's [`ConnInfo`] reaches every request's extensions (`serve`
//! puts it there), so the middleware knows the peer and keeps the
//! connection's count of calls in flight.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::write_stall::WriteStall;

/// The client connection preface (24 bytes) and a SETTINGS frame header (9):
/// what every HTTP/2 client sends first.
pub const PREFACE_BYTES: usize = 24 + 9;

/// Between TCP keepalive probes, once they have started.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered TCP keepalive probes that close the connection.
pub const TCP_KEEPALIVE_PROBES: u32 = 3;

/// The most accept failures' backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning per this long about refused connections or accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The limits on connections; see the module documentation.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub handshake_timeout: Duration,
    /// Silence (both ways) before the kernel's TCP keepalive probes start.
    pub tcp_keepalive: Option<Duration>,
    pub write_stall_timeout: Option<Duration>,
}

/// What happened at the door, for logs, tests and (later) metrics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Closed at once: over `max_connections`.
    pub refused_total: AtomicU64,
    /// Closed at once: over `max_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// accept() failed for lack of file descriptors or memory.
    pub accept_errors: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub idle_closed: AtomicU64,
    /// Closed because the peer read nothing for `write_stall_timeout`.
    pub write_stalls: AtomicU64,
}

/// The open connections: how many, and how many per IP address.
struct Table {
    limits: ConnectionLimits,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<ConnectionStats>,
}

impl Table {
    /// A slot for a connection from `ip`, or `None` if a limit is reached.
    fn open(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.stats.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            self.stats.refused_total.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.limits.max_per_ip {
            self.stats.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *count += 1;
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            table: Arc::clone(self),
            ip,
        })
    }
}

/// A connection's place in the [`Table`], given back when it closes.
struct Slot {
    table: Arc<Table>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.table.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.table.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection's state, shared with the middleware through [`ConnInfo`].
#[derive(Debug)]
pub struct ConnState {
    /// Calls in flight on this connection.
    calls: AtomicUsize,
    /// When the last call ended (or the connection opened), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    fn new() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// A call started on this connection; it ends when the guard drops.
    pub fn call_started(self: &Arc<Self>) -> CallOnConn {
        self.calls.fetch_add(1, Ordering::Relaxed);
        CallOnConn(Arc::clone(self))
    }

    /// Calls in flight on this connection.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// When the connection became idle, if it is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        (self.calls() == 0)
            .then(|| self.epoch + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed)))
    }
}

/// A call in flight on a connection (see [`ConnState::call_started`]).
#[derive(Debug)]
pub struct CallOnConn(Arc<ConnState>);

impl Drop for CallOnConn {
    fn drop(&mut self) {
        let state = &self.0;
        let now = state.epoch.elapsed().as_millis() as u64;
        state.idle_since_ms.store(now, Ordering::Relaxed);
        state.calls.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every request on a connection carries in its extensions.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address; an IPv4 client of a dual-stack listener is
    /// written in its IPv4 form (`127.0.0.1:...`, not `[::ffff:127.0.0.1]:...`).
    pub remote_addr: SocketAddr,
    /// `remote_addr` as text, written once for the connection rather than
    /// once per call's log line.
    pub peer: Arc<str>,
    pub state: Arc<ConnState>,
}

impl ConnInfo {
    /// A new connection's info; `remote_addr` already in its canonical form.
    pub fn new(remote_addr: SocketAddr) -> Self {
        Self {
            remote_addr,
            peer: Arc::from(remote_addr.to_string()),
            state: Arc::new(ConnState::new()),
        }
    }
}

/// A connection: the TCP stream, its slot, and its timers.
pub struct Conn {
    stream: TcpStream,
    info: ConnInfo,
    _slot: Slot,
    /// Until the preface has arrived: bytes still expected, and the deadline.
    handshake: Option<(usize, Pin<Box<Sleep>>)>,
    stall: Option<WriteStall>,
    stats: Arc<ConnectionStats>,
}

/// Turns on TCP keepalive: probes after `idle` of silence (the kernel counts
/// whole seconds, at least one), then every [`TCP_KEEPALIVE_INTERVAL`].
fn set_tcp_keepalive(stream: &TcpStream, idle: Duration) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle.max(Duration::from_secs(1)))
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_PROBES);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

impl Conn {
    /// Checks the handshake's deadline; `Some(result)` ends the read.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<io::Result<()>> {
        let (_, deadline) = self.handshake.as_mut()?;
        if deadline.as_mut().poll(cx).is_pending() {
            return None;
        }
        self.stats
            .handshake_timeouts
            .fetch_add(1, Ordering::Relaxed);
        Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no HTTP/2 preface within the handshake timeout",
        )))
    }
}

impl Conn {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.info.remote_addr
    }

    /// What every request on this connection carries.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// `polled`, a write's outcome, through the write-stall clock; a stall
    /// closes the socket with a reset (its send queue is dropped too).
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Some(stall) = &mut self.stall else {
            return polled;
        };
        let waiting = polled.is_pending();
        let checked = stall.check(cx, polled);
        if waiting && let Poll::Ready(Err(e)) = &checked {
            self.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
            let _ = self.stream.set_zero_linger();
            tracing::debug!(peer = %self.info.remote_addr, "closing a connection: {e}");
        }
        checked
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = buf.filled().len() - before;
                if let Some((expected, _)) = &mut this.handshake {
                    *expected = expected.saturating_sub(read);
                    if *expected == 0 {
                        this.handshake = None;
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.poll_timers(cx) {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// The connections accepted from `listener` under `limits`.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
) -> impl Stream<Item = io::Result<Conn>> {
    let table = Arc::new(Table {
        limits,
        per_ip: Mutex::new(HashMap::new()),
        stats,
    });
    let door = Door {
        listener,
        table,
        backoff: None,
        last_warning: None,
    };
    futures_util::stream::unfold(door, |mut door| async move {
        let conn = door.next().await;
        Some((Ok(conn), door))
    })
}

/// The accept loop's state.
struct Door {
    listener: TcpListener,
    table: Arc<Table>,
    backoff: Option<Duration>,
    last_warning: Option<Instant>,
}

impl Door {
    /// The next connection within the limits; others are closed, errors waited out.
    async fn next(&mut self) -> Conn {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    self.accept_failed(e).await;
                    continue;
                }
            };
            self.backoff = None;
            let peer = canonical(peer);
            let Some(slot) = self.table.open(peer.ip()) else {
                self.warn(|| {
                    format!(
                        "refusing connections: the connection limits are reached \
                         (--max-connections, --max-connections-per-ip); last from {peer}"
                    )
                });
                continue; // dropping the stream closes it
            };
            // Left to Nagle, a call that writes twice (a stream's messages)
            // waited ~40 ms for the peer's delayed ACK.
            let _ = stream.set_nodelay(true);
            let limits = &self.table.limits;
            if let Some(idle) = limits.tcp_keepalive {
                let _ = set_tcp_keepalive(&stream, idle);
            }
            return Conn {
                stream,
                info: ConnInfo::new(peer),
                _slot: slot,
                handshake: Some((
                    PREFACE_BYTES,
                    Box::pin(tokio::time::sleep(limits.handshake_timeout)),
                )),
                stall: limits.write_stall_timeout.map(WriteStall::new),
                stats: Arc::clone(&self.table.stats),
            };
        }
    }

    /// Waits out an accept error: at once for one that concerns only that
    /// connection, with a growing backoff when the process or system is
    /// out of descriptors or memory (retrying at once would spin).
    async fn accept_failed(&mut self, e: io::Error) {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !exhausted {
            // ECONNABORTED and the like: that connection is gone, the next may be fine.
            tracing::debug!("accept failed: {e}");
            return;
        }
        self.table
            .stats
            .accept_errors
            .fetch_add(1, Ordering::Relaxed);
        let backoff = self
            .backoff
            .map_or(Duration::from_millis(1), |b| (b * 2).min(MAX_BACKOFF));
        self.backoff = Some(backoff);
        let table = Arc::clone(&self.table);
        self.warn(|| {
            format!(
                "cannot accept connections: {e}; backing off (open: {}, --max-connections {})",
                table.stats.open.load(Ordering::Relaxed),
                table.limits.max_connections
            )
        });
        tokio::time::sleep(backoff).await;
    }

    /// Logs `message` unless a warning was logged in the last [`WARN_EVERY`].
    fn warn(&mut self, message: impl FnOnce() -> String) {
        let now = Instant::now();
        if self.last_warning.is_none_or(|t| now >= t + WARN_EVERY) {
            self.last_warning = Some(now);
            tracing::warn!("{}", message());
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address written as IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// The default `--max-connections`: what the file-descriptor limit allows,
/// keeping some descriptors for the data file, logs and the runtime.
/// Raises the soft limit to the hard one first, as Go's runtime does.
pub fn default_max_connections() -> usize {
    const RESERVED: u64 = 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024 - RESERVED as usize;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let usable = limit.rlim_cur.saturating_sub(RESERVED).max(1);
    usable.min(1_000_000) as usize
}

/// One read from `conn`, for the tests.
#[cfg(test)]
async fn read_some(conn: &mut Conn) -> io::Result<usize> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 64];
    conn.read(&mut buf).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;

    fn limits(max: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_per_ip: per_ip,
            handshake_timeout: Duration::from_secs(10),
            tcp_keepalive: None,
            write_stall_timeout: None,
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_written_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4242".parse().unwrap();
        assert_eq!(canonical(mapped).to_string(), "127.0.0.1:4242");
        let v6: SocketAddr = "[::1]:4242".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[tokio::test]
    async fn connections_over_the_per_ip_limit_are_closed_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnectionStats::default());
        let mut incoming = Box::pin(incoming(listener, limits(10, 2), Arc::clone(&stats)));
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let first = incoming.next().await.unwrap().unwrap();
        let second = incoming.next().await.unwrap().unwrap();
        assert_eq!(stats.open.load(Ordering::Relaxed), 2);
        let mut third = TcpStream::connect(addr).await.unwrap();
        // The door closes the third at once; a fourth after a slot frees is let in.
        let next = tokio::spawn(async move { incoming.next().await.unwrap().unwrap() });
        let mut byte = [0u8; 1];
        use tokio::io::AsyncReadExt as _;
        assert_eq!(third.read(&mut byte).await.unwrap_or(0), 0, "closed");
        assert_eq!(stats.refused_per_ip.load(Ordering::Relaxed), 1);
        drop(first);
        let _d = TcpStream::connect(addr).await.unwrap();
        let fourth = next.await.unwrap();
        assert_eq!(stats.open.load(Ordering::Relaxed), 2);
        drop((second, fourth));
        assert_eq!(stats.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn accepted_connections_get_tcp_keepalive_when_asked() {
        for asked in [None, Some(Duration::from_secs(45))] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut limits = limits(10, 10);
            limits.tcp_keepalive = asked;
            let mut incoming = Box::pin(incoming(listener, limits, Arc::default()));
            let _client = TcpStream::connect(addr).await.unwrap();
            let conn = incoming.next().await.unwrap().unwrap();
            let socket = socket2::SockRef::from(&conn.stream);
            assert_eq!(socket.keepalive().unwrap(), asked.is_some());
            if let Some(idle) = asked {
                assert_eq!(socket.tcp_keepalive_time().unwrap(), idle);
                assert_eq!(
                    socket.tcp_keepalive_interval().unwrap(),
                    TCP_KEEPALIVE_INTERVAL
                );
                assert_eq!(
                    socket.tcp_keepalive_retries().unwrap(),
                    TCP_KEEPALIVE_PROBES
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_the_preface_is_closed_at_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnectionStats::default());
        let mut incoming = Box::pin(incoming(listener, limits(10, 10), Arc::clone(&stats)));
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut conn = incoming.next().await.unwrap().unwrap();
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap(); // part of it
        let err = read_some(&mut conn)
            .await
            .map(|_| ())
            .and(read_some(&mut conn).await);
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(stats.handshake_timeouts.load(Ordering::Relaxed), 1);
    }
}
