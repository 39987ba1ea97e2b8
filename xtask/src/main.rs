use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use xtask::{breaking, codegen, find_project_root};

/// Project automation for order-management.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the client's man page, docs/man/client.1 (rendered by `client man`).
    Man,
    /// Compile proto/ with protox and write the Rust code and descriptor set into generated/.
    Codegen {
        /// Change nothing; exit non-zero if generated/ is stale, missing or has extra files.
        #[arg(long)]
        check: bool,
    },
    /// Compare proto/ with a baseline and report wire-breaking changes (exit 1)
    /// and JSON/source-breaking ones (warnings). Exit 2 if it cannot check.
    Breaking {
        /// Baseline: a descriptor-set file if this path exists, else a git ref
        /// whose generated/file_descriptor_set.bin is used [default: HEAD].
        #[arg(long, value_name = "REF|FILE")]
        against: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exit 0 despite wire-breaking changes when HEAD's commit message has a
        /// `Breaking-Change: <reason>` line (for CI; findings are still reported).
        #[arg(long)]
        allow_if_commit_says: bool,
    },
    /// Benchmark our server against bare tonic, Python grpcio and Node grpc-js
    /// on this machine (release build, loopback, pinned cores; takes minutes),
    /// its durable inserts against PostgreSQL's, its store at 10k to 1M orders,
    /// and its PostgreSQL store against its embedded one.
    /// Prints tables and the targets; writes bench-results.json,
    /// benchmarks.svg and scaling.svg (into target/bench/), and with
    /// --write-report also BENCHMARKS.md (all four into docs/bench/).
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
    /// Count the instructions one getOrder costs our server and bare tonic,
    /// with callgrind (exact and repeatable, unlike requests/s on a shared
    /// machine). Dumps go to target/profile/ for callgrind_annotate.
    #[cfg(feature = "bench")]
    Profile {
        /// getOrder calls to count, after a warm-up.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..))]
        calls: u64,
        /// Also write PROFILE.md (the table and our costliest functions) into docs/bench/.
        #[arg(long)]
        write_report: bool,
    },
    /// getOrder over the HTTP/JSON API (HTTP/2 and HTTP/1.1) against over
    /// gRPC, on one server, side by side: req/s and the gateway's extra
    /// cost per call.
    #[cfg(feature = "bench")]
    Gateway {
        /// Rounds; the three ways take turns within each.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: u64,
        /// Seconds of load per run.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
    },
    /// The server's memory under the hostile clients of issue 16, at their
    /// scale: RSS before, peak and after each attack (~2 min).
    #[cfg(feature = "bench")]
    Attacks {
        /// Also write ATTACKS.md into docs/bench/.
        #[arg(long)]
        write_report: bool,
        /// Only these attacks (1 to 6, comma-separated).
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=6))]
        only: Vec<u64>,
        /// An extra server argument, to try other limits than the defaults
        /// (repeat for several, e.g. `--server-arg=--max-buffered-bytes=33554432`).
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_args: Vec<String>,
    },
    /// Reads under a flood of writes, and admitted calls at 10x the call
    /// limit: their p99 against the unloaded one (~1 min).
    #[cfg(feature = "bench")]
    Overload {
        /// Seconds of each measurement.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
        /// The read admission limit (--max-concurrent-calls) of the 10x measurement.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Also write OVERLOAD.md into docs/bench/.
        #[arg(long)]
        write_report: bool,
    },
}

