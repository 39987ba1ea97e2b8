//! The client's text layout against Python protobuf's: every fixture small
//! enough to carry it has, in tests/fixtures/index.json, the text that the
//! pinned Python protobuf's `text_format.MessageToString(message,
//! as_utf8=True)` writes (tests/interop/make_fixtures.py; the interop run
//! regenerates it and fails on any difference). `format::text`, what
//! `client` prints, must write exactly that for the same bytes.

use order_management::format;
use order_management::pb::{CombinedShipment, Order};
use prost::Message as _;

const INDEX: &str = include_str!("../fixtures/index.json");

#[test]
fn the_client_prints_what_python_text_format_writes() {
    let index: serde_json::Value = serde_json::from_str(INDEX).unwrap();
    assert_eq!(index["protobuf"], "7.36.2", "README names this version");
    let mut compared = 0;
    for entry in index["fixtures"].as_array().unwrap() {
        let Some(expected) = entry["text"].as_str() else {
            continue;
        };
        let name = entry["name"].as_str().unwrap();
        let path = format!(
            "{}/tests/fixtures/{}",
            env!("CARGO_MANIFEST_DIR"),
            entry["file"].as_str().unwrap()
        );
        let bytes = std::fs::read(&path).unwrap();
        let full_name = entry["type"].as_str().unwrap();
        let text = match full_name {
            "ecommerce.Order" => format::text(full_name, &Order::decode(&bytes[..]).unwrap()),
            "ecommerce.CombinedShipment" => {
                format::text(full_name, &CombinedShipment::decode(&bytes[..]).unwrap())
            }
            "google.protobuf.StringValue" => {
                format::text(full_name, &String::decode(&bytes[..]).unwrap())
            }
            other => panic!("{name}: no Rust type for {other}"),
        };
        // Known differences, as on the wire (wire_fixtures.rs): Python keeps
        // the unknown field 6 and prints it as `6: 1`, prost drops unknown
        // fields; a -0.0 price is a set field to Python, the default to prost.
        let expected = match name {
            "order_unknown_field_6" => expected.replace("6: 1\n", ""),
            "order_price_negative_zero" => {
                assert_eq!(expected, "price: -0.0\n");
                String::new()
            }
            _ => expected.to_owned(),
        };
        assert_eq!(text, expected, "{name}");
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} fixtures carry their text");
}
