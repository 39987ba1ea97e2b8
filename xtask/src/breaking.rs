//! `cargo xtask breaking`: does today's proto/ still speak the wire contract of a baseline?
//!
//! A pure-Rust take on `buf breaking` (category WIRE, plus warnings), over two
//! `FileDescriptorSet`s: the baseline (by default the committed
//! `generated/file_descriptor_set.bin` at a git ref) and proto/ compiled now with
//! protox, source info included so that findings cite `file:line`.
//!
//! Elements are matched the way the wire matches them: messages, enums and
//! services by full name, fields and enum values by number, methods by name.
//! Each finding has a class:
//!
//! - wire-breaking: peers built from the baseline and from today's proto
//!   misread each other or cannot call each other. The command fails.
//! - source-breaking: the binary wire is fine, but JSON or text-format names,
//!   or generated code, change. Reported as a warning.
//!
//! Choices where the wire alone does not decide, following buf's WIRE rules:
//!
//! - Singular <-> repeated is wire-breaking for every type
//!   (FIELD_WIRE_COMPATIBLE_CARDINALITY). For packable scalars it is the worst
//!   case: proto3 packs repeated scalars into one length-delimited record, which
//!   a reader expecting a single varint or fixed value rejects (prost fails the
//!   whole decode) or drops. For string, bytes and messages a singular reader
//!   parses repeated data but keeps only the last value, or merges messages:
//!   silent data loss. Gaining or losing proto3 `optional` (presence) keeps the
//!   encoding and is only source-breaking (FIELD_SAME_CARDINALITY).
//! - string -> bytes is wire-compatible; bytes -> string is not: bytes already
//!   sent need not be UTF-8, and string parsers (prost included) reject them.
//! - Enum <-> integer is wire-breaking, as in buf: enum values have meaning.
//! - A message-typed field, or a method's request or response, whose type is
//!   replaced by a differently named message is compared structurally and
//!   recursively (buf flags any new name): compatible types give a warning.
//! - A deleted field must have both its number and its name reserved (buf's
//!   WIRE asks only the number, WIRE_JSON the name too): a reused name turns
//!   old JSON and text-format data into a different field. An enum value needs
//!   only its number reserved; a missing name reservation is a warning.
//! - Dropping a reservation is wire-breaking even when nothing reuses it yet:
//!   the next change, checked against this one, could not see the reuse.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use prost::Message;
use prost_types::descriptor_proto::ReservedRange;
use prost_types::enum_descriptor_proto::EnumReservedRange;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, ServiceDescriptorProto,
};

use crate::codegen::{self, DESCRIPTOR_SET_FILE};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Binary peers of the two versions misread or cannot call each other: fails.
    Wire,
    /// JSON/text-format names or generated code change: a warning.
    Source,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Wire => "wire-breaking",
            Class::Source => "source-breaking",
        }
    }
}

/// One broken rule, at one proto element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub class: Class,
    /// buf's rule name, e.g. `FIELD_NO_DELETE`.
    pub rule: &'static str,
    /// Full name of the element, e.g. `ecommerce.Order.price`.
    pub element: String,
    pub file: String,
    /// 1-based; from today's proto where the element exists, else from the
    /// baseline, else where today's proto declares its parent.
    pub line: Option<u32>,
    /// The whole sentence, naming the element.
    pub message: String,
}

