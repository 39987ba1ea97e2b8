//! The README's "Using it" block, read from README.md itself and run
//! command by command, as a user pastes it, against a fresh server started
//! the way the README says: the examples cannot rot.

use std::process::Command;

use crate::support::process::ServerProcess;
use crate::support::{stderr, stdout};

const README: &str = include_str!("../../README.md");
const CLIENT: &str = "cargo run --bin client --";
const SERVER: &str = "cargo run --bin server --";

/// The ```sh block after `marker`, with `\`-continued lines joined.
fn block_after(marker: &str) -> Vec<String> {
    let from = README
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker:?}"));
    let body = README[from..]
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(body, _)| body)
        .expect("a ```sh block after the marker");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in body.lines() {
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    commands.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    commands
}

/// The server's arguments as the README starts it.
fn server_args() -> Vec<String> {
    let commands = block_after("## Using it");
    let [command] = commands.as_slice() else {
        panic!("the first block of \"Using it\" starts the server alone: {commands:?}");
    };
    let args = command
        .strip_prefix(SERVER)
        .unwrap_or_else(|| panic!("not `{SERVER}`: {command}"));
    let args = args.split('#').next().unwrap();
    args.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_using_it_block_runs_as_written_on_a_fresh_server() {
    let args = server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&args).expect("the README's server starts");
    let commands = block_after("<!-- readme-script");
    assert!(commands.len() >= 8, "{commands:?}");
    let mut outputs = Vec::new();
    for command in &commands {
        assert!(
            command.starts_with(CLIENT),
            "every command of the block is `{CLIENT} ...`: {command}"
        );
        // The built binary in place of `cargo run`, even inside a pipeline;
        // the server through ORDER_SERVER, as the README's default would.
        let script = command.replace(CLIENT, "\"$CLIENT\"");
        let out = Command::new("sh")
            .args(["-c", &script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CLIENT", env!("CARGO_BIN_EXE_client"))
            .env("ORDER_SERVER", &server.url)
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "README command failed ({}): {command}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(stderr(&out), "", "{command}");
        outputs.push((command.as_str(), stdout(&out)));
    }
    // What the comments promise.
    let said = |needle: &str| {
        outputs
            .iter()
            .find(|(command, _)| command.contains(needle))
            .map(|(_, out)| out.as_str())
            .unwrap_or_else(|| panic!("no command with {needle:?}"))
    };
    assert!(said(" 101 ").starts_with("id: \"101\"\n"));
    assert_eq!(said("add --id 102"), "102\n");
    assert_eq!(
        said("update examples/orders.json"),
        "Updated Order IDs : 102, 103\n"
    );
    assert!(said("search pixel").contains("id: \"102\""));
    assert!(said("process 101 102 103").contains("status: \"Processed!\""));
    assert_eq!(said("health"), "SERVING\n");
}
