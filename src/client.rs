//! The command-line client: `client 101`, `client get 101`, `client add ...`,
//! `client search`, `client update`, `client process`.
//!
//! Every failure is one line on stderr and an exit code that tells scripts
//! what kind of failure it was (see [`exit_code`]); never a panic.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, IntoRequest, IntoStreamingRequest, Request, Status, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt as _;

use crate::format;
use crate::pb::Order;
use crate::pb::order_management_client::OrderManagementClient;

/// Client for the ecommerce.OrderManagement gRPC service.
///
/// Exit codes: 0 success, 1 other error, 2 bad usage or input, 3 not found,
/// 4 invalid argument, 5 already exists or conflict, 6 server unavailable,
/// 7 deadline exceeded or cancelled, 8 not authenticated or permitted,
/// 9 resource exhausted.
#[derive(Debug, Parser)]
#[command(name = "client", version)]
pub struct Cli {
    /// Server URL.
    #[arg(
        long,
        env = "ORDER_SERVER",
        default_value = "http://localhost:50051",
        global = true
    )]
    pub server: String,

    /// Print messages in the proto3 JSON mapping, one per line, instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Deadline of each call, streams included, and of connecting, in seconds.
    #[arg(long, env = "ORDER_TIMEOUT", default_value_t = 10.0, global = true)]
    pub timeout: f64,

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

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Order id to fetch: `client 101` is short for `client get 101`.
    pub id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch one order by id (getOrder).
    Get { id: String },
    /// Add an order and print its id (addOrder). Without --id the server picks one.
    #[command(allow_negative_numbers = true)]
    Add {
        /// An item of the order; repeat for several.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        #[arg(long)]
        price: f32,
        #[arg(long)]
        destination: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "")]
        id: String,
    },
    /// Print every order with an item containing QUERY, case-insensitive, as they arrive (searchOrders).
    Search { query: String },
    /// Replace existing orders, all or none, from JSON: one order per line or an array (updateOrders).
    Update {
        /// A file of orders in the proto3 JSON mapping, or `-` for standard input.
        file: String,
    },
    /// Ship orders: print the combined shipments as the server sends them (processOrders).
    Process {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Bounded load of all five RPCs at random, with random cancellations and
    /// deadlines, checking every answer and the final state; exit 1 on any
    /// unexpected status or inconsistency.
    Soak {
        /// Connections to open.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Concurrent workers per connection.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Random seed (a run is repeatable up to timing).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The server's pid, to report its resident memory before and after.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Load generator: runs one RPC over many connections for a while, checks
    /// every answer, prints throughput and latency percentiles.
    Bench {
        /// Which RPC to drive.
        #[arg(long, value_enum, default_value_t = crate::bench::Rpc::Get)]
        rpc: crate::bench::Rpc,
        /// Connections to open.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Concurrent calls per connection.
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Stop after this many calls in all, if sooner.
        #[arg(long)]
        count: Option<u64>,
        /// The order getOrder and processOrders ask for.
        #[arg(long, default_value = "101")]
        order_id: String,
        /// What searchOrders looks for.
        #[arg(long, default_value = "item")]
        query: String,
        /// Orders per updateOrders call, ids per processOrders call.
        #[arg(long, default_value_t = 3)]
        batch: usize,
    },
    /// Ask the server's health service (grpc.health.v1); exit 0 only if SERVING.
    Health {
        /// The service to ask about; empty for the server as a whole.
        #[arg(default_value = "")]
        service: String,
    },
}

/// Exit codes by gRPC status class; documented in `client --help`.
pub fn exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => 0,
        Code::NotFound => 3,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 4,
        Code::AlreadyExists | Code::Aborted => 5,
        Code::Unavailable => 6,
        Code::DeadlineExceeded | Code::Cancelled => 7,
        Code::Unauthenticated | Code::PermissionDenied => 8,
        Code::ResourceExhausted => 9,
        _ => 1,
    }
}

