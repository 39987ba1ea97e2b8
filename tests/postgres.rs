//! The PostgreSQL store against a real PostgreSQL server that the tests
//! start themselves (see `it/postgres/harness.rs`).
//!
//! A binary of its own until the tests move into `tests/it/main.rs`:
//! then `mod postgres;` there replaces this file.

#[path = "it/postgres/mod.rs"]
mod postgres;
