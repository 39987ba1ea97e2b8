//! The command-line client: `client 101`, `client get 101`, `client add ...`,
//! `client search`, `client update`, `client process`, `client health`.
//!
//! Every failure is one line on stderr and an exit code that tells scripts
//! what kind of failure it was (see [`exit_code`]); never a panic.
//!
//! - [`connection`]: the connection options and the one connection builder
//!   (TLS, mTLS, token, gzip), shared with the `loadgen` load generator;
//! - [`failure`]: the error line and exit code of a failed command;
//! - [`output`]: JSON input files and text/JSON output.

pub mod connection;
pub mod failure;
pub mod output;
mod resolve;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tonic::{Code, IntoRequest, IntoStreamingRequest, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

pub use self::connection::{ConnectionOptions, Connector, OrderClient};
pub use self::failure::{Failure, exit_code};
pub use self::output::parse_orders;
use self::output::{Output, read_orders};
use crate::pb::Order;

/// Client for the ecommerce.OrderManagement gRPC service.
///
/// Exit codes: 0 success, 1 other error, 2 bad usage or input, 3 not found,
/// 4 invalid argument, 5 already exists or conflict, 6 server unavailable,
/// 7 deadline exceeded or cancelled, 8 not authenticated or permitted,
/// 9 resource exhausted.
#[derive(Debug, Parser)]
#[command(name = "client", version)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionOptions,

    /// Print messages in the proto3 JSON mapping, one per line, instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Deadline of each call, streams included, and of connecting, in seconds.
    #[arg(long, env = "ORDER_TIMEOUT", default_value_t = 10.0, global = true)]
    pub timeout: f64,

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
    /// Ask the server's health service (grpc.health.v1); exit 0 only if SERVING.
    Health {
        /// The service to ask about; empty for the server as a whole.
        #[arg(default_value = "")]
        service: String,
    },
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
        Command::Update { file } => read_orders(file)?,
        _ => Vec::new(),
    };
    let connector = Connector::new(&cli.connection)?;
    let out = Output::new(cli.json);
    let call = execute(command, updates, &connector, out, timeout);
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

/// Connects and makes the command's call, printing what comes back.
async fn execute(
    command: Command,
    updates: Vec<Order>,
    connector: &Connector,
    mut out: Output,
    timeout: Duration,
) -> Result<(), Failure> {
    let channel = connector.channel().await?;
    let mut client = connector.orders(channel.clone());
    match command {
        Command::Get { id } => {
            // A read may be retried once on another endpoint; a write never is.
            let mut order = client.get_order(with_deadline(id.clone(), timeout)).await;
            if let Err(status) = &order
                && retry_read(connector, status)
            {
                client = connector.connect().await?;
                order = client.get_order(with_deadline(id, timeout)).await;
            }
            out.emit("ecommerce.Order", order?.get_ref())
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
        Command::Search { query } => search(connector, client, &query, timeout, &mut out).await,
        Command::Update { .. } => {
            let mut request = tokio_stream::iter(updates).into_streaming_request();
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
        Command::Health { service } => {
            let mut health = connector.health(channel);
            let reply = health
                .check(with_deadline(HealthCheckRequest { service }, timeout))
                .await?
                .into_inner();
            let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
            out.emit_string(status.as_str_name())?;
            match status {
                ServingStatus::Serving => Ok(()),
                _ => Err(Failure {
                    message: format!("the server reports {}", status.as_str_name()),
                    code: exit_code(Code::Unavailable),
                }),
            }
        }
    }
}

/// searchOrders, printing each order as it arrives. Retried once on another
/// endpoint if it fails before its first message (nothing printed yet).
async fn search(
    connector: &Connector,
    mut client: OrderClient,
    query: &str,
    timeout: Duration,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut retried = false;
    loop {
        let attempt = async {
            let request = with_deadline(query.to_owned(), timeout);
            let mut stream = client.search_orders(request).await?.into_inner();
            let first = stream.message().await?;
            Ok::<_, tonic::Status>((first, stream))
        }
        .await;
        match attempt {
            Err(status) if !retried && retry_read(connector, &status) => {
                retried = true;
                client = connector.connect().await?;
            }
            Err(status) => return Err(status.into()),
            Ok((first, stream)) => {
                if let Some(order) = first {
                    out.emit("ecommerce.Order", &order)?;
                }
                return out.emit_all("ecommerce.Order", stream).await;
            }
        }
    }
}

/// Whether a read that failed with `status` is worth one more try on
/// another endpoint: several servers were given and this one was
/// unavailable. Writes are never retried (they may have been applied).
fn retry_read(connector: &Connector, status: &tonic::Status) -> bool {
    connector.balanced() && status.code() == Code::Unavailable
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
