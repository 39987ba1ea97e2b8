//! Protobuf encode/decode of the messages the service sends and receives
//! (prost, as tonic's codec calls it).
//!
//! `cargo bench --bench codec` (add `-- --quick` for a short run).
//!
//! For each message: `encode_to_vec` (a fresh allocation per message),
//! `encode_reused_buf` (into a cleared buffer, as tonic's codec encodes into
//! its own buffer) and `decode` (from a byte slice).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use order_management::pb::{CombinedShipment, Order};
use order_management::seed;
use prost::Message;

/// The seed's order with `n` items.
fn order_with_items(n: usize) -> Order {
    Order {
        items: (0..n).map(|i| format!("Item - {i}")).collect(),
        ..seed::order_101()
    }
}

/// A processOrders reply: `n` orders bound for the same destination.
fn shipment_of(n: usize) -> CombinedShipment {
    CombinedShipment {
        id: "cmb - Seoul".into(),
        status: "Processed!".into(),
        orders_list: (0..n)
            .map(|i| Order {
                id: format!("{}", 101 + i),
                ..seed::order_101()
            })
            .collect(),
    }
}

/// Benchmarks encode and decode of `message` under `name`.
fn message<M: Message + Default>(c: &mut Criterion, name: &str, message: &M) {
    let encoded = message.encode_to_vec();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(encoded.len() as u64));

    group.bench_function(BenchmarkId::new("encode_to_vec", name), |b| {
        b.iter(|| black_box(message).encode_to_vec())
    });

    let mut buf = Vec::with_capacity(encoded.len());
    group.bench_function(BenchmarkId::new("encode_reused_buf", name), |b| {
        b.iter(|| {
            buf.clear();
            black_box(message).encode(&mut buf).unwrap();
            black_box(buf.len())
        })
    });

    group.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| M::decode(black_box(encoded.as_slice())).unwrap())
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    message(c, "order_101", &seed::order_101());
    message(c, "order_50_items", &order_with_items(50));
    message(c, "shipment_10_orders", &shipment_of(10));
    // google.protobuf.StringValue: prost maps it to `String`.
    message(c, "string_value_101", &String::from("101"));
}

criterion_group!(benches, codec);
criterion_main!(benches);
