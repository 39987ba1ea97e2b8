//! `cargo xtask breaking`: a table of edits to proto/order.proto, each compared
//! with the text it started from (both compiled with protox), with the
//! expected verdict and the report as a snapshot; then the command itself,
//! against git's HEAD and against a descriptor-set file.

use std::fs;
use std::process::Command;

use prost::Message;
use prost_types::FileDescriptorSet;
use xtask::breaking::{self, Class, Finding, Outcome};
use xtask::{codegen, project_root};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing wire-breaking: the command exits 0 (warnings allowed).
    Passes,
    /// At least one wire-breaking finding: the command exits 1.
    Fails,
}
use Expect::{Fails, Passes};

fn order_proto() -> String {
    fs::read_to_string(project_root().join("proto/order.proto")).unwrap()
}

/// Compiles `text` as proto/order.proto, the way `cargo xtask breaking` compiles proto/.
fn compile(text: &str) -> FileDescriptorSet {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("order.proto"), text).unwrap();
    codegen::compile(dir.path()).unwrap()
}

/// Replaces every `from` in `text`, which must contain it.
fn sub(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the proto");
    text.replace(from, to)
}

/// The contract as it is.
fn order(p: String) -> String {
    p
}

/// The contract plus what it lacks for the enum, reservation and recursion
/// cases: an enum and a field of it, reserved numbers and names in a message
/// and in the enum, and a recursive message used by a method.
fn extended(p: String) -> String {
    let p = sub(
        &p,
        "    string destination = 5;\n",
        "    string destination = 5;\n    OrderStatus status = 6;\n    reserved 7, 9 to 11;\n    reserved \"legacy\";\n",
    );
    let p = sub(
        &p,
        "    rpc processOrders",
        "    rpc walk (Node) returns (stream Node);\n    rpc processOrders",
    );
    p + "
enum OrderStatus {
    ORDER_STATUS_UNSPECIFIED = 0;
    ORDER_STATUS_PENDING = 1;
    ORDER_STATUS_SHIPPED = 2;
    reserved 3;
    reserved \"ORDER_STATUS_LOST\";
}

message Node {
    string label = 1;
    repeated Node children = 2;
}
"
}

/// A copy of Order under another name.
const NEW_ORDER: &str = "
message NewOrder {
    string id = 1;
    repeated string items = 2;
    string description = 3;
    float price = 4;
    string destination = 5;
}
";

/// Compares `base` (applied to proto/order.proto) with `edit` applied to it;
/// checks the verdict and returns the report.
fn case(base: fn(String) -> String, expect: Expect, edit: impl FnOnce(&str) -> String) -> String {
    let before = base(order_proto());
    let after = edit(&before);
    assert_ne!(before, after, "the edit must change the proto");
    let outcome = Outcome {
        findings: breaking::compare(&compile(&before), &compile(&after)),
        against: "the baseline".into(),
        allowed_by: None,
    };
    let report = outcome.text();
    assert_eq!(outcome.failed(), expect == Fails, "\n{report}");
    report
}

/// One test per row: `name: base, expectation, edit;`, the report snapshot
/// named after the row.
macro_rules! cases {
    ($($name:ident: $base:expr, $expect:expr, $edit:expr;)*) => {$(
        #[test]
        fn $name() {
            let report = case($base, $expect, $edit);
            insta::assert_snapshot!(report);
        }
    )*};
}

