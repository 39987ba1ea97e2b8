//! The checks: baseline and today's schema side by side, element by
//! element, the way the wire matches them (see the module above for the
//! choices where the wire alone does not decide).

use prost_types::field_descriptor_proto::Type;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
    ServiceDescriptorProto,
};

use super::encoding::{
    cardinality, covered, enum_ranges, in_ranges, is_map_entry, json_name, message_ranges, oneof,
    packable, presence, type_desc, wire_group,
};
use super::report::{Class, Finding};
use super::schema::{Schema, Spot, ancestors, join, trim_dot};

/// A baseline and today's contract, side by side: each rule is a method
/// that walks both and reports what it finds.
pub(super) struct Comparison<'a> {
    old: Schema<'a>,
    new: Schema<'a>,
}

impl<'a> Comparison<'a> {
    pub fn new(old: &'a FileDescriptorSet, new: &'a FileDescriptorSet) -> Self {
        Comparison {
            old: Schema::new(old),
            new: Schema::new(new),
        }
    }

    /// Every finding, in the order the rules produce them (unsorted).
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        self.packages(&mut out);
        self.services(&mut out);
        for (name, msg) in &self.old.messages {
            if self.new.messages.contains_key(name) {
                out.extend(self.messages(name, name, &mut Vec::new()));
            } else if !is_map_entry(msg) && !self.parent_deleted(name) {
                let message = format!(
                    "message {name} deleted or renamed: the binary wire never names it, \
                     but generated code and Any type URLs do"
                );
                out.push(self.finding(Class::Source, "MESSAGE_NO_DELETE", name, name, message));
            }
        }
        for name in self.old.enums.keys() {
            if self.new.enums.contains_key(name) {
                out.extend(self.enums(name, name));
            } else if !self.parent_deleted(name) {
                let message = format!(
                    "enum {name} deleted or renamed: fields using it changed type, \
                     and generated code names it"
                );
                out.push(self.finding(Class::Source, "ENUM_NO_DELETE", name, name, message));
            }
        }
        out
    }
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
                self.method(name, m, new, out);
            }
        }
    }

    /// Baseline method `m` of service `service` against today's service:
    /// still there, streaming the same way, with compatible message types.
    fn method(
        &self,
        service: &str,
        m: &MethodDescriptorProto,
        new: &ServiceDescriptorProto,
        out: &mut Vec<Finding>,
    ) {
        let element = join(service, m.name());
        let Some(n) = new.method.iter().find(|n| n.name() == m.name()) else {
            let message = format!(
                "method {element} deleted or renamed: calls to /{service}/{} \
                 fail with UNIMPLEMENTED",
                m.name()
            );
            out.push(self.finding(Class::Wire, "RPC_NO_DELETE", &element, &element, message));
            return;
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
                out.push(self.finding(Class::Wire, streaming_rule, &element, &element, message));
            }
            if old_type != new_type {
                let (old_type, new_type) = (trim_dot(old_type), trim_dot(new_type));
                let found = self.messages(old_type, new_type, &mut Vec::new());
                let change =
                    format!("method {element} {side} type changed from {old_type} to {new_type}");
                let (class, message) = verdict(change, &found);
                out.push(self.finding(class, type_rule, &element, &element, message));
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
        let pair = Pair {
            old_name,
            new_name,
            old,
            new,
        };
        for f in &old.field {
            match new.field.iter().find(|g| g.number() == f.number()) {
                Some(g) => self.kept_field(&pair, f, g, stack, &mut out),
                None => out.extend(self.missing_field(&pair, f)),
            }
        }
        let members = new.field.iter().map(|f| (f.name(), f.number())).collect();
        let reserved = Reserved {
            rule: "RESERVED_MESSAGE_NO_DELETE",
            kind: ("message", "field"),
            old: (message_ranges(old), &old.reserved_name),
            new: (message_ranges(new), &new.reserved_name),
            members,
        };
        self.reserved(new_name, reserved, &mut out);
        stack.pop();
        out
    }

    /// Baseline field `f`, whose number today's message no longer uses:
    /// fine only if its number (and, unless renumbered, its name) is reserved.
    fn missing_field(&self, pair: &Pair, f: &FieldDescriptorProto) -> Option<Finding> {
        let (old_name, new_name, new) = (pair.old_name, pair.new_name, pair.new);
        let number = f.number();
        let renumbered = new.field.iter().find(|g| g.name() == f.name());
        let mut missing = Vec::new();
        if !in_ranges(number, &message_ranges(new)) {
            missing.push(format!("number {number}"));
        }
        // A renumbered field keeps its name in use: only its number matters.
        if renumbered.is_none() && !new.reserved_name.iter().any(|n| n == f.name()) {
            missing.push(format!("name {:?}", f.name()));
        }
        if missing.is_empty() {
            return None;
        }
        let element = join(old_name, f.name());
        let what = match renumbered {
            Some(g) => format!(
                "renumbered to {} without reserving number {number}",
                g.number()
            ),
            None => format!("deleted without reserving {}", missing.join(" and ")),
        };
        let message = format!("field {element} ({number}) {what}");
        let new_key = join(new_name, f.name());
        Some(self.finding(Class::Wire, "FIELD_NO_DELETE", &element, &new_key, message))
    }

    /// Baseline field `f` and today's field `g` with its number: same name,
    /// JSON name, compatible type, cardinality, presence and oneof.
    fn kept_field(
        &self,
        pair: &Pair,
        f: &FieldDescriptorProto,
        g: &FieldDescriptorProto,
        stack: &mut Vec<(String, String)>,
        out: &mut Vec<Finding>,
    ) {
        let element = join(pair.old_name, f.name());
        let subject = format!("field {element} ({})", f.number());
        let new_key = join(pair.new_name, g.name());
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
        let (was, is) = (oneof(pair.old, f), oneof(pair.new, g));
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

/// A baseline message and today's message compared with it, by name.
struct Pair<'a> {
    old_name: &'a str,
    new_name: &'a str,
    old: &'a DescriptorProto,
    new: &'a DescriptorProto,
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
