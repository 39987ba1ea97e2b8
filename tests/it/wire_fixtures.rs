//! prost against the reference protobuf runtime, byte for byte.
//!
//! `tests/fixtures/*.bin` are golden encodings written by Python `protobuf`
//! (the runtime the seed's grpcio code uses; version pinned in
//! tests/interop/requirements.txt) with tests/interop/make_fixtures.py, listed
//! in `tests/fixtures/index.json`. Every case is defined again here, in Rust,
//! independently of the script: prost must encode it to exactly the fixture's
//! bytes and decode the fixture back to the same value (floats compared by
//! their bits).
//!
//! Two cases differ, and are asserted as such rather than hidden:
//! - `order_price_negative_zero`: Python writes `price = -0.0`, prost does not
//!   (`negative_zero_price_is_encoded_differently`).
//! - `order_unknown_field_6`: prost drops a field it does not know on decode,
//!   Python keeps and rewrites it (`unknown_fields_are_skipped_by_prost`).
//!
//! Regenerating the fixtures (new case, new protobuf pin): tests/fixtures/index.md.
//! tests/interop/run.sh fails when the committed fixtures differ from what the
//! script writes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use order_management::{CombinedShipment, Order, seed};
use prost::Message;

/// A fixture's message, as defined on the Rust side.
#[derive(Debug, Clone, PartialEq)]
enum Golden {
    Order(Order),
    Shipment(CombinedShipment),
    /// google.protobuf.StringValue, which prost maps to `String`.
    StringValue(String),
}

impl Golden {
    fn type_name(&self) -> &'static str {
        match self {
            Golden::Order(_) => "ecommerce.Order",
            Golden::Shipment(_) => "ecommerce.CombinedShipment",
            Golden::StringValue(_) => "google.protobuf.StringValue",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Golden::Order(m) => m.encode_to_vec(),
            Golden::Shipment(m) => m.encode_to_vec(),
            Golden::StringValue(m) => m.encode_to_vec(),
        }
    }

    /// Decodes `bytes` as a message of the same type as `self`.
    fn decode_like(&self, bytes: &[u8]) -> Result<Golden, prost::DecodeError> {
        Ok(match self {
            Golden::Order(_) => Golden::Order(Order::decode(bytes)?),
            Golden::Shipment(_) => Golden::Shipment(CombinedShipment::decode(bytes)?),
            Golden::StringValue(_) => Golden::StringValue(String::decode(bytes)?),
        })
    }

    /// Equal, with every float compared by its bits (so -0.0 != 0.0).
    fn same_bits(&self, other: &Golden) -> bool {
        let prices = |v: &Golden| -> Vec<u32> {
            match v {
                Golden::Order(o) => vec![o.price.to_bits()],
                Golden::Shipment(s) => s.orders_list.iter().map(|o| o.price.to_bits()).collect(),
                Golden::StringValue(_) => vec![],
            }
        };
        self == other && prices(self) == prices(other)
    }
}

fn order(id: &str, items: &[&str], description: &str, price: f32, destination: &str) -> Order {
    Order {
        id: id.into(),
        items: items.iter().map(|s| s.to_string()).collect(),
        description: description.into(),
        price,
        destination: destination.into(),
    }
}

fn priced(price: f32) -> Golden {
    Golden::Order(Order {
        price,
        ..Order::default()
    })
}

