//! The exact bytes our messages put on the wire. A change here is a change to
//! the protocol that the Python seed (and every deployed client) speaks:
//! review it as such, never accept it blindly. The files are
//! `tests/snapshots/wire_snapshots__*.snap` ([`in_tests_snapshots`]).

use crate::support::in_tests_snapshots;
use crate::support::wire::{annotate, annotate_nested};
use order_management::{CombinedShipment, Order, seed};
use prost::Message;

#[test]
fn order_101() {
    in_tests_snapshots(|| {
        insta::assert_snapshot!(
            "wire_snapshots__order_101",
            annotate(&seed::order_101().encode_to_vec())
        );
    });
}

#[test]
fn get_order_request_string_value_101() {
    // getOrder's request is google.protobuf.StringValue; prost maps it to String.
    in_tests_snapshots(|| {
        insta::assert_snapshot!(
            "wire_snapshots__get_order_request_string_value_101",
            annotate(&"101".to_owned().encode_to_vec())
        );
    });
}

#[test]
fn empty_order_encodes_to_nothing() {
    let bytes = Order::default().encode_to_vec();
    assert!(bytes.is_empty(), "proto3 omits default values: {bytes:?}");
    in_tests_snapshots(|| {
        insta::assert_snapshot!(
            "wire_snapshots__empty_order_encodes_to_nothing",
            annotate(&bytes)
        );
    });
}

#[test]
fn order_with_non_ascii_text_and_many_items() {
    let order = Order {
        id: "주문-7".into(),
        items: (1..=12).map(|i| format!("Item {i} – ünïcødé 🍜")).collect(),
        description: "배송 전 연락 주세요.\nLine two\t\"quoted\"".into(),
        price: 12.5,
        destination: "Séoul, 구로구".into(),
    };
    let bytes = order.encode_to_vec();
    assert_eq!(Order::decode(bytes.as_slice()).unwrap(), order);
    in_tests_snapshots(|| {
        insta::assert_snapshot!(
            "wire_snapshots__order_with_non_ascii_text_and_many_items",
            annotate(&bytes)
        );
    });
}

/// The seed's Python client calls `stub.getOrder(order_pb2.Order(id='101'))`:
/// it sends an Order where a StringValue is expected. That works only because
/// both put the id in field 1 as a length-delimited string; this keeps it so.
#[test]
fn seed_client_order_with_id_is_the_same_bytes_as_string_value() {
    let as_order = Order {
        id: "101".into(),
        ..Order::default()
    }
    .encode_to_vec();
    let as_string_value = "101".to_owned().encode_to_vec();
    assert_eq!(as_order, as_string_value);
    assert_eq!(String::decode(as_order.as_slice()).unwrap(), "101");
}

#[test]
fn combined_shipment_with_nested_orders() {
    let shipment = CombinedShipment {
        id: "cmb - Seoul".into(),
        status: "Processed!".into(),
        orders_list: vec![
            seed::order_101(),
            Order {
                id: "102".into(),
                items: vec!["Google Pixel 3A".into()],
                price: 0.5,
                destination: "Seoul".into(),
                ..Order::default()
            },
        ],
    };
    let bytes = shipment.encode_to_vec();
    assert_eq!(
        CombinedShipment::decode(bytes.as_slice()).unwrap(),
        shipment
    );
    in_tests_snapshots(|| {
        insta::assert_snapshot!(
            "wire_snapshots__combined_shipment_with_nested_orders",
            annotate_nested(&bytes, &[3])
        );
    });
}