cases! {
    // Compatible changes: nothing to report, or warnings only.
    comment_edited: order, Passes,
        |p| sub(p, "// Orders of one batch", "// The orders of one batch");
    field_added: order, Passes,
        |p| sub(p, "    string destination = 5;\n", "    string destination = 5;\n    string note = 6;\n");
    method_added: order, Passes, |p| sub(
        p,
        "    rpc processOrders",
        "    rpc cancelOrder (google.protobuf.StringValue) returns (google.protobuf.StringValue);\n    rpc processOrders",
    );
    message_added: order, Passes,
        |p| format!("{p}\nmessage Refund {{\n    string order_id = 1;\n    float amount = 2;\n}}\n");
    enum_value_added: extended, Passes, |p| sub(
        p,
        "    ORDER_STATUS_SHIPPED = 2;\n",
        "    ORDER_STATUS_SHIPPED = 2;\n    ORDER_STATUS_CANCELLED = 4;\n",
    );
    removed_field_reserved: order, Passes,
        |p| sub(p, "    float price = 4;\n", "    reserved 4;\n    reserved \"price\";\n");
    reservation_split: extended, Passes,
        |p| sub(p, "    reserved 7, 9 to 11;\n", "    reserved 7, 9;\n    reserved 10 to 11;\n");
    field_renamed: order, Passes, |p| sub(p, "string destination = 5;", "string address = 5;");
    json_name_changed: order, Passes,
        |p| sub(p, "string destination = 5;", "string destination = 5 [json_name = \"dest\"];");
    presence_added: order, Passes,
        |p| sub(p, "string destination = 5;", "optional string destination = 5;");
    string_to_bytes: order, Passes, |p| sub(p, "string description = 3;", "bytes description = 3;");
    int32_to_int64: |p| sub(&p, "    float price = 4;\n", "    float price = 4;\n    int32 quantity = 6;\n"),
        Passes, |p| sub(p, "int32 quantity", "int64 quantity");
    enum_value_renamed: extended, Passes,
        |p| sub(p, "ORDER_STATUS_SHIPPED = 2;", "ORDER_STATUS_SENT = 2;");
    enum_value_deleted_number_reserved: extended, Passes,
        |p| sub(p, "    ORDER_STATUS_SHIPPED = 2;\n", "    reserved 2;\n");
    enum_renamed: extended, Passes,
        |p| sub(&sub(p, "enum OrderStatus {", "enum Status {"), "OrderStatus status", "Status status");
    unused_message_deleted: |p| p + "\nmessage Draft {\n    string id = 1;\n}\n", Passes,
        |p| sub(p, "\nmessage Draft {\n    string id = 1;\n}\n", "");
    request_type_identical_copy: order, Passes,
        |p| sub(p, "rpc addOrder (Order)", "rpc addOrder (NewOrder)") + NEW_ORDER;
    message_renamed: order, Passes, |p| {
        let p = sub(p, "message Order {", "message Purchase {");
        let p = sub(&p, "(Order)", "(Purchase)");
        let p = sub(&p, "(stream Order)", "(stream Purchase)");
        sub(&p, "repeated Order ordersList", "repeated Purchase ordersList")
    };
    recursive_message_renamed: extended, Passes, |p| {
        let p = sub(p, "message Node {", "message Tree {");
        let p = sub(&p, "repeated Node children", "repeated Tree children");
        sub(&p, "rpc walk (Node) returns (stream Node)", "rpc walk (Tree) returns (stream Tree)")
    };

    // Wire-breaking changes.
    field_deleted: order, Fails, |p| sub(p, "    float price = 4;\n", "");
    field_deleted_name_not_reserved: order, Fails,
        |p| sub(p, "    float price = 4;\n", "    reserved 4;\n");
    field_renumbered: order, Fails, |p| sub(p, "float price = 4;", "float price = 6;");
    field_type_changed: order, Fails, |p| sub(p, "float price = 4;", "double price = 4;");
    bytes_to_string: |p| sub(&p, "string description = 3;", "bytes description = 3;"), Fails,
        |p| sub(p, "bytes description = 3;", "string description = 3;");
    enum_field_to_int32: extended, Fails, |p| sub(p, "OrderStatus status = 6;", "int32 status = 6;");
    field_message_type_incompatible: order, Fails, |p| sub(
        p,
        "repeated Order ordersList = 3;",
        "repeated google.protobuf.StringValue ordersList = 3;",
    );
    singular_to_repeated_string: order, Fails,
        |p| sub(p, "string description = 3;", "repeated string description = 3;");
    singular_to_repeated_packable: order, Fails,
        |p| sub(p, "float price = 4;", "repeated float price = 4;");
    repeated_to_singular_message: order, Fails,
        |p| sub(p, "repeated Order ordersList = 3;", "Order ordersList = 3;");
    moved_into_oneof: order, Fails, |p| sub(
        p,
        "    string destination = 5;\n",
        "    oneof target {\n        string destination = 5;\n    }\n",
    );
    enum_value_deleted: extended, Fails, |p| sub(p, "    ORDER_STATUS_SHIPPED = 2;\n", "");
    enum_value_renumbered: extended, Fails,
        |p| sub(p, "ORDER_STATUS_SHIPPED = 2;", "ORDER_STATUS_SHIPPED = 4;");
    service_renamed: order, Fails, |p| sub(p, "service OrderManagement {", "service Orders {");
    method_deleted: order, Fails, |p| sub(
        p,
        "    rpc getOrder (google.protobuf.StringValue) returns (Order) {\n        \
         option (google.api.http) = { get: \"/v1/orders/{value}\" };\n    }\n",
        "",
    );
    method_renamed: order, Fails, |p| sub(p, "rpc addOrder (", "rpc createOrder (");
    package_changed: order, Fails, |p| sub(p, "package ecommerce;", "package shop;");
    client_streaming_changed: order, Fails,
        |p| sub(p, "rpc updateOrders (stream Order)", "rpc updateOrders (Order)");
    server_streaming_changed: order, Fails,
        |p| sub(p, "returns (stream Order) {", "returns (Order) {");
    request_type_incompatible: order, Fails, |p| {
        sub(p, "rpc addOrder (Order)", "rpc addOrder (NewOrder)")
            + &sub(NEW_ORDER, "float price", "string price")
    };
    response_type_incompatible: order, Fails, |p| sub(
        p,
        "rpc getOrder (google.protobuf.StringValue) returns (Order) {",
        "rpc getOrder (google.protobuf.StringValue) returns (CombinedShipment) {",
    );
    recursive_type_incompatible: extended, Fails, |p| {
        let p = sub(p, "message Node {\n    string label = 1;", "message Tree {\n    int64 label = 1;");
        let p = sub(&p, "repeated Node children", "repeated Tree children");
        sub(&p, "rpc walk (Node) returns (stream Node)", "rpc walk (Tree) returns (stream Tree)")
    };
    reserved_number_reused: extended, Fails,
        |p| sub(p, "    reserved 7, 9 to 11;\n", "    reserved 9 to 11;\n    string note = 7;\n");
    reserved_name_reused: extended, Fails,
        |p| sub(p, "    reserved \"legacy\";\n", "    string legacy = 12;\n");
    reserved_enum_number_and_name_reused: extended, Fails, |p| sub(
        p,
        "    reserved 3;\n    reserved \"ORDER_STATUS_LOST\";\n",
        "    ORDER_STATUS_LOST = 3;\n",
    );
    reservation_dropped: extended, Fails, |p| sub(p, "reserved 7, 9 to 11;", "reserved 7;");
}

