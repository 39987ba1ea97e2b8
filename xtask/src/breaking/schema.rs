//! One side of a comparison: a descriptor set indexed by full name, with
//! where each element is declared (file and line, from source info when the
//! set has it), and the helpers that make and split full names.

use std::collections::{BTreeMap, HashMap};

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
};

/// Where an element is declared.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spot<'a> {
    pub file: &'a str,
    pub line: Option<u32>,
}

/// One side of the comparison, indexed by full name (without the leading dot).
#[derive(Default)]
pub(super) struct Schema<'a> {
    /// File name -> (package, where the `package` statement is).
    pub packages: BTreeMap<&'a str, (&'a str, Spot<'a>)>,
    pub messages: BTreeMap<String, &'a DescriptorProto>,
    pub enums: BTreeMap<String, &'a EnumDescriptorProto>,
    pub services: BTreeMap<String, &'a ServiceDescriptorProto>,
    /// Every package, message, field, enum, enum value, service and method.
    pub spots: HashMap<String, Spot<'a>>,
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
    pub fn new(set: &'a FileDescriptorSet) -> Self {
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

pub(super) fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

pub(super) fn trim_dot(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

/// `a.b.c` -> `a.b`, `a`.
pub(super) fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let (parent, _) = rest.rsplit_once('.')?;
        rest = parent;
        Some(parent)
    })
}
