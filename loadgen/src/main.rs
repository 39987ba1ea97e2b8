//! `loadgen bench` and `loadgen soak`: load an OrderManagement server.
//!
//! ```sh
//! cargo run --release -p loadgen -- --server http://127.0.0.1:50051 bench --rpc get
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::bench::{self, BenchConfig, Rpc};
use loadgen::soak::{self, SoakConfig};
use order_management::client::output::write_stdout;
use order_management::client::{ConnectionOptions, Connector, Failure, OrderClient};

/// Load generator for the ecommerce.OrderManagement gRPC service.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionOptions,

    /// Print the report as one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one RPC over many connections for a while, checks every answer,
    /// prints throughput and latency percentiles.
    Bench {
        /// Which RPC to drive.
        #[arg(long, value_enum, default_value_t = Rpc::Get)]
        rpc: Rpc,
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
        /// Seconds the server may stay unreachable (calls UNAVAILABLE, retried
        /// with backoff) before the run stops with exit 6.
        #[arg(long, default_value_t = 10.0)]
        give_up_after: f64,
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
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("loadgen: {}", failure.line());
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let connector = Connector::new(&cli.connection)?;
    match cli.command {
        Command::Bench {
            rpc,
            connections,
            concurrency,
            seconds,
            count,
            order_id,
            query,
            batch,
            give_up_after,
        } => {
            let config = BenchConfig {
                rpc,
                concurrency: concurrency.max(1),
                duration: Duration::try_from_secs_f64(seconds)
                    .map_err(|_| Failure::usage("--seconds must be a number of seconds >= 0"))?,
                count,
                key: if rpc == Rpc::Search { query } else { order_id },
                batch: batch.max(1),
                give_up: Duration::try_from_secs_f64(give_up_after).map_err(|_| {
                    Failure::usage("--give-up-after must be a number of seconds >= 0")
                })?,
            };
            let clients = connect(&connector, connections).await?;
            let report = bench::run(clients, &config).await?;
            write_stdout(&if cli.json {
                format!(
                    "{}\n",
                    serde_json::to_string(&report).expect("a report serializes")
                )
            } else {
                report.render()
            })?;
            if report.ok > 0 && report.wrong == 0 {
                Ok(())
            } else {
                Err(Failure::other(
                    "the benchmark got no right answer, or a wrong one (see above)",
                ))
            }
        }
        Command::Soak {
            connections,
            workers,
            seconds,
            seed,
            server_pid,
        } => {
            let config = SoakConfig {
                connections,
                workers_per_connection: workers.max(1),
                duration: Duration::from_secs(seconds),
                seed,
                server_pid,
            };
            let clients = connect(&connector, connections).await?;
            let report = soak::run(clients, &config).await;
            write_stdout(&report.render())?;
            if report.passed() {
                Ok(())
            } else {
                Err(Failure::other(
                    "soak found unexpected statuses or inconsistent orders (see above)",
                ))
            }
        }
    }
}

/// One client per connection, each on its own HTTP/2 connection.
async fn connect(connector: &Connector, connections: usize) -> Result<Vec<OrderClient>, Failure> {
    let mut clients = Vec::with_capacity(connections.max(1));
    for _ in 0..connections.max(1) {
        clients.push(connector.connect().await?);
    }
    Ok(clients)
}
