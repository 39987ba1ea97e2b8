//! How the client shows messages to people and to scripts.
//!
//! - [`text`]: the protobuf text layout the seed's Python client prints
//!   (`id: "101"`, one `items:` line per item, default values omitted).
//! - [`to_json`] / [`from_json`]: the proto3 JSON mapping, driven by the
//!   descriptor set that codegen writes, so field names and special values
//!   (`"NaN"`, `"Infinity"`) follow the spec rather than serde defaults.

use std::fmt::Write as _;
use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor};

use crate::pb::FILE_DESCRIPTOR_SET;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .expect("generated/file_descriptor_set.bin is produced by codegen and always decodes")
});

/// The descriptor of a message of the contract, e.g. `ecommerce.Order`.
pub fn descriptor(full_name: &str) -> MessageDescriptor {
    POOL.get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is not in the generated descriptor set"))
}

fn dynamic<M: Message>(full_name: &str, message: &M) -> DynamicMessage {
    let mut dynamic = DynamicMessage::new(descriptor(full_name));
    dynamic
        .merge(message.encode_to_vec().as_slice())
        .expect("a message re-decodes against its own descriptor");
    dynamic
}

/// A message in the protobuf text format, one field per line, nested
/// messages indented, as Python's `print(message)` lays it out. Strings are
/// printed as UTF-8 (Python escapes non-ASCII bytes as octal, which nobody
/// can read); quotes, backslashes and control characters are escaped.
pub fn text<M: Message>(full_name: &str, message: &M) -> String {
    let mut out = String::new();
    write_text(&mut out, &dynamic(full_name, message), 0);
    out
}

fn write_text(out: &mut String, message: &DynamicMessage, indent: usize) {
    use prost_reflect::Value;
    let pad = " ".repeat(indent);
    for (field, value) in message.fields() {
        let values: Vec<&Value> = match value {
            Value::List(list) => list.iter().collect(),
            single => vec![single],
        };
        for value in values {
            match value {
                Value::Message(nested) => {
                    let _ = writeln!(out, "{pad}{} {{", field.name());
                    write_text(out, nested, indent + 2);
                    let _ = writeln!(out, "{pad}}}");
                }
                scalar => {
                    let _ = writeln!(out, "{pad}{}: {}", field.name(), scalar_text(scalar));
                }
            }
        }
    }
}

fn scalar_text(value: &prost_reflect::Value) -> String {
    use prost_reflect::Value;
    match value {
        Value::String(s) => quote(s),
        Value::F32(f) => python_float(*f),
        Value::F64(f) => float_text(*f, format!("{f:?}")),
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::EnumNumber(n) => n.to_string(),
        Value::Bytes(b) => quote(&String::from_utf8_lossy(b)),
        Value::Message(_) | Value::List(_) | Value::Map(_) => unreachable!("handled by write_text"),
    }
}

/// A `float` field as Python protobuf's `text_format` writes it (pinned in
/// tests/interop/requirements.txt; checked against its output by
/// tests/it/text_fixtures.rs): the shortest `%g` from 6 significant digits
/// up that reads back as the same float32 (`ToShortestFloat`), then
/// Python's `repr` of that double: `1000.0`, `0.1`, `1.4013e-45`,
/// `3.4028235e+38`, `inf`, `nan`.
fn python_float(value: f32) -> String {
    if !value.is_finite() {
        return float_text(f64::from(value), format!("{value:?}"));
    }
    let mut digits = 6;
    let rounded = loop {
        let candidate: f64 = format!("{:.*e}", digits - 1, f64::from(value))
            .parse()
            .expect("Rust reads back its own exponent notation");
        if candidate as f32 == value || digits >= 17 {
            break candidate;
        }
        digits += 1;
    };
    python_repr(rounded)
}

/// Python's `repr` of a double: the shortest decimal that reads back (as
/// Rust's `{:?}`, with the same switch to exponents below 1e-4 and from
/// 1e16), the exponent signed and of two digits at least (`1e-05`, `1e+16`).
fn python_repr(value: f64) -> String {
    let debug = format!("{value:?}");
    match debug.split_once('e') {
        Some((mantissa, exponent)) => {
            let exponent: i32 = exponent.parse().expect("an integer exponent");
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.abs())
        }
        None => debug,
    }
}

