//! The command-line client: `client 101`, `client get 101`, ...
//!
//! Every failure is one line on stderr and an exit code that tells scripts
//! what kind of failure it was (see [`exit_code`]); never a panic.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::format;
use crate::pb::order_management_client::OrderManagementClient;

/// Client for the ecommerce.OrderManagement gRPC service.
///
/// Exit codes: 0 success, 1 other error, 2 bad usage, 3 not found,
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

    /// Give up on a call (and on connecting) after this many seconds.
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

    fn status(status: &Status) -> Self {
        let message = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            format!("{:?}: {}", status.code(), status.message())
        };
        Self {
            message,
            code: exit_code(status.code()),
        }
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
    let mut client = connect(&cli.server, timeout).await?;
    match command {
        Command::Get { id } => {
            let order = client
                .get_order(id)
                .await
                .map_err(|s| Failure::status(&s))?
                .into_inner();
            print(cli.json, "ecommerce.Order", &order);
        }
    }
    Ok(())
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

/// Connects eagerly so that an unreachable server is reported by address.
async fn connect(
    server: &str,
    timeout: Duration,
) -> Result<OrderManagementClient<Channel>, Failure> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| Failure::usage(format!("invalid --server URL {server:?}: {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| Failure {
        message: format!("cannot reach the server at {server}: {}", root_cause(&e)),
        code: exit_code(Code::Unavailable),
    })?;
    Ok(OrderManagementClient::new(channel))
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

fn print<M: prost::Message>(json: bool, full_name: &str, message: &M) {
    if json {
        println!("{}", format::to_json(full_name, message));
    } else {
        print!("{}", format::text(full_name, message));
    }
}
