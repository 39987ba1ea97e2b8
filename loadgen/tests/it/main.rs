//! The load generator's tests, one binary (see the project's tests/it).

mod auth;
mod server;
mod soak;
mod unreachable;
