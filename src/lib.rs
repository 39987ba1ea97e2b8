//! The `ecommerce.OrderManagement` gRPC service from *gRPC: Up and Running*,
//! wire-compatible with the Python grpcio seed.
//!
//! Architecture, in the order data flows:
//! `proto/order.proto` (the contract) -> `generated/` (written by
//! `cargo xtask codegen`, included below) -> [`service`] (the RPC handlers) ->
//! [`store`] (where orders live). The binaries in `src/bin/` are thin shells
//! around [`server`] and [`client`].

pub mod admin;
pub mod buffer_budget;
pub mod call;
pub mod client;
pub mod console;
pub mod format;
pub mod gateway;
pub mod log;
pub mod metrics;
pub mod middleware;
pub mod search_pipe;
pub mod seed;
pub mod server;
pub mod service;
pub mod shipment_pipe;
pub mod shipments;
pub mod store;
pub mod tls_files;
pub mod trace;
pub mod validate;

/// Messages, client and server generated from `proto/order.proto`.
///
/// The code is checked in under `generated/` so IDEs and reviewers see it;
/// `cargo xtask codegen` rewrites it and `cargo test` fails when it is stale.
pub mod pb {
    // The generated server names its per-method services after the rpc names
    // (`getOrder`), and tonic-prost-build emits some patterns clippy flags.
    #![allow(non_camel_case_types, clippy::all, clippy::pedantic)]
    include!("../generated/ecommerce.rs");

    /// The encoded `FileDescriptorSet` of the contract and its imports
    /// (source info stripped), for reflection and the proto3 JSON mapping.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../generated/file_descriptor_set.bin");

    /// The fully qualified service name, as it appears in call paths.
    pub const SERVICE_NAME: &str = "ecommerce.OrderManagement";
}

pub use pb::{CombinedShipment, Order};
