//! How a client reaches the server: the connection options every tool that
//! calls the service shares (the `client` binary and the `loadgen` load
//! generator), and the one place that turns them into a ready client with
//! TLS/mTLS, the bearer token and gzip applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::Args;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;

use super::failure::{Failure, exit_code, root_cause};
use super::resolve;
use crate::pb::order_management_client::OrderManagementClient;

/// A client of the OrderManagement service with the connection's
/// credentials and compression applied to every call.
pub type OrderClient = OrderManagementClient<InterceptedService<Channel, Credentials>>;

/// Connection options, shown under "Connection" in `--help`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionOptions {
    /// Server address: `host:port` (as grpcurl writes it; TLS when a TLS
    /// option is given), `http://host:port`, `https://host:port` (verified
    /// against the system's trust roots unless --ca-cert) or `unix:/path`.
    /// Several, comma-separated, or a name with several DNS addresses,
    /// spread the calls over them (replicas on one database): an endpoint
    /// that fails is skipped.
    #[arg(
        long,
        env = "ORDER_SERVER",
        default_value = "http://localhost:50051",
        global = true
    )]
    pub server: String,

    /// PEM CA certificate to verify the server with, instead of the system's trust roots.
    #[arg(long, env = "ORDER_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate, for servers that require mTLS (with --key).
    #[arg(long, env = "ORDER_CLIENT_CERT", global = true, requires = "key")]
    pub cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, env = "ORDER_CLIENT_KEY", global = true, requires = "cert")]
    pub key: Option<PathBuf>,

    /// Name to verify in the server's certificate, if not the URL's host.
    #[arg(long, env = "ORDER_TLS_DOMAIN", global = true)]
    pub tls_domain: Option<String>,

    /// File holding the bearer token to send as `authorization: Bearer <token>`.
    #[arg(long, env = "ORDER_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,

    /// Compress requests with gzip and ask for gzip responses.
    #[arg(long, global = true)]
    pub gzip: bool,

    /// Send a W3C `traceparent` with every call (one new trace, sampled),
    /// and print its trace id on stderr: a server with --otlp-endpoint
    /// records its spans under it.
    #[arg(long, global = true)]
    pub trace: bool,
}

/// Everything needed to open connections, read and checked once: local
/// files (certificates, the token) are reported before any network access.
#[derive(Clone)]
pub struct Connector {
    /// The addresses as URLs (`http://`, `https://` or `unix:`).
    servers: Vec<String>,
    /// Where the next connection's round robin over the addresses starts.
    next: Arc<AtomicUsize>,
    /// The servers resolved to more than one address.
    several: Arc<AtomicBool>,
    /// TLS settings from the TLS options, if any was given.
    tls: Option<ClientTlsConfig>,
    /// For `https://` without TLS options: [`default_roots`], read once.
    roots: Option<(ClientTlsConfig, &'static str)>,
    credentials: Credentials,
    gzip: bool,
}

/// How an `https://` server is verified when no TLS option is given: the
/// system's trust roots when it has any, and the Mozilla roots built in
/// (webpki-roots); and the words that say so when verification fails.
fn default_roots() -> (ClientTlsConfig, &'static str) {
    let tls = ClientTlsConfig::new().with_webpki_roots();
    if rustls_native_certs::load_native_certs().certs.is_empty() {
        (
            tls,
            "the Mozilla roots built in (webpki-roots; the system has none); \
             --ca-cert to use another CA",
        )
    } else {
        (
            tls.with_native_roots(),
            "the system's trust roots and the Mozilla roots built in (webpki-roots); \
             --ca-cert to use another CA",
        )
    }
}

impl Connector {
    pub fn new(options: &ConnectionOptions) -> Result<Self, Failure> {
        let tls = tls_config(options)?;
        let servers = options
            .server
            .split(',')
            .map(|s| server_url(s.trim(), tls.is_some()))
            .collect::<Result<Vec<_>, _>>()?;
        let https = servers.iter().any(|s| s.starts_with("https://"));
        Ok(Self {
            roots: (tls.is_none() && https).then(default_roots),
            servers,
            // Processes that make one call each (the CLI) spread too.
            next: Arc::new(AtomicUsize::new(std::process::id() as usize)),
            several: Arc::default(),
            tls,
            credentials: Credentials::from_file(options.token_file.as_deref())?
                .traced(options.trace),
            gzip: options.gzip,
        })
    }

