//! What the wire makes of a descriptor, for the rules: which scalar types
//! share an encoding, cardinality and presence, oneofs, JSON names, and
//! reserved number ranges.

use prost_types::descriptor_proto::ReservedRange;
use prost_types::enum_descriptor_proto::EnumReservedRange;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto};

use super::schema::trim_dot;

/// Scalar types that share an encoding; `None` for the ones alone in theirs.
/// From https://protobuf.dev/programming-guides/proto3/#updating, as buf has it.
pub(super) fn wire_group(t: Type) -> Option<u8> {
    match t {
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Bool => Some(1),
        Type::Sint32 | Type::Sint64 => Some(2),
        Type::Fixed32 | Type::Sfixed32 => Some(3),
        Type::Fixed64 | Type::Sfixed64 => Some(4),
        _ => None,
    }
}

/// Numeric and enum types, which proto3 packs when repeated.
pub(super) fn packable(t: Type) -> bool {
    !matches!(t, Type::String | Type::Bytes | Type::Message | Type::Group)
}

pub(super) fn type_desc(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message => format!("message {}", trim_dot(f.type_name())),
        Type::Enum => format!("enum {}", trim_dot(f.type_name())),
        Type::Group => format!("group {}", trim_dot(f.type_name())),
        t => t.as_str_name().trim_start_matches("TYPE_").to_lowercase(),
    }
}

/// Proto3 `optional` keeps singular cardinality: it only adds presence.
pub(super) fn cardinality(f: &FieldDescriptorProto) -> &'static str {
    match f.label() {
        Label::Repeated => "repeated",
        Label::Required => "required",
        Label::Optional => "singular",
    }
}

pub(super) fn presence(f: &FieldDescriptorProto) -> &'static str {
    if f.proto3_optional() {
        "explicit (optional)"
    } else {
        "implicit"
    }
}

/// The real oneof a field belongs to; the synthetic one of proto3 `optional` does not count.
pub(super) fn oneof<'a>(msg: &'a DescriptorProto, f: &FieldDescriptorProto) -> Option<&'a str> {
    if f.proto3_optional() {
        return None;
    }
    let index = usize::try_from(f.oneof_index?).ok()?;
    msg.oneof_decl.get(index).map(|o| o.name())
}

/// The JSON key: `json_name` if the compiler recorded it, else protobuf's lowerCamelCase.
pub(super) fn json_name(f: &FieldDescriptorProto) -> String {
    if let Some(name) = &f.json_name {
        return name.clone();
    }
    let mut out = String::new();
    let mut upper = false;
    for c in f.name().chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

pub(super) fn is_map_entry(msg: &DescriptorProto) -> bool {
    msg.options.as_ref().is_some_and(|o| o.map_entry())
}

/// Reserved ranges as half-open `[start, end)`: messages store them so.
pub(super) fn message_ranges(msg: &DescriptorProto) -> Vec<(i64, i64)> {
    let range = |r: &ReservedRange| (i64::from(r.start()), i64::from(r.end()));
    msg.reserved_range.iter().map(range).collect()
}

/// Reserved ranges as half-open `[start, end)`: enums store them inclusive.
pub(super) fn enum_ranges(e: &EnumDescriptorProto) -> Vec<(i64, i64)> {
    let range = |r: &EnumReservedRange| (i64::from(r.start()), i64::from(r.end()) + 1);
    e.reserved_range.iter().map(range).collect()
}

pub(super) fn in_ranges(number: i32, ranges: &[(i64, i64)]) -> bool {
    ranges
        .iter()
        .any(|&(s, e)| (s..e).contains(&i64::from(number)))
}

/// Whether `[start, end)` is covered by the union of `ranges` (which may have been split).
pub(super) fn covered(start: i64, end: i64, ranges: &[(i64, i64)]) -> bool {
    let mut at = start;
    while at < end {
        match ranges.iter().find(|&&(s, e)| s <= at && at < e) {
            Some(&(_, e)) => at = e,
            None => return false,
        }
    }
    true
}