/// Every fixture, by name, defined in Rust (mirrors make_fixtures.py).
fn cases() -> Vec<(&'static str, Golden)> {
    vec![
        ("order_empty", Golden::Order(Order::default())),
        ("order_seed_101", Golden::Order(seed::order_101())),
        (
            "order_id_only_101",
            Golden::Order(Order {
                id: "101".into(),
                ..Order::default()
            }),
        ),
        (
            "order_seed_client_order1",
            Golden::Order(order(
                "",
                &["Item - A", "Item - B", "Item - C"],
                "This is a Sample order - 1 : description.",
                1000.0,
                "Seoul, Guro",
            )),
        ),
        (
            "order_non_ascii",
            Golden::Order(order(
                "주문-7",
                &[
                    "Item – ünïcødé",
                    "🍜 라면",
                    "e\u{301} (e + combining acute)",
                    "tab\tnewline\n\"quote\" \\backslash",
                    "nul\0inside",
                ],
                "배송 전 연락 주세요.",
                12.5,
                "Séoul, 구로구",
            )),
        ),
        (
            "order_items_with_empty_strings",
            Golden::Order(order("e", &["", "a", ""], "", 0.0, "")),
        ),
        (
            "order_many_items",
            Golden::Order(Order {
                id: "many".into(),
                items: (0..1000).map(|i| format!("item-{i:04}")).collect(),
                price: 1.0,
                ..Order::default()
            }),
        ),
        (
            "order_long_fields",
            Golden::Order(Order {
                id: "i".repeat(128),
                items: vec!["x".repeat(1024)],
                description: "d".repeat(4096),
                price: f32::MAX,
                destination: "s".repeat(256),
            }),
        ),
        (
            "order_description_20000_bytes",
            Golden::Order(Order {
                id: "long".into(),
                items: vec!["a".into()],
                description: "가".repeat(6666) + "ab",
                ..Order::default()
            }),
        ),
        ("order_price_zero", priced(0.0)),
        ("order_price_negative_zero", priced(-0.0)),
        ("order_price_1000", priced(1000.0)),
        ("order_price_one_tenth", priced(0.1)),
        ("order_price_negative_one_and_a_half", priced(-1.5)),
        ("order_price_smallest_subnormal", priced(f32::from_bits(1))),
        ("order_price_smallest_normal", priced(f32::MIN_POSITIVE)),
        ("order_price_largest_finite", priced(f32::MAX)),
        ("order_price_lowest_finite", priced(f32::MIN)),
        // What prost decodes from seed order 101 followed by field 6.
        ("order_unknown_field_6", Golden::Order(seed::order_101())),
        (
            "shipment_empty",
            Golden::Shipment(CombinedShipment::default()),
        ),
        (
            "shipment_nested_orders",
            Golden::Shipment(CombinedShipment {
                id: "cmb - Seoul".into(),
                status: "Processed!".into(),
                orders_list: vec![
                    seed::order_101(),
                    order("102", &["Google Pixel 3A", "김치"], "", 0.5, "Seoul"),
                ],
            }),
        ),
        (
            "shipment_with_empty_orders",
            Golden::Shipment(CombinedShipment {
                id: "cmb - ".into(),
                status: String::new(),
                orders_list: vec![
                    Order::default(),
                    Order {
                        id: "x".into(),
                        ..Order::default()
                    },
                    Order::default(),
                ],
            }),
        ),
        ("string_value_101", Golden::StringValue("101".into())),
        ("string_value_empty", Golden::StringValue(String::new())),
        (
            "string_value_non_ascii",
            Golden::StringValue("주문-101 ✓ 🍜".into()),
        ),
        (
            "string_value_300_bytes",
            Golden::StringValue("v".repeat(300)),
        ),
    ]
}

/// Fixtures whose prost encoding differs from Python's, each asserted in
/// its own test below.
const KNOWN_ENCODING_DIFFERENCES: [&str; 2] =
    ["order_price_negative_zero", "order_unknown_field_6"];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; the fixtures are written by tests/interop/make_fixtures.py \
             (see tests/fixtures/index.md)",
            path.display()
        )
    })
}

fn index() -> serde_json::Value {
    let path = fixtures_dir().join("index.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("tests/fixtures/index.json is JSON")
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_fixture_has_a_rust_case_and_the_index_matches_the_files() {
    let index = index();
    let entries = index["fixtures"].as_array().expect("a fixtures array");
    let cases = cases();

    let listed: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let defined: BTreeSet<&str> = cases.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        listed, defined,
        "index.json and the Rust cases must list the same fixtures"
    );
    assert_eq!(listed.len(), entries.len(), "a fixture is listed twice");

    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".bin").map(str::to_owned))
        .collect();
    let listed_owned: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, listed_owned, "every .bin file is in index.json");

    for (name, value) in &cases {
        let entry = entries.iter().find(|e| e["name"] == *name).unwrap();
        let bytes = fixture(name);
        assert_eq!(entry["type"], value.type_name(), "{name}: message type");
        assert_eq!(entry["size"], bytes.len(), "{name}: size");
        if let Some(full) = entry["hex"].as_str() {
            assert_eq!(full, hex(&bytes), "{name}: index hex");
        } else {
            let prefix = entry["hex_prefix"].as_str().expect("hex or hex_prefix");
            assert!(hex(&bytes).starts_with(prefix), "{name}: index hex prefix");
        }
        // The values the script wrote agree with the Rust definition (the
        // bits of every top-level price).
        if let Golden::Order(order) = value {
            assert_eq!(
                entry["value"]["price"]["bits"],
                format!("0x{:08x}", order.price.to_bits()),
                "{name}: price"
            );
        }
    }
}

