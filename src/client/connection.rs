//! How a client reaches the server: the connection options every tool that
//! calls the service shares (the `client` binary and the `loadgen` load
//! generator), and the one place that turns them into a ready client with
//! TLS/mTLS, the bearer token and gzip applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;

use super::failure::{Failure, exit_code, root_cause};
use crate::pb::order_management_client::OrderManagementClient;

/// A client of the OrderManagement service with the connection's
/// credentials and compression applied to every call.
pub type OrderClient = OrderManagementClient<InterceptedService<Channel, Credentials>>;

/// Connection options, shown under "Connection" in `--help`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionOptions {
    /// Server URL; several, comma-separated, spread the calls over them
    /// (replicas on one database): an endpoint that fails is skipped.
    #[arg(
        long,
        env = "ORDER_SERVER",
        default_value = "http://localhost:50051",
        global = true
    )]
    pub server: String,

    /// PEM CA certificate to verify the server with (use an https:// URL).
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
    server: String,
    /// Where the next connection's round robin over the addresses starts.
    next: Arc<AtomicUsize>,
    tls: Option<ClientTlsConfig>,
    credentials: Credentials,
    gzip: bool,
}

impl Connector {
    pub fn new(options: &ConnectionOptions) -> Result<Self, Failure> {
        Ok(Self {
            server: options.server.clone(),
            // Processes that make one call each (the CLI) spread too.
            next: Arc::new(AtomicUsize::new(std::process::id() as usize)),
            tls: tls_config(options)?,
            credentials: Credentials::from_file(options.token_file.as_deref())?
                .traced(options.trace),
            gzip: options.gzip,
        })
    }

    /// Connects eagerly so that an unreachable server is reported by address.
    /// With several addresses, round robin: each new connection goes to the
    /// next address that accepts it (an address that fails is skipped), so
    /// the connections of a load spread over the replicas, and a retry goes
    /// to another one.
    pub async fn channel(&self) -> Result<Channel, Failure> {
        let servers: Vec<&str> = self.server.split(',').map(str::trim).collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut failures = Vec::new();
        for k in 0..servers.len() {
            let server = servers[(start + k) % servers.len()];
            match self.endpoint(server)?.connect().await {
                Ok(channel) => return Ok(channel),
                Err(e) => failures.push(format!("{server}: {}", root_cause(&e))),
            }
        }
        let message = match failures.as_slice() {
            [one] => format!("cannot reach the server at {one}"),
            many => format!("cannot reach any server ({})", many.join("; ")),
        };
        Err(Failure {
            message,
            code: exit_code(Code::Unavailable),
        })
    }

    /// Several servers were given (`--server a,b`).
    pub fn balanced(&self) -> bool {
        self.server.contains(',')
    }

    fn endpoint(&self, server: &str) -> Result<Endpoint, Failure> {
        let mut endpoint = Endpoint::from_shared(server.to_owned())
            .map_err(|e| Failure::usage(format!("invalid --server URL {server:?}: {e}")))?;
        if let Some(tls) = self.tls.clone() {
            if !server.starts_with("https://") {
                return Err(Failure::usage(format!(
                    "TLS options need an https:// --server URL, got {server}"
                )));
            }
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

/// TLS settings from the command line, if any TLS option was given.
fn tls_config(options: &ConnectionOptions) -> Result<Option<ClientTlsConfig>, Failure> {
    if options.ca_cert.is_none() && options.cert.is_none() && options.tls_domain.is_none() {
        return Ok(None);
    }
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read the {what} {}: {e}", path.display())))
    };
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &options.ca_cert {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
    }
    if let (Some(cert), Some(key)) = (&options.cert, &options.key) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "client certificate")?,
            read(key, "client key")?,
        ));
    }
    if let Some(domain) = &options.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(Some(tls))
}

/// Adds `authorization: Bearer <token>` to every call when a token is set,
/// and `traceparent` with `--trace`.
#[derive(Clone)]
pub struct Credentials(Option<AsciiMetadataValue>, Option<AsciiMetadataValue>);

impl Credentials {
    fn from_file(path: Option<&Path>) -> Result<Self, Failure> {
        let Some(path) = path else {
            return Ok(Self(None, None));
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
        Ok(Self(Some(value), None))
    }

    /// With `trace`, a new sampled trace for every call of this process:
    /// `traceparent: 00-TRACE-SPAN-01`, the ids from UUIDv7s' random bits.
    fn traced(mut self, trace: bool) -> Self {
        if trace {
            let trace_id = uuid::Uuid::now_v7().simple().to_string();
            let span_id = &uuid::Uuid::now_v7().simple().to_string()[16..];
            eprintln!("trace id: {trace_id}");
            self.1 = MetadataValue::try_from(format!("00-{trace_id}-{span_id}-01")).ok();
        }
        self
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(value) = &self.1 {
            request.metadata_mut().insert("traceparent", value.clone());
        }
        Ok(request)
    }
}
