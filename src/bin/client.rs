//! `cargo run --bin client 101`: see `order_management::client`.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use order_management::client::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => client::main(cli).await,
        // --help and --version print as clap prints them.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        // A usage error is one line, like every other failure: clap's own
        // message (its first paragraph, which names the arguments) without
        // its "error: ", usage and "For more information" tail.
        Err(e) => {
            let text = e.render().to_string();
            let said: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let said = said.join(" ");
            let line = said.strip_prefix("error: ").unwrap_or(&said);
            eprintln!("client: {line}; try `client --help`");
            ExitCode::from(2)
        }
    }
}
