//! `cargo run --bin client 101`: see `order_management::client`.

use std::process::ExitCode;

use clap::Parser;
use order_management::client::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    client::main(Cli::parse()).await
}
