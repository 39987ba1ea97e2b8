//! The TLS handshake, done here rather than by tonic, so that a refused
//! one is logged: tonic logs a failed handshake at debug level only, so a
//! client refused for its certificate (mTLS) or speaking plain HTTP/2 to the
//! TLS port left no trace. Here each failure is a warning naming the peer
//! and the reason, at most one per [`WARN_EVERY`] with a count of the
//! others (a scan must not flood the log), and counted in
//! [`TlsStats::refused`].
//!
//! The configuration is tonic's: the certificate chain and key, HTTP/2 by
//! ALPN, and with a client CA, a client certificate from it required.
//! Handshakes run as tasks of their own, bounded by the handshake timeout,
//! so a slow one never holds up the accept loop.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::connections::{Conn, ConnInfo};

/// At most one warning about refused handshakes per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the TLS door has seen.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes that failed or timed out.
    pub refused: AtomicU64,
}

/// The server's TLS: its configuration, handshake timeout and log limiter.
pub struct TlsDoor {
    acceptor: TlsAcceptor,
    timeout: Duration,
    pub stats: TlsStats,
    /// When the last warning was logged, and how many failures since.
    warned: Mutex<(Option<Instant>, u64)>,
}

impl TlsDoor {
    /// From PEM: the certificate chain, its key, and the CA client
    /// certificates must come from (mTLS), if any.
    pub fn new(
        cert: &[u8],
        key: &[u8],
        client_ca: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot read the TLS certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| format!("cannot read the TLS key: {e}"))?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("invalid TLS configuration: {e}"))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    let cert = cert.map_err(|e| format!("cannot read the client CA: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("invalid client CA certificate: {e}"))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| format!("invalid client CA: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("invalid TLS certificate or key: {e}"))?;
        // h2 for gRPC; http/1.1 for the JSON API and gRPC-Web from clients
        // that speak only that (hyper tells the two apart by the preface).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            timeout,
            stats: TlsStats::default(),
            warned: Mutex::new((None, 0)),
        })
    }

    /// The handshake on `conn`; `None` (logged, counted) if it fails or
    /// does not finish within the timeout.
    pub async fn accept(&self, conn: Conn) -> Option<TlsStream<Conn>> {
        let peer = conn.peer();
        let failure = match tokio::time::timeout(self.timeout, self.acceptor.accept(conn)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no finished handshake within {:?}", self.timeout),
        };
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.warn(|others| format!("refused a TLS handshake from {peer}: {failure}{others}"));
        None
    }

    /// Logs a warning unless one was logged in the last [`WARN_EVERY`];
    /// the next one says how many were not.
    fn warn(&self, message: impl FnOnce(String) -> String) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if warned.0.is_some_and(|at| now < at + WARN_EVERY) {
            warned.1 += 1;
            return;
        }
        let others = match warned.1 {
            0 => String::new(),
            n => format!(" ({n} more refused since the last warning)"),
        };
        *warned = (Some(now), 0);
        tracing::warn!("{}", message(others));
    }
}

/// A connection as served: plain, or through TLS.
pub enum Io {
    Plain(Conn),
    Tls(Box<TlsStream<Conn>>),
}

/// `incoming` with every connection's TLS handshake done (each in a task
/// of its own); failed ones are logged and dropped. Stops accepting (the
/// listener closes) as soon as the server drops the returned stream.
pub fn secured<S>(incoming: S, door: Arc<TlsDoor>) -> impl Stream<Item = io::Result<Io>>
where
    S: Stream<Item = io::Result<Conn>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Io>>(16);
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        loop {
            let next = tokio::select! {
                () = tx.closed() => return,
                next = incoming.next() => next,
            };
            let conn = match next {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => {
                    tracing::debug!("accept failed: {e}");
                    continue;
                }
                None => return,
            };
            let (door, tx) = (Arc::clone(&door), tx.clone());
            tokio::spawn(async move {
                if let Some(stream) = door.accept(conn).await {
                    let _ = tx.send(Ok(Io::Tls(Box::new(stream)))).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

impl Io {
    /// What every request on this connection carries.
    pub fn info(&self) -> &ConnInfo {
        match self {
            Io::Plain(conn) => conn.info(),
            Io::Tls(stream) => stream.get_ref().0.info(),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(conn) => Pin::new(conn).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(conn) => Pin::new(conn).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(conn) => Pin::new(conn).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(conn) => conn.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(conn) => Pin::new(conn).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(conn) => Pin::new(conn).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
