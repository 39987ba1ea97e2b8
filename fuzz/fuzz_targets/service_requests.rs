//! Arbitrary request bodies through the real service, in-process: the
//! generated tower service `OrderManagementServer` over a fresh in-memory
//! store holding order 101, called with an `http::Request` as the transport
//! would, on one tokio runtime for the whole run (no network).
//!
//! Input layout (missing bytes read as 0):
//!
//! - byte 0, flags: bits 0-2 the method (`METHODS[(b & 7) % 6]`: the five,
//!   or a path the service does not have); bit 3 the production codec
//!   settings (gzip accepted and sent, 4 MiB limits); bit 4 a `grpc-timeout`
//!   header (byte 1 picks it); bit 5 `grpc-encoding: gzip`; bit 6
//!   `grpc-accept-encoding: gzip`; bit 7 the body split into DATA chunks of
//!   byte 2 bytes (at least 1) instead of one.
//! - byte 1: the `grpc-timeout` value, `TIMEOUTS[b % len]`.
//! - byte 2: the chunk size.
//! - the rest: the request body, as is (gRPC frames, if the fuzzer likes).
//!
//! Properties: nothing panics (anywhere: libfuzzer-sys aborts on any panic,
//! even one the service catches); every call ends; every response carries a
//! valid `grpc-status` in its trailers or, for a trailers-only response, its
//! headers; every response message decodes as the method's response type;
//! a unary OK has exactly one message; the store only ever holds order 101
//! plus what this call added, so what comes back is consistent with that.
#![no_main]

use fuzz_support::{METHODS, Metadata, Reply, call, server};
use libfuzzer_sys::fuzz_target;
use order_management::{CombinedShipment, Order, seed};
use tonic::Code;

/// Valid values (units H M S m u n, 0 included) and malformed ones.
const TIMEOUTS: [&str; 10] = [
    "0n",
    "1n",
    "1u",
    "1m",
    "100m",
    "1S",
    "10M",
    "99999999H",
    "123456789S",
    "1x",
];

fuzz_target!(|data: &[u8]| {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let flags = byte(0);
    let method = METHODS[usize::from(flags & 7) % METHODS.len()];
    let meta = Metadata {
        grpc_timeout: (flags & 0x10 != 0).then(|| TIMEOUTS[usize::from(byte(1)) % TIMEOUTS.len()]),
        grpc_encoding: (flags & 0x20 != 0).then_some("gzip"),
        accept_encoding: (flags & 0x40 != 0).then_some("gzip"),
    };
    let chunk = if flags & 0x80 != 0 {
        usize::from(byte(2).max(1))
    } else {
        0
    };
    let body = data.get(3..).unwrap_or_default();

    let mut server = server(flags & 0x08 != 0);
    let reply = call(&mut server, method, body, chunk, &meta);
    check(method, &reply);
});

fn check(method: &str, reply: &Reply) {
    let ok = reply.code() == Code::Ok;
    let unary = matches!(method, "addOrder" | "getOrder" | "updateOrders");
    if unary && ok {
        assert_eq!(
            reply.messages.len(),
            1,
            "{method}: a unary OK has one message: {reply:?}"
        );
    }
    if unary && !ok {
        assert!(
            reply.messages.is_empty(),
            "{method}: an error with a message: {reply:?}"
        );
    }
    match method {
        "addOrder" => {
            let ids = reply.decode::<String>();
            assert!(ids.iter().all(|id| !id.is_empty()), "{reply:?}");
        }
        "getOrder" => {
            for order in reply.decode::<Order>() {
                assert_eq!(order, seed::order_101(), "only order 101 is stored");
            }
        }
        "searchOrders" => {
            let found = reply.decode::<Order>();
            assert!(found.len() <= 1, "one order is stored, found {found:?}");
            assert!(found.iter().all(|o| *o == seed::order_101()), "{found:?}");
        }
        "updateOrders" => {
            for text in reply.decode::<String>() {
                assert!(text.starts_with("Updated Order IDs : "), "{text:?}");
            }
        }
        "processOrders" => {
            for shipment in reply.decode::<CombinedShipment>() {
                assert_eq!(shipment.id, "cmb - Seoul", "{shipment:?}");
                assert_eq!(shipment.status, "Processed!");
                assert!(!shipment.orders_list.is_empty());
                assert!(shipment.orders_list.iter().all(|o| *o == seed::order_101()));
            }
        }
        _ => assert_eq!(
            reply.code(),
            Code::Unimplemented,
            "an unknown method: {reply:?}"
        ),
    }
}