    /// Sends `x-request-id: id` with every call.
    pub fn with_request_id(mut self, id: &str) -> Result<Self, Failure> {
        let valid = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
        let value = AsciiMetadataValue::try_from(id).ok().filter(|_| valid).ok_or_else(|| {
            Failure::usage(format!(
                "--request-id must be 1 to 128 visible ASCII characters without spaces, got {id:?}"
            ))
        })?;
        self.credentials.request_id = Some(value);
        Ok(self)
    }

    /// Connects eagerly so that an unreachable server is reported by address.
    /// With several addresses, round robin: each new connection goes to the
    /// next address that accepts it (an address that fails is skipped), so
    /// the connections of a load spread over the replicas, and a retry goes
    /// to another one.
    /// A name with several addresses counts as several servers.
    pub async fn channel(&self) -> Result<Channel, Failure> {
        let servers: Vec<&str> = self.servers.iter().map(String::as_str).collect();
        let (targets, mut failures) = resolve::targets(&servers).await;
        self.several.store(targets.len() > 1, Ordering::Relaxed);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for target in resolve::rotated(&targets, start) {
            let endpoint = self.endpoint(&target.server)?;
            let connected = match target.addr {
                Some(addr) => {
                    let connect = tower::service_fn(move |_: http::Uri| async move {
                        let stream = tokio::net::TcpStream::connect(addr).await?;
                        stream.set_nodelay(true)?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    });
                    endpoint.connect_with_connector(connect).await
                }
                None => endpoint.connect().await, // unix:/path
            };
            match connected {
                Ok(channel) => return Ok(channel),
                Err(e) => {
                    let cause = root_cause(&e);
                    // Say what the certificate was checked against.
                    let roots = match (&self.tls, &self.roots) {
                        _ if !cause.contains("certificate") => String::new(),
                        (Some(_), _) => " (verified against --ca-cert)".to_owned(),
                        (None, Some((_, roots))) => format!(" (verified against {roots})"),
                        (None, None) => String::new(),
                    };
                    // The address a name resolved to, when it is not in the URL.
                    let at = match target.addr {
                        Some(a) if !target.server.contains(&a.to_string()) => format!(" ({a})"),
                        _ => String::new(),
                    };
                    failures.push(format!("{}{at}: {cause}{roots}", target.server));
                }
            }
        }
        let message = match failures.as_slice() {
            [one] => format!("cannot reach the server at {one}"),
            many => format!("cannot reach any server ({})", many.join("; ")),
        };
        Err(Failure::new(message, exit_code(Code::Unavailable)))
    }

    /// Several servers were given (`--server a,b`), or a name resolved to
    /// several addresses when a connection was made.
    pub fn balanced(&self) -> bool {
        self.servers.len() > 1 || self.several.load(Ordering::Relaxed)
    }

    fn endpoint(&self, server: &str) -> Result<Endpoint, Failure> {
        let mut endpoint = Endpoint::from_shared(server.to_owned())
            .map_err(|e| Failure::usage(format!("invalid --server URL {server:?}: {e}")))?;
        let tls = match (&self.tls, &self.roots) {
            (Some(tls), _) => Some(tls.clone()),
            // https:// alone: the system's roots, as curl and grpcurl do.
            (None, Some((roots, _))) if server.starts_with("https://") => Some(roots.clone()),
            _ => None,
        };
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                Failure::usage(format!("invalid TLS configuration: {}", root_cause(&e)))
            })?;
        }
        Ok(endpoint)
    }

    /// An OrderManagement client on `channel`, with credentials and gzip.
    pub fn orders(&self, channel: Channel) -> OrderClient {
        let client = OrderManagementClient::with_interceptor(channel, self.credentials.clone());
        if self.gzip {
            client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip)
        } else {
            client
        }
    }

    /// A new connection and an OrderManagement client on it.
    pub async fn connect(&self) -> Result<OrderClient, Failure> {
        Ok(self.orders(self.channel().await?))
    }

    /// A health client on `channel`, with credentials.
    pub fn health(
        &self,
        channel: Channel,
    ) -> HealthClient<InterceptedService<Channel, Credentials>> {
        HealthClient::with_interceptor(channel, self.credentials.clone())
    }
}