#[cfg(feature = "bench")]
#[derive(clap::Args)]
struct BenchArgs {
    /// Rounds; the servers take turns within each [default: 3, 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: Option<u32>,
    /// Seconds of load per run [default: 10, 3 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: Option<u64>,
    /// A smoke test: 1 round of 3 s, stores of 10k and 100k orders.
    #[arg(long)]
    quick: bool,
    /// Peers (or parts of the run: postgres, scaling, backends) to leave out, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<xtask::bench::Peer>,
    /// Orders in each store of the store-size series, comma-separated
    /// [default: 10000,100000,1000000; 10000,100000 with --quick]. 10000000
    /// takes a long while (to load once, and to stream at every run).
    #[arg(long, value_delimiter = ',', value_name = "N,...", value_parser = clap::value_parser!(u64).range(10..=100_000_000))]
    store_sizes: Vec<u64>,
    /// Where to write the files [default: docs/bench with
    /// --write-report, else target/bench].
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Also write BENCHMARKS.md (the full report) into the output dir.
    #[arg(long)]
    write_report: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One line per finding, then a summary.
    Text,
    /// One JSON object, for tools.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = match find_project_root() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("error: {e:#}");
            // `breaking` exits 2 when it cannot check.
            return match cli.command {
                Command::Breaking { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
        }
    };
    let (proto, generated) = (root.join("proto"), root.join("generated"));
    let result = match cli.command {
        #[cfg(feature = "bench")]
        Command::Bench(args) => return bench(&root, args),
        #[cfg(feature = "bench")]
        Command::Profile {
            calls,
            write_report,
        } => return profile(&root, calls, write_report),
        #[cfg(feature = "bench")]
        Command::Gateway { rounds, seconds } => {
            let options = xtask::gateway::GatewayOptions {
                rounds: rounds as usize,
                seconds,
            };
            return match xtask::gateway::run_gateway(&root, &options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gateway: error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        #[cfg(feature = "bench")]
        Command::Attacks {
            write_report,
            only,
            server_args,
        } => {
            let options = xtask::attacks::AttackOptions {
                write_report,
                only: only.into_iter().map(|n| n as usize).collect(),
                server_args,
            };
            return match xtask::attacks::run_attacks(&root, &options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("attacks: error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        #[cfg(feature = "bench")]
        Command::Overload {
            seconds,
            limit,
            write_report,
        } => {
            let options = xtask::overload::OverloadOptions {
                seconds,
                limit,
                write_report,
            };
            return match xtask::overload::run_overload(&root, &options) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("overload: error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Breaking {
            against,
            format,
            allow_if_commit_says,
        } => return check_breaking(&root, against, format, allow_if_commit_says),
        Command::Man => xtask::man::write(&root).map(|path| println!("wrote {}", path.display())),
        Command::Codegen { check: true } => {
            codegen::check(&proto, &generated).map(|()| println!("generated/ is up to date"))
        }
        Command::Codegen { check: false } => {
            codegen::write(&proto, &generated).map(|changed| match changed.as_slice() {
                [] => println!("generated/ is up to date"),
                _ => changed.iter().for_each(|c| println!("wrote {c}")),
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status: 0 every run verified, 1 not, or an error.
#[cfg(feature = "bench")]
fn bench(root: &Path, args: BenchArgs) -> ExitCode {
    let quick = args.quick;
    let options = xtask::bench::Options {
        rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }) as usize,
        seconds: args.seconds.unwrap_or(if quick { 3 } else { 10 }),
        skip: args.skip,
        // A casual run writes under target/ only: the tree stays clean.
        out: args.out.unwrap_or_else(|| match args.write_report {
            true => root.join(xtask::bench::REPORT_DIR),
            false => root.join("target/bench"),
        }),
        write_report: args.write_report,
        quick,
        store_sizes: match args.store_sizes.as_slice() {
            [] if quick => xtask::bench::QUICK_STORE_SIZES.to_vec(),
            [] => xtask::bench::STORE_SIZES.to_vec(),
            sizes => sizes.iter().map(|&n| n as usize).collect(),
        },
    };
    match xtask::bench::run_bench(root, options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "bench")]
fn profile(root: &Path, calls: u64, write_report: bool) -> ExitCode {
    let options = xtask::profile::ProfileOptions {
        calls,
        write_report,
    };
    match xtask::profile::run_profile(root, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profile: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status: 0 nothing wire-breaking (or allowed), 1 wire-breaking, 2 cannot check.
fn check_breaking(root: &Path, against: Option<String>, format: Format, allow: bool) -> ExitCode {
    let against = against.as_deref().unwrap_or("HEAD");
    match breaking::run(root, against, allow) {
        Ok(outcome) => {
            match format {
                Format::Text => print!("{}", outcome.text()),
                Format::Json => print!("{}", outcome.json()),
            }
            if outcome.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