#[test]
fn the_fixtures_were_made_by_the_pinned_protobuf() {
    let requirements = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/requirements.txt"),
    )
    .unwrap();
    let pinned = requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix("protobuf=="))
        .expect("requirements.txt pins protobuf");
    assert_eq!(
        index()["protobuf"],
        pinned,
        "regenerate the fixtures with the pinned protobuf"
    );
}

#[test]
fn prost_encodes_every_fixture_to_exactly_its_bytes() {
    let mut mismatches = Vec::new();
    for (name, value) in cases() {
        if KNOWN_ENCODING_DIFFERENCES.contains(&name) {
            continue;
        }
        let ours = value.encode();
        let reference = fixture(name);
        if ours != reference {
            mismatches.push(format!(
                "{name}:\n  prost:  {}\n  python: {}",
                hex(&ours),
                hex(&reference)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "prost and Python protobuf disagree:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn prost_decodes_every_fixture_to_the_same_value() {
    for (name, value) in cases() {
        let decoded = value
            .decode_like(&fixture(name))
            .unwrap_or_else(|e| panic!("{name}: prost cannot decode the fixture: {e}"));
        assert!(
            decoded.same_bits(&value),
            "{name}: decoded {decoded:?}, expected {value:?}"
        );
    }
}

/// proto3 `float price` has implicit presence: a field holding its default
/// value is not written. Python protobuf (upb, and its pure-Python backend
/// alike) decides by the bits, so -0.0 (0x80000000), not being +0.0, is
/// written. prost decides with `value != 0.0`, and `-0.0 == 0.0` in IEEE 754,
/// so prost writes nothing. Decoding agrees: both read 25 00 00 00 80 as
/// -0.0. The consequence on the wire: an order whose price is -0.0 comes
/// back from our server as +0.0 (tests/interop/peer_client.py checks that
/// end to end). Harmless for prices (-0.0 == 0.0), but it is a difference.
#[test]
fn negative_zero_price_is_encoded_differently() {
    let negative_zero = Order {
        price: -0.0,
        ..Order::default()
    };
    assert!(negative_zero.price == 0.0, "why prost skips it");
    assert_eq!(negative_zero.price.to_bits(), 0x8000_0000);

    // What each side emits.
    let python = fixture("order_price_negative_zero");
    assert_eq!(
        python,
        [0x25, 0x00, 0x00, 0x00, 0x80],
        "Python writes the field"
    );
    assert_eq!(negative_zero.encode_to_vec(), b"", "prost writes nothing");
    assert_eq!(
        negative_zero.encode_to_vec(),
        fixture("order_price_zero"),
        "prost writes -0.0 as Python writes +0.0"
    );

    // Decoding agrees, sign included.
    let decoded = Order::decode(python.as_slice()).unwrap();
    assert_eq!(
        decoded.price.to_bits(),
        0x8000_0000,
        "the sign survives decoding"
    );
    // Re-encoding through prost loses it.
    let back = Order::decode(decoded.encode_to_vec().as_slice()).unwrap();
    assert_eq!(
        back.price.to_bits(),
        0,
        "a prost round trip turns -0.0 into +0.0"
    );
}

/// A newer peer may send a field this contract does not define. prost skips
/// it (the message still decodes; no error), Python keeps unknown fields and
/// writes them back. So prost's re-encoding is the known order without it.
#[test]
fn unknown_fields_are_skipped_by_prost() {
    let python = fixture("order_unknown_field_6");
    let seed_bytes = fixture("order_seed_101");
    assert_eq!(python[..seed_bytes.len()], seed_bytes[..]);
    assert_eq!(
        python[seed_bytes.len()..],
        [0x30, 0x01],
        "field 6, varint 1"
    );

    let decoded = Order::decode(python.as_slice()).unwrap();
    assert_eq!(decoded, seed::order_101());
    assert_eq!(decoded.encode_to_vec(), seed_bytes, "prost drops field 6");
}

/// The seed's client sends `Order(id='101')` where getOrder expects a
/// StringValue: both runtimes agree that these are the same bytes.
#[test]
fn the_seed_clients_order_request_is_a_string_value() {
    let as_order = fixture("order_id_only_101");
    assert_eq!(as_order, fixture("string_value_101"));
    assert_eq!(String::decode(as_order.as_slice()).unwrap(), "101");
}
