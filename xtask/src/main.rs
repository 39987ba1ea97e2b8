use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{codegen, project_root};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = project_root();
    let (proto, generated) = (root.join("proto"), root.join("generated"));
    let result = match cli.command {
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
