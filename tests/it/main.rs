//! The integration tests: one test binary (target `it`), one module per
//! area, the shared helpers in `support`. One binary rather than one per
//! file: the crate and the helpers are compiled and linked once, and every
//! test runs in one process (`cargo test --test it MODULE::` for one area).
//!
//! All tests share that process and run in parallel threads, so none may
//! change process-wide state: no environment variables (the child processes
//! get theirs through `Command::env`), no current directory, no global
//! tracing subscriber (a test that reads a server's log captures it per
//! server: `production::harness::LogCapture`).

mod support;

mod bad_input;
mod cli;
mod cli_habits;
mod client_faults;
mod contract_snapshot;
mod durability;
mod interop_python_peer;
mod observability;
mod postgres;
mod production;
mod readme;
mod server_flags;
mod server_process;
mod service;
mod store_commands;
mod text_fixtures;
mod tls;
mod wire_fixtures;
mod wire_snapshots;