/// Compares a baseline with a new version of the contract.
pub fn compare(old: &FileDescriptorSet, new: &FileDescriptorSet) -> Vec<Finding> {
    let cx = Cx {
        old: Schema::new(old),
        new: Schema::new(new),
    };
    let mut out = Vec::new();
    cx.packages(&mut out);
    cx.services(&mut out);
    for (name, msg) in &cx.old.messages {
        if cx.new.messages.contains_key(name) {
            out.extend(cx.messages(name, name, &mut Vec::new()));
        } else if !is_map_entry(msg) && !cx.parent_deleted(name) {
            let message = format!(
                "message {name} deleted or renamed: the binary wire never names it, \
                 but generated code and Any type URLs do"
            );
            out.push(cx.finding(Class::Source, "MESSAGE_NO_DELETE", name, name, message));
        }
    }
    for name in cx.old.enums.keys() {
        if cx.new.enums.contains_key(name) {
            out.extend(cx.enums(name, name));
        } else if !cx.parent_deleted(name) {
            let message = format!(
                "enum {name} deleted or renamed: fields using it changed type, \
                 and generated code names it"
            );
            out.push(cx.finding(Class::Source, "ENUM_NO_DELETE", name, name, message));
        }
    }
    out.sort_by(|a, b| {
        (a.class, &a.file, a.line, &a.element, a.rule, &a.message)
            .cmp(&(b.class, &b.file, b.line, &b.element, b.rule, &b.message))
    });
    out
}

/// Where an element is declared.
#[derive(Debug, Clone, Copy)]
struct Spot<'a> {
    file: &'a str,
    line: Option<u32>,
}

/// One side of the comparison, indexed by full name (without the leading dot).
#[derive(Default)]
struct Schema<'a> {
    /// File name -> (package, where the `package` statement is).
    packages: BTreeMap<&'a str, (&'a str, Spot<'a>)>,
    messages: BTreeMap<String, &'a DescriptorProto>,
    enums: BTreeMap<String, &'a EnumDescriptorProto>,
    services: BTreeMap<String, &'a ServiceDescriptorProto>,
    /// Every package, message, field, enum, enum value, service and method.
    spots: HashMap<String, Spot<'a>>,
}

/// Source-info paths -> 1-based line, for one file.
type Lines = HashMap<Vec<i32>, u32>;

// Field numbers in descriptor.proto, which make up source-info paths.
const FILE_PACKAGE: i32 = 2;
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

impl<'a> Schema<'a> {
    fn new(set: &'a FileDescriptorSet) -> Self {
        let mut schema = Schema::default();
        for file in &set.file {
            let mut lines = Lines::new();
            for loc in file.source_code_info.iter().flat_map(|info| &info.location) {
                if let Some(&line) = loc.span.first() {
                    lines.entry(loc.path.clone()).or_insert(line as u32 + 1);
                }
            }
            schema.add_file(file, &lines);
        }
        schema
    }

    fn add_file(&mut self, file: &'a FileDescriptorProto, lines: &Lines) {
        let (name, package) = (file.name(), file.package());
        let spot = |path: &[i32]| Spot {
            file: name,
            line: lines.get(path).copied(),
        };
        self.packages.insert(name, (package, spot(&[FILE_PACKAGE])));
        if !package.is_empty() {
            self.spots.insert(package.to_owned(), spot(&[FILE_PACKAGE]));
        }
        for (i, msg) in file.message_type.iter().enumerate() {
            self.add_message(name, lines, package, msg, vec![FILE_MESSAGE, i as i32]);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            self.add_enum(name, lines, package, e, vec![FILE_ENUM, i as i32]);
        }
        for (i, svc) in file.service.iter().enumerate() {
            let full = join(package, svc.name());
            let path = vec![FILE_SERVICE, i as i32];
            for (j, method) in svc.method.iter().enumerate() {
                let at = [&path[..], &[SERVICE_METHOD, j as i32]].concat();
                self.spot(&join(&full, method.name()), name, lines, &at);
            }
            self.spot(&full, name, lines, &path);
            self.services.insert(full, svc);
        }
    }

    fn add_message(
        &mut self,
        file: &'a str,
        lines: &Lines,
        scope: &str,
        msg: &'a DescriptorProto,
        path: Vec<i32>,
    ) {
        let full = join(scope, msg.name());
        for (j, field) in msg.field.iter().enumerate() {
            let at = [&path[..], &[MESSAGE_FIELD, j as i32]].concat();
            self.spot(&join(&full, field.name()), file, lines, &at);
        }
        for (j, nested) in msg.nested_type.iter().enumerate() {
            let at = [&path[..], &[MESSAGE_NESTED, j as i32]].concat();
            self.add_message(file, lines, &full, nested, at);
        }
        for (j, e) in msg.enum_type.iter().enumerate() {
            let at = [&path[..], &[MESSAGE_ENUM, j as i32]].concat();
            self.add_enum(file, lines, &full, e, at);
        }
        self.spot(&full, file, lines, &path);
        self.messages.insert(full, msg);
    }

