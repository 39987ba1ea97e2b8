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

pub mod cli;
pub mod connection;
pub mod failure;
pub mod output;
mod progress;
mod resolve;
mod suggest;

use std::process::ExitCode;
use std::time::Duration;

use tonic::{Code, IntoRequest, IntoStreamingRequest, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

pub use self::cli::{Cli, Command, Format};
pub use self::connection::{ConnectionOptions, Connector, OrderClient};
pub use self::failure::{Failure, exit_code};
pub use self::output::parse_orders;
use self::output::{Output, read_ids, read_one_order, read_orders};
use crate::pb::Order;

/// Runs the parsed command line. Used by `src/bin/client.rs`.
pub async fn main(cli: Cli) -> ExitCode {
    let format = cli.globals.format();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if format == Format::Text {
                eprintln!("client: {}", failure.line());
            } else {
                eprintln!("{}", failure.json());
            }
            ExitCode::from(failure.code)
        }
    }
}

/// What a command needs read from local input before connecting, so that
/// a bad file is reported as such, before any network access.
enum Input {
    None,
    Orders(Vec<Order>),
    Ids(Vec<String>),
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let (command, guessed) = match (cli.command, cli.id) {
        (Some(command), _) => (command, None),
        (None, Some(word)) if !cli.rest.is_empty() => {
            // `client serach pixel`: not an order lookup.
            return Err(Failure::usage(match suggest::hint(&word) {
                Some(hint) => format!("unknown command `{word}`; did you mean {hint}?"),
                None => format!(
                    "unexpected argument `{}` after the order id `{word}`; try `client --help`",
                    cli.rest[0]
                ),
            }));
        }
        (None, Some(id)) => (Command::Get { id: id.clone() }, Some(id)),
        (None, None) => {
            return Err(Failure::usage(
                "no command given; try `client 101` or `client --help`",
            ));
        }
    };
    match &command {
        Command::Completions { shell } => return output::completions(*shell),
        Command::Man => return output::man_page(),
        _ => {}
    }
    let timeout = timeout(cli.globals.timeout)?;
    let input = match &command {
        Command::Update { file } => {
            let orders = read_orders(file)?;
            if orders.is_empty() {
                return Err(Failure::usage(format!(
                    "{file} holds no orders: nothing to update"
                )));
            }
            Input::Orders(orders)
        }
        Command::Add {
            file: Some(file),
            id,
            ..
        } => {
            let mut order = read_one_order(file)?;
            if let Some(id) = id {
                order.id = id.clone();
            }
            Input::Orders(vec![order])
        }
        Command::Process { ids } if ids.len() == 1 && ids[0] == "-" => Input::Ids(read_ids()?),
        _ => Input::None,
    };
    let mut connector = Connector::new(&cli.connection)?;
    if let Some(id) = &cli.globals.request_id {
        connector = connector.with_request_id(id)?;
    }
    let out = Output::new(cli.globals.format());
    let call = execute(command, input, &connector, out, timeout);
    // The deadline covers the whole call, streams included; the server gets
    // it too (grpc-timeout) and stops its work when it passes.
    let deadline_exceeded = || {
        Failure::new(
            format!(
                "DeadlineExceeded: no complete answer within {}",
                humantime(timeout)
            ),
            exit_code(Code::DeadlineExceeded),
        )
    };
    let result = match tokio::time::timeout(timeout, call).await {
        Err(_elapsed) => Err(deadline_exceeded()),
        // tonic's channel enforces grpc-timeout locally too, until the response
        // headers arrive, and reports it as CANCELLED "Timeout expired" (with
        // no error source to downcast). It is the same deadline: say so.
        Ok(Err(f)) if f.message == format!("{:?}: Timeout expired", Code::Cancelled) => {
            Err(deadline_exceeded())
        }
        Ok(result) => result,
    };
    match (result, guessed) {
        // `client serach`: no such order, and a word close to a command.
        (Err(mut failure), Some(word)) if failure.code == exit_code(Code::NotFound) => {
            if let Some(hint) = suggest::hint(&word) {
                failure.message = format!(
                    "{}; `{word}` is no command either: did you mean {hint}?",
                    failure.message
                );
            }
            Err(failure)
        }
        (result, _) => result,
    }
}

/// Connects and makes the command's call, printing what comes back.
async fn execute(
    command: Command,
    input: Input,
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
            file: _,
        } => {
            let order = match input {
                Input::Orders(mut orders) if orders.len() == 1 => orders.remove(0),
                _ => Order {
                    id: id.unwrap_or_default(),
                    items,
                    description,
                    price: price.unwrap_or_default(),
                    destination: destination.unwrap_or_default(),
                },
            };
            let id = client.add_order(with_deadline(order, timeout)).await?;
            out.emit_string(id.get_ref())
        }
        Command::Search { query } => {
            out.start_stream();
            search(connector, client, &query, timeout, &mut out).await?;
            out.finish()
        }
        Command::Update { .. } => {
            let Input::Orders(updates) = input else {
                unreachable!("update's orders are read before connecting")
            };
            let progress = progress::Progress::new("orders sent", false);
            let sent = tokio_stream::StreamExt::map(tokio_stream::iter(updates), move |order| {
                progress.inc();
                order
            });
            let mut request = sent.into_streaming_request();
            request.set_timeout(timeout);
            let reply = client.update_orders(request).await?;
            out.emit_string(reply.get_ref())
        }
        Command::Process { ids } => {
            let ids = match input {
                Input::Ids(read) => read,
                _ => ids,
            };
            let mut request = tokio_stream::iter(ids).into_streaming_request();
            request.set_timeout(timeout);
            out.start_stream();
            let stream = client.process_orders(request).await?;
            out.emit_all("ecommerce.CombinedShipment", stream.into_inner())
                .await?;
            out.finish()
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
                _ => Err(Failure::new(
                    format!("the server reports {}", status.as_str_name()),
                    exit_code(Code::Unavailable),
                )),
            }
        }
        Command::Completions { .. } | Command::Man => unreachable!("handled before connecting"),
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
