//! The load generator's tests, one binary (see the project's tests/it).

mod auth;
mod full;
mod server;
mod soak;
mod unreachable;
