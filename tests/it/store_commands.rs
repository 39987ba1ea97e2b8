//! The embedded store's life cycle through the real binaries: a data file
//! written by the previous format migrated at start, `server verify`, and
//! `server import`.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr, stdout};

fn run_server(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ORDER_") {
            command.env_remove(name);
        }
    }
    command.args(args).output().expect("run the server binary")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of `tests/fixtures/store-v1` (written by the format-1 code).
fn v1_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/orders.redb");
    std::fs::copy(fixture, dir.path().join("orders.redb")).unwrap();
    dir
}

#[test]
fn a_format_1_data_file_is_migrated_at_start_and_served() {
    let dir = v1_store();
    let data = dir.path().to_str().unwrap();
    let mut server = ServerProcess::start(&["--data-dir", data]).expect("the server starts");
    assert!(
        server.startup.contains("migrat"),
        "the migration is logged:\n{}",
        server.startup
    );
    let out = run_client(&server.url, &["--json", "get", "104"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ДЕСКРИПЦИЯ"), "{}", stdout(&out));
    // Found through the new trigram index, case-insensitively.
    let out = run_client(&server.url, &["--json", "search", "İSTANBUL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"105\""), "{}", stdout(&out));
    let out = run_client(&server.url, &["--json", "search", "google"]);
    assert_eq!(
        stdout(&out).lines().count(),
        2,
        "102 and 104:\n{}",
        stdout(&out)
    );
    server.signal("TERM");
    server.wait_exit();
    let out = run_server(&["--data-dir", data, "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let current = format!(
        "format version: {}",
        order_management::store::embedded::FORMAT_VERSION
    );
    assert!(stdout(&out).contains(&current), "{}", text(&out));
}

#[test]
fn verify_reports_a_sound_store_and_refuses_a_missing_one() {
    let dir = v1_store();
    let data = dir.path().to_str().unwrap();
    // Importing opens (and migrates) the store; verify then checks it all.
    let orders = dir.path().join("more.jsonl");
    std::fs::write(
        &orders,
        "{\"id\":\"200\",\"items\":[\"Pixel 9\"],\"price\":900,\"destination\":\"Seoul\"}\n",
    )
    .unwrap();
    let out = run_server(&["--data-dir", data, "import", orders.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run_server(&["--data-dir", data, "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("orders: 6"), "{}", text(&out));

    let empty = tempfile::tempdir().unwrap();
    let out = run_server(&["--data-dir", empty.path().to_str().unwrap(), "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("orders.redb"), "{}", text(&out));
}

#[test]
fn import_adds_json_lines_and_stops_at_a_bad_line_or_a_taken_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let file = dir.path().join("orders.jsonl");
    let lines: Vec<String> = (0..25)
        .map(|i| {
            format!(
                "{{\"id\":\"imp-{i:03}\",\"items\":[\"Widget {i}\"],\"price\":{i},\"destination\":\"Busan\"}}"
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = run_server(&[
        "--data-dir",
        data,
        "import",
        "--batch",
        "10",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("imported 25 orders"),
        "{}",
        text(&out)
    );

    // A bad line: the batches before it are kept, the line is named.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\":\"ok-1\",\"items\":[\"a\"],\"price\":1,\"destination\":\"X\"}\n{\"id\": 7\n",
    )
    .unwrap();
    let out = run_server(&[
        "--data-dir",
        data,
        "import",
        "--batch",
        "1",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("line 2"), "{}", text(&out));
    assert!(
        text(&out).contains("1 orders imported before it"),
        "{}",
        text(&out)
    );

    // A taken id fails its whole batch, and says so.
    let out = run_server(&["--data-dir", data, "import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));
    assert!(text(&out).contains("was not imported"), "{}", text(&out));

    let mut server = ServerProcess::start(&["--data-dir", data]).expect("the server starts");
    let out = run_client(&server.url, &["--json", "search", "widget 1"]);
    // Widget 1, 10..19: 11 orders, found through the index.
    assert_eq!(stdout(&out).lines().count(), 11, "{}", stdout(&out));
    let out = run_client(&server.url, &["get", "ok-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.signal("TERM");
    server.wait_exit();
}