/// Python prints `1000.0`, `0.5`, `inf`, `nan`; Rust's `{:?}` agrees except for NaN.
fn float_text(value: f64, debug: String) -> String {
    if value.is_nan() { "nan".into() } else { debug }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A message in the proto3 JSON mapping, on one line.
pub fn to_json<M: Message>(full_name: &str, message: &M) -> String {
    serde_json::to_string(&dynamic(full_name, message))
        .expect("a dynamic message always serializes to JSON")
}

/// Parses one message from its proto3 JSON mapping (either field-name style).
pub fn from_json<M: Message + Default>(
    full_name: &str,
    mut json: serde_json::Value,
) -> Result<M, String> {
    let descriptor = descriptor(full_name);
    round_floats(&descriptor, &mut json);
    let dynamic = DynamicMessage::deserialize(descriptor, json)
        .map_err(|e| format!("not a valid {full_name}: {e}"))?;
    dynamic
        .transcode_to()
        .map_err(|e| format!("cannot convert to {full_name}: {e}"))
}

/// Rounds the JSON numbers of `float` fields to f32 before parsing. The
/// shortest decimal of f32::MAX (`3.4028235e38`, which serde_json, Go and
/// Python all write) is just above `f32::MAX as f64`, and prost-reflect's
/// range check rejects it: without this, our own `--json` output of a valid
/// order priced f32::MAX could not be read back. Found by `make fuzz`.
fn round_floats(descriptor: &MessageDescriptor, json: &mut serde_json::Value) {
    let serde_json::Value::Object(fields) = json else {
        return;
    };
    for field in descriptor.fields() {
        for key in [field.json_name(), field.name()] {
            let Some(value) = fields.get_mut(key) else {
                continue;
            };
            let values: Vec<&mut serde_json::Value> = match value {
                serde_json::Value::Array(list) if field.is_list() => list.iter_mut().collect(),
                v => vec![v],
            };
            for v in values {
                match field.kind() {
                    Kind::Float => {
                        if let Some(x) = v.as_f64() {
                            let f = x as f32;
                            if f.is_finite()
                                && let Some(n) = serde_json::Number::from_f64(f64::from(f))
                            {
                                *v = n.into();
                            }
                        }
                    }
                    Kind::Message(m) => round_floats(&m, v),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{CombinedShipment, Order};

    #[test]
    fn json_round_trips_the_extreme_finite_prices() {
        for price in [f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, 0.1, 1000.0] {
            let order = Order {
                id: "1".into(),
                price,
                ..Order::default()
            };
            let json: serde_json::Value =
                serde_json::from_str(&to_json("ecommerce.Order", &order)).unwrap();
            let back: Order = from_json("ecommerce.Order", json).unwrap();
            assert_eq!(back.price.to_bits(), price.to_bits(), "{price}");
        }
        let shipment = CombinedShipment {
            orders_list: vec![Order {
                price: f32::MAX,
                ..Order::default()
            }],
            ..CombinedShipment::default()
        };
        let json: serde_json::Value =
            serde_json::from_str(&to_json("ecommerce.CombinedShipment", &shipment)).unwrap();
        let back: CombinedShipment = from_json("ecommerce.CombinedShipment", json).unwrap();
        assert_eq!(back, shipment);
    }

    #[test]
    fn prices_beyond_f32_are_still_refused() {
        for price in ["3.5e38", "-3.4028236e38", "3.4028235677973366e38"] {
            let json: serde_json::Value =
                serde_json::from_str(&format!("{{\"price\":{price}}}")).unwrap();
            assert!(
                from_json::<Order>("ecommerce.Order", json).is_err(),
                "{price}"
            );
        }
    }

    #[test]
    fn text_prints_the_seed_layout() {
        assert_eq!(
            text("ecommerce.Order", &crate::seed::order_101()),
            "id: \"101\"\nitems: \"Item - A\"\nitems: \"Item - B\"\n\
             description: \"Sample order description.\"\nprice: 1000.0\ndestination: \"Seoul\"\n"
        );
    }
}
