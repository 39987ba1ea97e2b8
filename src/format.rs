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
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

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
        Value::F32(f) => float_text(f64::from(*f), format!("{f:?}")),
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
    json: serde_json::Value,
) -> Result<M, String> {
    let dynamic = DynamicMessage::deserialize(descriptor(full_name), json)
        .map_err(|e| format!("not a valid {full_name}: {e}"))?;
    dynamic
        .transcode_to()
        .map_err(|e| format!("cannot convert to {full_name}: {e}"))
}