    fn add_enum(
        &mut self,
        file: &'a str,
        lines: &Lines,
        scope: &str,
        e: &'a EnumDescriptorProto,
        path: Vec<i32>,
    ) {
        // Values are really siblings of their enum in protobuf's scoping, but
        // `Enum.VALUE` says more in a report and is just as unique.
        let full = join(scope, e.name());
        for (j, value) in e.value.iter().enumerate() {
            let at = [&path[..], &[ENUM_VALUE, j as i32]].concat();
            self.spot(&join(&full, value.name()), file, lines, &at);
        }
        self.spot(&full, file, lines, &path);
        self.enums.insert(full, e);
    }

    fn spot(&mut self, full: &str, file: &'a str, lines: &Lines, path: &[i32]) {
        let line = lines.get(path).copied();
        self.spots.insert(full.to_owned(), Spot { file, line });
    }
}

/// Both sides, and the rules.
struct Cx<'a> {
    old: Schema<'a>,
    new: Schema<'a>,
}

impl Cx<'_> {
    /// A finding about `element` (its baseline name), located at `new_key` in
    /// today's proto if that exists, else in the baseline, else at the nearest
    /// parent today's proto still declares (where a `reserved` line would go).
    fn finding(
        &self,
        class: Class,
        rule: &'static str,
        element: &str,
        new_key: &str,
        message: String,
    ) -> Finding {
        let found: Vec<Spot> = [self.new.spots.get(new_key), self.old.spots.get(element)]
            .into_iter()
            .chain(ancestors(new_key).map(|a| self.new.spots.get(a)))
            .flatten()
            .copied()
            .collect();
        let spot = found.iter().find(|s| s.line.is_some()).or(found.first());
        Finding {
            class,
            rule,
            element: element.to_owned(),
            file: spot.map_or_else(String::new, |s| s.file.to_owned()),
            line: spot.and_then(|s| s.line),
            message,
        }
    }

    /// Whether a message or enum that disappeared sits inside a message that
    /// disappeared too, which is reported instead.
    fn parent_deleted(&self, name: &str) -> bool {
        ancestors(name)
            .any(|a| self.old.messages.contains_key(a) && !self.new.messages.contains_key(a))
    }

    /// The package is the first part of every call path and type name.
    fn packages(&self, out: &mut Vec<Finding>) {
        for (file, (old, _)) in &self.old.packages {
            if let Some((new, spot)) = self.new.packages.get(file)
                && old != new
            {
                out.push(Finding {
                    class: Class::Wire,
                    rule: "FILE_SAME_PACKAGE",
                    element: file.to_string(),
                    file: file.to_string(),
                    line: spot.line,
                    message: format!(
                        "file {file} changed package from {old:?} to {new:?}: \
                         the call path and full name of everything in it change"
                    ),
                });
            }
        }
    }

    /// Services and methods are called by name: `/package.Service/Method`.
    fn services(&self, out: &mut Vec<Finding>) {
        for (name, old) in &self.old.services {
            let Some(new) = self.new.services.get(name) else {
                let message = format!(
                    "service {name} deleted or renamed: calls to /{name}/* \
                     fail with UNIMPLEMENTED"
                );
                out.push(self.finding(Class::Wire, "SERVICE_NO_DELETE", name, name, message));
                continue;
            };
            for m in &old.method {
                let element = join(name, m.name());
                let Some(n) = new.method.iter().find(|n| n.name() == m.name()) else {
                    let message = format!(
                        "method {element} deleted or renamed: calls to /{name}/{} \
                         fail with UNIMPLEMENTED",
                        m.name()
                    );
                    out.push(self.finding(
                        Class::Wire,
                        "RPC_NO_DELETE",
                        &element,
                        &element,
                        message,
                    ));
                    continue;
                };
                let kind = |streaming| if streaming { "a stream" } else { "one message" };
                let request = (
                    m.client_streaming(),
                    n.client_streaming(),
                    m.input_type(),
                    n.input_type(),
                );
                let response = (
                    m.server_streaming(),
                    n.server_streaming(),
                    m.output_type(),
                    n.output_type(),
                );
                for (side, (was, is, old_type, new_type), [streaming_rule, type_rule]) in [
                    (
                        "request",
                        request,
                        ["RPC_SAME_CLIENT_STREAMING", "RPC_SAME_REQUEST_TYPE"],
                    ),
                    (
                        "response",
                        response,
                        ["RPC_SAME_SERVER_STREAMING", "RPC_SAME_RESPONSE_TYPE"],
                    ),
                ] {
                    if was != is {
                        let message = format!(
                            "method {element} {side} changed from {} to {}",
                            kind(was),
                            kind(is)
                        );
                        out.push(self.finding(
                            Class::Wire,
                            streaming_rule,
                            &element,
                            &element,
                            message,
                        ));
                    }
                    if old_type != new_type {
                        let (old_type, new_type) = (trim_dot(old_type), trim_dot(new_type));
                        let found = self.messages(old_type, new_type, &mut Vec::new());
                        let change = format!(
                            "method {element} {side} type changed from {old_type} to {new_type}"
                        );
                        let (class, message) = verdict(change, &found);
                        out.push(self.finding(class, type_rule, &element, &element, message));
                    }
                }
            }
        }
    }

    /// The fields and reservations of baseline message `old_name` against
    /// today's `new_name`: the same message, or one that replaced it as a
    /// field's or method's type. `stack` holds the pairs being compared, so
    /// that recursive types terminate.
    fn messages(
        &self,
        old_name: &str,
        new_name: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Vec<Finding> {
        let (Some(old), Some(new)) = (
            self.old.messages.get(old_name),
            self.new.messages.get(new_name),
        ) else {
            return Vec::new();
        };
        let pair = (old_name.to_owned(), new_name.to_owned());
        if stack.contains(&pair) {
            // A cycle: whatever differs is reported where the cycle was entered.
            return Vec::new();
        }
        stack.push(pair);
        let mut out = Vec::new();
        let new_ranges = message_ranges(new);
        for f in &old.field {
            let element = join(old_name, f.name());
            let number = f.number();
            let subject = format!("field {element} ({number})");
            let Some(g) = new.field.iter().find(|g| g.number() == number) else {
                let renumbered = new.field.iter().find(|g| g.name() == f.name());
                let mut missing = Vec::new();
                if !in_ranges(number, &new_ranges) {
                    missing.push(format!("number {number}"));
                }
                // A renumbered field keeps its name in use: only its number matters.
                if renumbered.is_none() && !new.reserved_name.iter().any(|n| n == f.name()) {
                    missing.push(format!("name {:?}", f.name()));
                }
                if !missing.is_empty() {
                    let what = match renumbered {
                        Some(g) => format!(
                            "renumbered to {} without reserving number {number}",
                            g.number()
                        ),
                        None => format!("deleted without reserving {}", missing.join(" and ")),
                    };
                    let message = format!("{subject} {what}");
                    let new_key = join(new_name, f.name());
                    out.push(self.finding(
                        Class::Wire,
                        "FIELD_NO_DELETE",
                        &element,
                        &new_key,
                        message,
                    ));
                }
                continue;
            };
            let new_key = join(new_name, g.name());
            let mut push = |class, rule, what: String| {
                let message = format!("{subject} {what}");
                out.push(self.finding(class, rule, &element, &new_key, message));
            };
            if f.name() != g.name() {
                push(
                    Class::Source,
                    "FIELD_SAME_NAME",
                    format!("renamed to {:?}", g.name()),
                );
            }
            if json_name(f) != json_name(g) {
                let what = format!(
                    "changed JSON name from {:?} to {:?}",
                    json_name(f),
                    json_name(g)
                );
                push(Class::Source, "FIELD_SAME_JSON_NAME", what);
            }
            if let Some((class, rule, what)) = self.field_type(f, g, stack) {
                push(class, rule, what);
            }
            let (was, is) = (cardinality(f), cardinality(g));
            if was != is {
                let why = if packable(f.r#type()) {
                    "repeated scalars are packed, which singular readers reject or drop"
                } else {
                    "singular readers keep only the last value, or merge messages"
                };
                let what = format!("changed from {was} to {is}: {why}");
                push(Class::Wire, "FIELD_WIRE_COMPATIBLE_CARDINALITY", what);
            } else if f.proto3_optional() != g.proto3_optional() {
                let what = format!(
                    "changed presence from {} to {}: same encoding, different generated code",
                    presence(f),
                    presence(g)
                );
                push(Class::Source, "FIELD_SAME_CARDINALITY", what);
            }
            let (was, is) = (oneof(old, f), oneof(new, g));
            if was != is {
                let describe =
                    |o: Option<&str>| o.map_or("no oneof".to_owned(), |o| format!("oneof {o}"));
                let what = format!(
                    "moved from {} to {}: setting one member of a oneof clears the others",
                    describe(was),
                    describe(is)
                );
                push(Class::Wire, "FIELD_SAME_ONEOF", what);
            }
        }
        let members = new.field.iter().map(|f| (f.name(), f.number())).collect();
        let reserved = Reserved {
            rule: "RESERVED_MESSAGE_NO_DELETE",
            kind: ("message", "field"),
            old: (message_ranges(old), &old.reserved_name),
            new: (new_ranges, &new.reserved_name),
            members,
        };
        self.reserved(new_name, reserved, &mut out);
        stack.pop();
        out
    }

    /// The type change of a field kept by number, if any: its class, rule and what changed.
    fn field_type(
        &self,
        f: &FieldDescriptorProto,
        g: &FieldDescriptorProto,
        stack: &mut Vec<(String, String)>,
    ) -> Option<(Class, &'static str, String)> {
        let (a, b) = (f.r#type(), g.r#type());
        if a == b && f.type_name() == g.type_name() {
            return None;
        }
        let change = format!("changed type from {} to {}", type_desc(f), type_desc(g));
        let (class, message) = match (a, b) {
            (Type::Message, Type::Message) | (Type::Group, Type::Group) => {
                let found = self.messages(trim_dot(f.type_name()), trim_dot(g.type_name()), stack);
                verdict(change, &found)
            }
            (Type::Enum, Type::Enum) => verdict(
                change,
                &self.enums(trim_dot(f.type_name()), trim_dot(g.type_name())),
            ),
            (Type::String, Type::Bytes) => (
                Class::Source,
                format!("{change}: same encoding, JSON becomes base64"),
            ),
            (Type::Bytes, Type::String) => (
                Class::Wire,
                format!(
                    "{change}: bytes already sent need not be UTF-8, which string parsers reject"
                ),
            ),
            _ if wire_group(a).is_some() && wire_group(a) == wire_group(b) => (
                Class::Source,
                format!("{change}: same encoding, different generated code and JSON"),
            ),
            _ => (Class::Wire, change),
        };
        let rule = match class {
            Class::Wire => "FIELD_WIRE_COMPATIBLE_TYPE",
            Class::Source => "FIELD_SAME_TYPE",
        };
        Some((class, rule, message))
    }

    /// The values and reservations of baseline enum `old_name` against today's `new_name`.
    fn enums(&self, old_name: &str, new_name: &str) -> Vec<Finding> {
        let (Some(old), Some(new)) = (self.old.enums.get(old_name), self.new.enums.get(new_name))
        else {
            return Vec::new();
        };
        let new_ranges = enum_ranges(new);
        let mut out = Vec::new();
        for v in &old.value {
            let element = join(old_name, v.name());
            let number = v.number();
            let subject = format!("enum value {element} ({number})");
            let same_number: Vec<_> = new.value.iter().filter(|w| w.number() == number).collect();
            if let Some(w) = same_number.first() {
                // With `allow_alias` a number has several names; keeping any one is enough.
                if !same_number.iter().any(|w| w.name() == v.name()) {
                    let message = format!("{subject} renamed to {:?}", w.name());
                    let new_key = join(new_name, w.name());
                    out.push(self.finding(
                        Class::Source,
                        "ENUM_VALUE_SAME_NAME",
                        &element,
                        &new_key,
                        message,
                    ));
                }
                continue;
            }
            let renumbered = new.value.iter().find(|w| w.name() == v.name());
            let new_key = join(new_name, v.name());
            if !in_ranges(number, &new_ranges) {
                let what = match renumbered {
                    Some(w) => format!(
                        "renumbered to {} without reserving number {number}",
                        w.number()
                    ),
                    None => format!("deleted without reserving number {number}"),
                };
                let message = format!("{subject} {what}");
                out.push(self.finding(
                    Class::Wire,
                    "ENUM_VALUE_NO_DELETE",
                    &element,
                    &new_key,
                    message,
                ));
            } else if renumbered.is_none() && !new.reserved_name.iter().any(|n| n == v.name()) {
                let message = format!(
                    "{subject} deleted without reserving name {:?}: JSON and text format still carry names",
                    v.name()
                );
                out.push(self.finding(
                    Class::Source,
                    "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
                    &element,
                    &new_key,
                    message,
                ));
            }
        }
        let members = new.value.iter().map(|v| (v.name(), v.number())).collect();
        let reserved = Reserved {
            rule: "RESERVED_ENUM_NO_DELETE",
            kind: ("enum", "enum value"),
            old: (enum_ranges(old), &old.reserved_name),
            new: (new_ranges, &new.reserved_name),
            members,
        };
        self.reserved(new_name, reserved, &mut out);
        out
    }

    /// Every baseline reservation must still hold: a dropped one is reused
    /// now, or could be by the next change without this check seeing it.
    fn reserved(&self, new_name: &str, r: Reserved, out: &mut Vec<Finding>) {
        let (kind, member_kind) = r.kind;
        let mut push = |what: String, user: Option<&(&str, i32)>| {
            let mut message = format!("{kind} {new_name} no longer reserves {what}");
            let element = match user {
                Some((name, number)) => {
                    let element = join(new_name, name);
                    message += &format!(": {member_kind} {element} ({number}) reuses it");
                    element
                }
                None => new_name.to_owned(),
            };
            out.push(self.finding(Class::Wire, r.rule, &element, &element, message));
        };
        for &(start, end) in &r.old.0 {
            if !covered(start, end, &r.new.0) {
                let what = match end - start {
                    1 => format!("number {start}"),
                    _ => format!("numbers {start} to {}", end - 1),
                };
                let user = r
                    .members
                    .iter()
                    .find(|(_, n)| (start..end).contains(&i64::from(*n)));
                push(what, user);
            }
        }
        for name in r.old.1 {
            if !r.new.1.contains(name) {
                let user = r.members.iter().find(|(n, _)| n == name);
                push(format!("name {name:?}"), user);
            }
        }
    }
}

/// The reservations of one message or enum on both sides.
struct Reserved<'a> {
    rule: &'static str,
    /// What the owner and its members are called: ("message", "field").
    kind: (&'static str, &'static str),
    /// Half-open number ranges and names.
    old: (Vec<(i64, i64)>, &'a Vec<String>),
    new: (Vec<(i64, i64)>, &'a Vec<String>),
    /// Today's members, by name and number.
    members: Vec<(&'a str, i32)>,
}

/// A replaced type's class and message: wire-breaking if comparing the two
/// types found anything wire-breaking, quoting what.
fn verdict(change: String, found: &[Finding]) -> (Class, String) {
    let reasons: Vec<&str> = found
        .iter()
        .filter(|f| f.class == Class::Wire)
        .map(|f| f.message.as_str())
        .collect();
    if reasons.is_empty() {
        (
            Class::Source,
            format!("{change}: wire-compatible, same field numbers and encodings"),
        )
    } else {
        (
            Class::Wire,
            format!(
                "{change}, which is not wire-compatible: {}",
                reasons.join("; ")
            ),
        )
    }
}

/// Scalar types that share an encoding; `None` for the ones alone in theirs.
/// From https://protobuf.dev/programming-guides/proto3/#updating, as buf has it.
fn wire_group(t: Type) -> Option<u8> {
    match t {
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Bool => Some(1),
        Type::Sint32 | Type::Sint64 => Some(2),
        Type::Fixed32 | Type::Sfixed32 => Some(3),
        Type::Fixed64 | Type::Sfixed64 => Some(4),
        _ => None,
    }
}

/// Numeric and enum types, which proto3 packs when repeated.
fn packable(t: Type) -> bool {
    !matches!(t, Type::String | Type::Bytes | Type::Message | Type::Group)
}

fn type_desc(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message => format!("message {}", trim_dot(f.type_name())),
        Type::Enum => format!("enum {}", trim_dot(f.type_name())),
        Type::Group => format!("group {}", trim_dot(f.type_name())),
        t => t.as_str_name().trim_start_matches("TYPE_").to_lowercase(),
    }
}

/// Proto3 `optional` keeps singular cardinality: it only adds presence.
fn cardinality(f: &FieldDescriptorProto) -> &'static str {
    match f.label() {
        Label::Repeated => "repeated",
        Label::Required => "required",
        Label::Optional => "singular",
    }
}

fn presence(f: &FieldDescriptorProto) -> &'static str {
    if f.proto3_optional() {
        "explicit (optional)"
    } else {
        "implicit"
    }
}