#[test]
fn identical_protos_have_no_findings() {
    let set = compile(&extended(order_proto()));
    assert_eq!(breaking::compare(&set, &set), Vec::<Finding>::new());
}

#[test]
fn json_report_lists_every_finding() {
    let before = order_proto();
    let after = sub(&before, "    float price = 4;\n", "    string note = 6;\n");
    let outcome = Outcome {
        findings: breaking::compare(&compile(&before), &compile(&after)),
        against: "the baseline".into(),
        allowed_by: None,
    };
    insta::assert_snapshot!(outcome.json());
}

/// The committed descriptor set has no source info: a deleted element is then
/// cited at the line of its parent in today's proto, where `reserved` goes.
#[test]
fn baseline_without_source_info_cites_the_parent_in_todays_proto() {
    let before = order_proto();
    let mut baseline = compile(&before);
    baseline
        .file
        .iter_mut()
        .for_each(|f| f.source_code_info = None);
    let findings = breaking::compare(
        &baseline,
        &compile(&sub(&before, "    float price = 4;\n", "")),
    );
    let line = line_of(&before, "message Order {");
    let outcome = Outcome {
        findings,
        against: "HEAD".into(),
        allowed_by: None,
    };
    assert_eq!(
        outcome.text(),
        format!(
            "order.proto:{line}: wire-breaking [FIELD_NO_DELETE] field ecommerce.Order.price (4) \
             deleted without reserving number 4 and name \"price\"\n\
             FAILED: 1 wire-breaking change and 0 source-breaking warnings against HEAD\n"
        )
    );
}

fn line_of(text: &str, needle: &str) -> u32 {
    let index = text.lines().position(|l| l.contains(needle)).unwrap();
    index as u32 + 1
}

#[test]
fn a_breaking_change_line_in_the_commit_message_allows_wire_breaking_findings() {
    let finding = Finding {
        class: Class::Wire,
        rule: "RPC_NO_DELETE",
        element: "ecommerce.OrderManagement.getOrder".into(),
        file: "order.proto".into(),
        line: Some(16),
        message: "method ecommerce.OrderManagement.getOrder deleted or renamed".into(),
    };
    let outcome = Outcome {
        findings: vec![finding],
        against: "HEAD~1".into(),
        allowed_by: Some("getOrder is replaced by fetchOrder".into()),
    };
    assert!(!outcome.failed());
    assert!(
        outcome.text().ends_with(
            "\nallowed: 1 wire-breaking change and 0 source-breaking warnings against HEAD~1, \
             accepted by \"Breaking-Change: getOrder is replaced by fetchOrder\" in HEAD's commit message\n"
        ),
        "{}",
        outcome.text()
    );
}