/// A failure to report: the line to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }

    /// The status on one line, then one indented line per field violation
    /// (`google.rpc.BadRequest`) the server attached.
    fn status(status: &Status) -> Self {
        // A call that failed below gRPC (TLS refused, connection reset) comes
        // back as UNKNOWN or CANCELLED with the transport error as source:
        // report it as the connection failure it is, with its cause.
        // (tonic's own deadline, "Timeout expired", is handled by the caller.)
        if let Some(source) = std::error::Error::source(status)
            && source.is::<tonic::transport::Error>()
            && status.message() != "Timeout expired"
        {
            return Self {
                message: format!(
                    "the connection to the server failed: {}",
                    root_cause(source)
                ),
                code: exit_code(Code::Unavailable),
            };
        }
        let mut message = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            format!("{:?}: {}", status.code(), status.message())
        };
        if let Some(bad_request) = status.get_details_bad_request() {
            for v in &bad_request.field_violations {
                message.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
        Self {
            message,
            code: exit_code(status.code()),
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Self::status(&status)
    }
}

/// Runs the parsed command line. Used by `src/bin/client.rs`.
pub async fn main(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("client: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let tls = tls_config(&cli)?;
    let command = match (cli.command, cli.id) {
        (Some(command), _) => command,
        (None, Some(id)) => Command::Get { id },
        (None, None) => {
            return Err(Failure::usage(
                "no command given; try `client 101` or `client --help`",
            ));
        }
    };
    let timeout = timeout(cli.timeout)?;
    // Read local input before connecting: a bad file is reported as such.
    let updates = match &command {
        Command::Update { file } => Some(read_orders(file)?),
        _ => None,
    };
    let mut out = Output::new(cli.json);
    let credentials = Credentials::from_file(cli.token_file.as_deref())?;
    if let Command::Bench {
        rpc,
        connections,
        concurrency,
        seconds,
        count,
        order_id,
        query,
        batch,
    } = command
    {
        let mut channels = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            channels.push(connect(&cli.server, tls.clone()).await?);
        }
        let config = crate::bench::BenchConfig {
            rpc,
            concurrency: concurrency.max(1),
            duration: Duration::try_from_secs_f64(seconds)
                .map_err(|_| Failure::usage("--seconds must be a number of seconds >= 0"))?,
            count,
            key: if rpc == crate::bench::Rpc::Search {
                query
            } else {
                order_id
            },
            batch: batch.max(1),
        };
        let report = crate::bench::run(channels, &config).await?;
        let text = if cli.json {
            format!(
                "{}\n",
                serde_json::to_string(&report).expect("a report serializes")
            )
        } else {
            report.render()
        };
        write_stdout(&text)?;
        return if report.ok > 0 && report.wrong == 0 {
            Ok(())
        } else {
            Err(Failure {
                message: "the benchmark got no right answer, or a wrong one (see above)".into(),
                code: 1,
            })
        };
    }
    if let Command::Soak {
        connections,
        workers,
        seconds,
        seed,
        server_pid,
    } = command
    {
        return soak(
            &cli.server,
            tls,
            connections,
            workers,
            seconds,
            seed,
            server_pid,
        )
        .await;
    }
    let call = async {
        let channel = connect(&cli.server, tls).await?;
        if let Command::Health { service } = &command {
            let mut health = HealthClient::with_interceptor(channel, credentials);
            let request = HealthCheckRequest {
                service: service.clone(),
            };
            let reply = health
                .check(with_deadline(request, timeout))
                .await?
                .into_inner();
            let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
            out.emit_string(status.as_str_name())?;
            return match status {
                ServingStatus::Serving => Ok(()),
                _ => Err(Failure {
                    message: format!("the server reports {}", status.as_str_name()),
                    code: exit_code(Code::Unavailable),
                }),
            };
        }
        let mut client = OrderManagementClient::with_interceptor(channel, credentials);
        if cli.gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        match command {
            Command::Get { id } => {
                let order = client.get_order(with_deadline(id, timeout)).await?;
                out.emit("ecommerce.Order", order.get_ref())
            }
            Command::Add {
                items,
                price,
                destination,
                description,
                id,
            } => {
                let order = Order {
                    id,
                    items,
                    description,
                    price,
                    destination,
                };
                let id = client.add_order(with_deadline(order, timeout)).await?;
                out.emit_string(id.get_ref())
            }
            Command::Search { query } => {
                let stream = client.search_orders(with_deadline(query, timeout)).await?;
                out.emit_all("ecommerce.Order", stream.into_inner()).await
            }
            Command::Update { .. } => {
                let orders = updates.unwrap_or_default();
                let mut request = tokio_stream::iter(orders).into_streaming_request();
                request.set_timeout(timeout);
                let reply = client.update_orders(request).await?;
                out.emit_string(reply.get_ref())
            }
            Command::Process { ids } => {
                let mut request = tokio_stream::iter(ids).into_streaming_request();
                request.set_timeout(timeout);
                let stream = client.process_orders(request).await?;
                out.emit_all("ecommerce.CombinedShipment", stream.into_inner())
                    .await
            }
            Command::Health { .. } | Command::Soak { .. } | Command::Bench { .. } => {
                unreachable!("answered above")
            }
        }
    };
    // The deadline covers the whole call, streams included; the server gets
    // it too (grpc-timeout) and stops its work when it passes.
    let deadline_exceeded = || Failure {
        message: format!(
            "DeadlineExceeded: no complete answer within {}",
            humantime(timeout)
        ),
        code: exit_code(Code::DeadlineExceeded),
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_elapsed) => Err(deadline_exceeded()),
        // tonic's channel enforces grpc-timeout locally too, until the response
        // headers arrive, and reports it as CANCELLED "Timeout expired" (with
        // no error source to downcast). It is the same deadline: say so.
        Ok(Err(f)) if f.message == format!("{:?}: Timeout expired", Code::Cancelled) => {
            Err(deadline_exceeded())
        }
        Ok(result) => result,
    }
}