/// The real oneof a field belongs to; the synthetic one of proto3 `optional` does not count.
fn oneof<'a>(msg: &'a DescriptorProto, f: &FieldDescriptorProto) -> Option<&'a str> {
    if f.proto3_optional() {
        return None;
    }
    let index = usize::try_from(f.oneof_index?).ok()?;
    msg.oneof_decl.get(index).map(|o| o.name())
}

/// The JSON key: `json_name` if the compiler recorded it, else protobuf's lowerCamelCase.
fn json_name(f: &FieldDescriptorProto) -> String {
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

fn is_map_entry(msg: &DescriptorProto) -> bool {
    msg.options.as_ref().is_some_and(|o| o.map_entry())
}

/// Reserved ranges as half-open `[start, end)`: messages store them so.
fn message_ranges(msg: &DescriptorProto) -> Vec<(i64, i64)> {
    let range = |r: &ReservedRange| (i64::from(r.start()), i64::from(r.end()));
    msg.reserved_range.iter().map(range).collect()
}

/// Reserved ranges as half-open `[start, end)`: enums store them inclusive.
fn enum_ranges(e: &EnumDescriptorProto) -> Vec<(i64, i64)> {
    let range = |r: &EnumReservedRange| (i64::from(r.start()), i64::from(r.end()) + 1);
    e.reserved_range.iter().map(range).collect()
}

fn in_ranges(number: i32, ranges: &[(i64, i64)]) -> bool {
    ranges
        .iter()
        .any(|&(s, e)| (s..e).contains(&i64::from(number)))
}

/// Whether `[start, end)` is covered by the union of `ranges` (which may have been split).
fn covered(start: i64, end: i64, ranges: &[(i64, i64)]) -> bool {
    let mut at = start;
    while at < end {
        match ranges.iter().find(|&&(s, e)| s <= at && at < e) {
            Some(&(_, e)) => at = e,
            None => return false,
        }
    }
    true
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn trim_dot(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

/// `a.b.c` -> `a.b`, `a`.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let (parent, _) = rest.rsplit_once('.')?;
        rest = parent;
        Some(parent)
    })
}

