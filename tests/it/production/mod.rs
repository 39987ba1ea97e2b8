//! The production server features: health, reflection, graceful shutdown,
//! logs and request ids, bearer auth, limits, gzip, panics, rich errors and
//! configuration.
//!
//! Most tests run the production stack in-process (`Running::start`, the
//! same services and layers the binary serves) on its own thread and
//! runtime, with a oneshot as the shutdown signal; what only a process
//! shows (signals, exit status, the JSON log, environment variables) runs
//! the real binaries. TLS is in `tls`.
//!
//! Async tests that block on a child process use a multi-thread runtime:
//! the client connections still need a worker while the test thread waits.

mod harness;

mod auth;
mod config;
mod connections;
mod console;
mod disk;
mod grpc_web;
mod gzip;
mod health;
mod http_api;
mod limits;
mod observability;
mod panics;
mod readme_curl;
mod reflection;
mod refusals;
mod rich_errors;
mod shutdown;
mod stalled_readers;