#[allow(clippy::too_many_arguments)]
async fn soak(
    server: &str,
    tls: Option<ClientTlsConfig>,
    connections: usize,
    workers: usize,
    seconds: u64,
    seed: u64,
    server_pid: Option<u32>,
) -> Result<(), Failure> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        channels.push(connect(server, tls.clone()).await?);
    }
    let config = crate::soak::SoakConfig {
        connections,
        workers_per_connection: workers.max(1),
        duration: Duration::from_secs(seconds),
        seed,
        server_pid,
    };
    let report = crate::soak::run(channels, &config).await;
    write_stdout(&report.render())?;
    if report.passed() {
        Ok(())
    } else {
        Err(Failure {
            message: "soak found unexpected statuses or inconsistent orders (see above)".into(),
            code: 1,
        })
    }
}

fn with_deadline<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = message.into_request();
    request.set_timeout(timeout);
    request
}

fn timeout(seconds: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::usage(format!(
                "--timeout must be a positive number of seconds, got {seconds}"
            ))
        })
}

fn humantime(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Connects eagerly so that an unreachable server is reported by address.
/// Connecting counts against the call's deadline (the caller's timeout).
async fn connect(server: &str, tls: Option<ClientTlsConfig>) -> Result<Channel, Failure> {
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| Failure::usage(format!("invalid --server URL {server:?}: {e}")))?;
    if let Some(tls) = tls {
        if !server.starts_with("https://") {
            return Err(Failure::usage(format!(
                "TLS options need an https:// --server URL, got {server}"
            )));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| {
            Failure::usage(format!("invalid TLS configuration: {}", root_cause(&e)))
        })?;
    }
    endpoint.connect().await.map_err(|e| Failure {
        message: format!("cannot reach the server at {server}: {}", root_cause(&e)),
        code: exit_code(Code::Unavailable),
    })
}

/// TLS settings from the command line, if any TLS option was given.
fn tls_config(cli: &Cli) -> Result<Option<ClientTlsConfig>, Failure> {
    if cli.ca_cert.is_none() && cli.cert.is_none() && cli.tls_domain.is_none() {
        return Ok(None);
    }
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read the {what} {}: {e}", path.display())))
    };
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &cli.ca_cert {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
    }
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "client certificate")?,
            read(key, "client key")?,
        ));
    }
    if let Some(domain) = &cli.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(Some(tls))
}

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone)]
struct Credentials(Option<AsciiMetadataValue>);

impl Credentials {
    fn from_file(path: Option<&std::path::Path>) -> Result<Self, Failure> {
        let Some(path) = path else {
            return Ok(Self(None));
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
        Ok(Self(Some(value)))
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The innermost error message, which names the actual problem
/// ("Connection refused") instead of tonic's generic "transport error".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Orders in the proto3 JSON mapping: a JSON array, or one object per line.
fn read_orders(file: &str) -> Result<Vec<Order>, Failure> {
    let mut text = String::new();
    let read = if file == "-" {
        io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text).map(drop))
    };
    read.map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?;
    parse_orders(&text).map_err(|e| Failure::usage(format!("{file}: {e}")))
}

/// Parses orders from JSON text: an array of orders, or one order per line
/// (blank lines ignored). Errors name the element or line.
pub fn parse_orders(text: &str) -> Result<Vec<Order>, String> {
    let parse = |value: serde_json::Value| format::from_json::<Order>("ecommerce.Order", value);
    if text.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON array of orders: {e}"))?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse(v).map_err(|e| format!("element {i}: {e}")))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let value = serde_json::from_str(line)
                    .map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
                parse(value).map_err(|e| format!("line {}: {e}", i + 1))
            })
            .collect()
    }
}

/// Writes messages to stdout as text blocks separated by a blank line, or
/// as one JSON document per line.
struct Output {
    json: bool,
    written: usize,
}

impl Output {
    fn new(json: bool) -> Self {
        Self { json, written: 0 }
    }

    fn emit<M: prost::Message>(&mut self, full_name: &str, message: &M) -> Result<(), Failure> {
        let text = if self.json {
            format!("{}\n", format::to_json(full_name, message))
        } else if self.written == 0 {
            format::text(full_name, message)
        } else {
            format!("\n{}", format::text(full_name, message))
        };
        self.written += 1;
        write_stdout(&text)
    }

    /// A StringValue reply: the bare string, or a JSON string with `--json`.
    fn emit_string(&mut self, value: &str) -> Result<(), Failure> {
        let text = if self.json {
            serde_json::Value::from(value).to_string()
        } else {
            value.to_owned()
        };
        write_stdout(&format!("{text}\n"))
    }

    /// Prints each message of a response stream as it arrives.
    async fn emit_all<M: prost::Message + Default>(
        &mut self,
        full_name: &str,
        mut stream: Streaming<M>,
    ) -> Result<(), Failure> {
        while let Some(message) = stream.message().await? {
            self.emit(full_name, &message)?;
        }
        Ok(())
    }
}

fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        // `client search x | head -1`: the reader has what it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Failure {
            message: format!("cannot write to stdout: {e}"),
            code: 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap checks the whole definition (names, conflicts, globals) here
    /// rather than when a user first types the clashing subcommand.
    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