/// The result of one check, ready to print.
#[derive(Debug)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// What the baseline was, as given: a git ref or a file.
    pub against: String,
    /// The reason of a `Breaking-Change:` line that accepted wire-breaking findings.
    pub allowed_by: Option<String>,
}

impl Outcome {
    fn count(&self, class: Class) -> usize {
        self.findings.iter().filter(|f| f.class == class).count()
    }

    /// Whether the command must exit non-zero.
    pub fn failed(&self) -> bool {
        self.count(Class::Wire) > 0 && self.allowed_by.is_none()
    }

    /// One line per finding, then a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let at = match f.line {
                Some(line) => format!("{}:{line}", f.file),
                None => f.file.clone(),
            };
            let (class, rule, message) = (f.class.as_str(), f.rule, &f.message);
            out.push_str(&format!("{at}: {class} [{rule}] {message}\n"));
        }
        let counts = format!(
            "{} and {} against {}",
            plural(self.count(Class::Wire), "wire-breaking change"),
            plural(self.count(Class::Source), "source-breaking warning"),
            self.against
        );
        let summary = match (&self.allowed_by, self.failed()) {
            (_, true) => format!("FAILED: {counts}"),
            (Some(reason), false) if self.count(Class::Wire) > 0 => {
                format!(
                    "allowed: {counts}, accepted by \"Breaking-Change: {reason}\" in HEAD's commit message"
                )
            }
            _ => format!("ok: {counts}"),
        };
        out + &summary + "\n"
    }

    /// A JSON object for tools: counts, the verdict and every finding.
    pub fn json(&self) -> String {
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "class": f.class.as_str(),
                    "rule": f.rule,
                    "element": f.element,
                    "file": f.file,
                    "line": f.line,
                    "message": f.message,
                })
            })
            .collect();
        let report = serde_json::json!({
            "against": self.against,
            "failed": self.failed(),
            "allowed_by": self.allowed_by,
            "wire_breaking": self.count(Class::Wire),
            "source_breaking": self.count(Class::Source),
            "findings": findings,
        });
        serde_json::to_string_pretty(&report).expect("a JSON value always serializes") + "\n"
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Checks `root`'s proto/ against `against`; with `honour_commit_message`, a
/// `Breaking-Change: <reason>` line in HEAD's commit message accepts
/// wire-breaking findings (they are still reported).
pub fn run(root: &Path, against: &str, honour_commit_message: bool) -> Result<Outcome> {
    let baseline = load_baseline(root, against)?;
    let current = codegen::compile(&root.join("proto"))?;
    let findings = compare(&baseline, &current);
    let mut allowed_by = None;
    if honour_commit_message && findings.iter().any(|f| f.class == Class::Wire) {
        let message = git(root, &["log", "-1", "--format=%B", "HEAD"])
            .context("cannot read HEAD's commit message")?;
        let message = String::from_utf8_lossy(&message);
        allowed_by = breaking_change_reason(&message).map(str::to_owned);
    }
    Ok(Outcome {
        findings,
        against: against.to_owned(),
        allowed_by,
    })
}