#[test]
fn breaking_change_reason_is_read_from_its_own_line() {
    let reason = breaking::breaking_change_reason;
    assert_eq!(
        reason("Drop getOrder\n\nBreaking-Change: nobody calls it\nSigned-off-by: A <a@b>\n"),
        Some("nobody calls it")
    );
    assert_eq!(
        reason("x\n\nbreaking-change:  v2 clients only  \n"),
        Some("v2 clients only")
    );
    assert_eq!(
        reason("Drop getOrder\n\nBreaking-Change:\n"),
        None,
        "a reason is required"
    );
    assert_eq!(
        reason("Mention Breaking-Change: in the middle of a line"),
        None
    );
    assert_eq!(reason("Add a field"), None);
}

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

/// The git-ref path: today's proto/ against the descriptor set committed at
/// HEAD. Contract changes must be additions, so nothing is wire-breaking.
#[test]
fn todays_proto_against_head_has_no_wire_breaking_change() {
    let out = xtask(&["breaking", "--against", "HEAD"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("ok: 0 wire-breaking changes and "),
        "{stdout}"
    );
    assert!(summary.ends_with(" against HEAD"), "{stdout}");
}

/// The file path: a baseline descriptor set (as committed: no source info)
/// with a field that today's proto lacks.
#[test]
fn a_descriptor_set_file_as_baseline() {
    let today = order_proto();
    let mut baseline = compile(&sub(
        &today,
        "    string destination = 5;\n",
        "    string destination = 5;\n    string note = 6;\n",
    ));
    baseline
        .file
        .iter_mut()
        .for_each(|f| f.source_code_info = None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.bin");
    fs::write(&path, baseline.encode_to_vec()).unwrap();
    let path = path.to_str().unwrap();

    let out = xtask(&["breaking", "--against", path, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["against"], path);
    assert_eq!(report["failed"], true);
    assert_eq!(report["wire_breaking"], 1);
    assert_eq!(
        report["findings"],
        serde_json::json!([{
            "class": "wire-breaking",
            "rule": "FIELD_NO_DELETE",
            "element": "ecommerce.Order.note",
            "file": "order.proto",
            "line": line_of(&today, "message Order {"),
            "message": "field ecommerce.Order.note (6) deleted without reserving number 6 and name \"note\"",
        }])
    );

    let out = xtask(&["breaking", "--against", path]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.ends_with(&format!(
            "FAILED: 1 wire-breaking change and 0 source-breaking warnings against {path}\n"
        )),
        "{stdout}"
    );
}

#[test]
fn a_baseline_that_is_neither_file_nor_ref_is_an_error() {
    let out = xtask(&["breaking", "--against", "no-such-ref-or-file"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"no-such-ref-or-file\" is not a file, nor a git ref"),
        "{stderr}"
    );
}

/// The CI override, end to end in a throwaway repository: a commit that
/// deletes a field passes with `--allow-if-commit-says` only when its message
/// has a `Breaking-Change:` line.
#[test]
fn the_commit_message_override_in_a_scratch_repository() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let write_proto = |text: &str| {
        fs::create_dir_all(root.join("proto")).unwrap();
        fs::write(root.join("proto/order.proto"), text).unwrap();
    };
    let before = order_proto();
    write_proto(&before);
    let mut baseline = compile(&before);
    baseline
        .file
        .iter_mut()
        .for_each(|f| f.source_code_info = None);
    fs::create_dir_all(root.join("generated")).unwrap();
    fs::write(
        root.join("generated/file_descriptor_set.bin"),
        baseline.encode_to_vec(),
    )
    .unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "Contract"]);

    write_proto(&sub(&before, "    float price = 4;\n", ""));
    git(&["commit", "-q", "-a", "-m", "Drop price"]);
    let outcome = breaking::run(root, "HEAD~1", true).unwrap();
    assert!(
        outcome.failed(),
        "no Breaking-Change line: still fails\n{}",
        outcome.text()
    );

    git(&[
        "commit",
        "-q",
        "--amend",
        "-m",
        "Drop price\n\nBreaking-Change: prices move to billing",
    ]);
    let outcome = breaking::run(root, "HEAD~1", true).unwrap();
    assert!(!outcome.failed(), "{}", outcome.text());
    assert_eq!(
        outcome.allowed_by.as_deref(),
        Some("prices move to billing")
    );
    assert_eq!(outcome.findings.len(), 1, "findings are still reported");
    assert!(
        breaking::run(root, "HEAD~1", false).unwrap().failed(),
        "only with the flag"
    );
}
