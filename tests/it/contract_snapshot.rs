//! A readable listing of the contract, made from the descriptor set that
//! `cargo xtask codegen` writes and the server embeds. Any change to a call
//! path, a streaming kind or a field's number, type or label shows up here as
//! a snapshot diff in review: `tests/snapshots/contract_snapshot__contract.snap`.

use std::fmt::Write as _;

use crate::support::in_tests_snapshots;
use order_management::pb::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

fn listing() -> String {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let file = set
        .file
        .iter()
        .find(|f| f.name() == "order.proto")
        .expect("order.proto is in the descriptor set");
    let mut out = String::new();
    writeln!(out, "file {} ({})", file.name(), file.syntax()).unwrap();
    writeln!(out, "package {}", file.package()).unwrap();
    for dep in &file.dependency {
        writeln!(out, "import {dep}").unwrap();
    }
    for service in &file.service {
        writeln!(out, "\nservice {}.{}", file.package(), service.name()).unwrap();
        for m in &service.method {
            let stream = |s: bool| if s { "stream " } else { "" };
            writeln!(
                out,
                "  /{}.{}/{}  ({}{}) -> ({}{})",
                file.package(),
                service.name(),
                m.name(),
                stream(m.client_streaming()),
                m.input_type(),
                stream(m.server_streaming()),
                m.output_type()
            )
            .unwrap();
        }
    }
    for message in &file.message_type {
        write_message(&mut out, file.package(), message);
    }
    out
}

fn write_message(out: &mut String, package: &str, message: &DescriptorProto) {
    writeln!(out, "\nmessage {package}.{}", message.name()).unwrap();
    for f in &message.field {
        let label = match f.label() {
            Label::Repeated => "repeated ",
            Label::Required => "required ",
            Label::Optional if f.proto3_optional() => "optional ",
            Label::Optional => "",
        };
        let ty = match f.r#type() {
            Type::Message | Type::Enum => f.type_name().to_owned(),
            other => other
                .as_str_name()
                .trim_start_matches("TYPE_")
                .to_lowercase(),
        };
        writeln!(
            out,
            "  {:>3} {}  {label}{ty}  json={}",
            f.number(),
            f.name(),
            f.json_name()
        )
        .unwrap();
    }
    for r in &message.reserved_range {
        writeln!(out, "  reserved {}..{}", r.start(), r.end() - 1).unwrap();
    }
    for name in &message.reserved_name {
        writeln!(out, "  reserved {name:?}").unwrap();
    }
}

#[test]
fn contract() {
    in_tests_snapshots(|| {
        insta::assert_snapshot!("contract_snapshot__contract", listing());
    });
}
