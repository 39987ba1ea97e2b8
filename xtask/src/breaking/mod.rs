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
//!
//! [`schema`] indexes each descriptor set by full name, with the line of
//! every element; [`rules`] holds the checks, as methods of a
//! [`rules::Comparison`] of the two indexes, and [`encoding`] what the wire
//! makes of a descriptor; [`report`] holds what a check found
//! ([`Finding`]) and prints it as text or JSON ([`Outcome`]).

mod encoding;
mod report;
mod rules;
mod schema;

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use prost::Message;
use prost_types::FileDescriptorSet;

use crate::codegen::{self, DESCRIPTOR_SET_FILE};

pub use report::{Class, Finding, Outcome};
use rules::Comparison;

/// Compares a baseline with a new version of the contract.
pub fn compare(old: &FileDescriptorSet, new: &FileDescriptorSet) -> Vec<Finding> {
    let mut out = Comparison::new(old, new).findings();
    out.sort_by(|a, b| {
        (a.class, &a.file, a.line, &a.element, a.rule, &a.message)
            .cmp(&(b.class, &b.file, b.line, &b.element, b.rule, &b.message))
    });
    out
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
