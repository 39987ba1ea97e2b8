//! `cargo run --bin server`: see `order_management::server`.

use std::process::ExitCode;

use order_management::server::{self, Config};

// mimalloc: fewer cycles per allocation than the system allocator on the
// many small, short-lived buffers of each call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::from_command_line();
    let runtime = match server::runtime(config.threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::main(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("server: {message}");
            ExitCode::FAILURE
        }
    }
}
