//! `cargo run --bin server`: see `order_management::server`.

use std::process::ExitCode;

use clap::Parser;
use order_management::server::{self, Config};

#[tokio::main]
async fn main() -> ExitCode {
    match server::main(Config::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("server: {message}");
            ExitCode::FAILURE
        }
    }
}
