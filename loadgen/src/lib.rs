//! Load generation against an OrderManagement server, for benchmarks and
//! soak tests: the `loadgen` binary (see `main.rs`). It connects exactly as
//! the user's `client` does (`order_management::client::Connector`: TLS,
//! mTLS, bearer token, gzip), so it can load any server the client can reach.

pub mod bench;
pub mod soak;
