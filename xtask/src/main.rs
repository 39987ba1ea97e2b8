use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use xtask::{breaking, codegen, project_root};

/// Project automation for order-management.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    let root = project_root();
    let (proto, generated) = (root.join("proto"), root.join("generated"));
    let result = match cli.command {
        Command::Breaking {
            against,
            format,
            allow_if_commit_says,
        } => return check_breaking(&root, against, format, allow_if_commit_says),
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