/// One `--server` address as the URL tonic takes, or a usage error (exit 2)
/// saying what is wrong with it. `host:port` gets `http://`, or `https://`
/// when TLS options were given.
pub fn server_url(server: &str, tls: bool) -> Result<String, Failure> {
    let bad = |why: &str| {
        Failure::usage(format!(
            "invalid --server address {server:?}: {why} \
             (expected host:port, http://host:port, https://host:port or unix:/path)"
        ))
    };
    if let Some(path) = server.strip_prefix("unix:") {
        if tls {
            return Err(bad("TLS options do not apply to a unix socket"));
        }
        if path.trim_start_matches("//").is_empty() {
            return Err(bad("no socket path"));
        }
        return Ok(server.to_owned());
    }
    let url = match server.split_once("://") {
        Some(("http", _)) if tls => {
            return Err(bad("TLS options need https://, not http://"));
        }
        Some(("http" | "https", _)) => server.to_owned(),
        Some((scheme, _)) => return Err(bad(&format!("unknown scheme {scheme}://"))),
        None => {
            // host:port, the port required (grpcurl's form).
            let (host, port) = server.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.is_empty() {
                return Err(bad("no host"));
            }
            port.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
            let scheme = if tls { "https" } else { "http" };
            format!("{scheme}://{server}")
        }
    };
    let uri: http::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(url),
        _ => Err(bad("no host")),
    }
}

/// TLS settings from the command line, if any TLS option was given.
fn tls_config(options: &ConnectionOptions) -> Result<Option<ClientTlsConfig>, Failure> {
    if options.ca_cert.is_none() && options.cert.is_none() && options.tls_domain.is_none() {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &options.ca_cert {
        let pem = crate::tls_files::certificates(ca, "CA certificate").map_err(Failure::usage)?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    if let (Some(cert), Some(key)) = (&options.cert, &options.key) {
        let (cert, key) =
            crate::tls_files::identity(cert, key, "client").map_err(Failure::usage)?;
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    if let Some(domain) = &options.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(Some(tls))
}

/// Adds `authorization: Bearer <token>` to every call when a token is set,
/// `x-request-id` when one was given, and `traceparent` with `--trace`.
#[derive(Clone)]
pub struct Credentials {
    token: Option<AsciiMetadataValue>,
    request_id: Option<AsciiMetadataValue>,
    traceparent: Option<AsciiMetadataValue>,
}

impl Credentials {
    fn from_file(path: Option<&Path>) -> Result<Self, Failure> {
        let Some(path) = path else {
            return Ok(Self {
                token: None,
                request_id: None,
                traceparent: None,
            });
        };
        let token = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?;
        let value = MetadataValue::try_from(format!("Bearer {}", token.trim())).map_err(|_| {
            Failure::usage(format!(
                "the token in {} is not valid metadata",
                path.display()
            ))
        })?;
        Ok(Self {
            token: Some(value),
            request_id: None,
            traceparent: None,
        })
    }

    /// With `trace`, a new sampled trace for every call of this process:
    /// `traceparent: 00-TRACE-SPAN-01`, the ids from UUIDv7s' random bits.
    fn traced(mut self, trace: bool) -> Self {
        if trace {
            let trace_id = uuid::Uuid::now_v7().simple().to_string();
            let span_id = &uuid::Uuid::now_v7().simple().to_string()[16..];
            eprintln!("trace id: {trace_id}");
            self.traceparent = MetadataValue::try_from(format!("00-{trace_id}-{span_id}-01")).ok();
        }
        self
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(id) = &self.request_id {
            request.metadata_mut().insert("x-request-id", id.clone());
        }
        if let Some(value) = &self.traceparent {
            request.metadata_mut().insert("traceparent", value.clone());
        }
        Ok(request)
    }
}