/// The baseline descriptor set: the file at `against` if there is one, else
/// the committed `generated/file_descriptor_set.bin` at git ref `against`.
pub fn load_baseline(root: &Path, against: &str) -> Result<FileDescriptorSet> {
    let bytes = if Path::new(against).is_file() {
        fs::read(against).with_context(|| format!("cannot read {against}"))?
    } else {
        if against.starts_with('-') {
            bail!("{against:?} is neither a file nor a git ref");
        }
        // `./` makes the path relative to `root`, wherever the repository starts.
        let spec = format!("{against}:./generated/{DESCRIPTOR_SET_FILE}");
        git(root, &["show", &spec]).with_context(|| {
            format!("{against:?} is not a file, nor a git ref with generated/{DESCRIPTOR_SET_FILE}")
        })?
    };
    FileDescriptorSet::decode(bytes.as_slice())
        .with_context(|| format!("the baseline from {against} is not an encoded FileDescriptorSet"))
}

/// Runs git in `root` and returns its standard output.
fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The reason of the first `Breaking-Change: <reason>` line (key
/// case-insensitive, as git trailers are; an empty reason does not count).
pub fn breaking_change_reason(commit_message: &str) -> Option<&str> {
    commit_message.lines().find_map(|line| {
        let (key, reason) = line.split_once(':')?;
        let reason = reason.trim();
        (key.eq_ignore_ascii_case("Breaking-Change") && !reason.is_empty()).then_some(reason)
    })
}
