//! The README's curl examples of the HTTP/JSON API, run with the real
//! `curl` against a fresh in-memory server, in order, each output compared
//! with the `# ` lines under its command.

use std::process::Command;

use super::harness::Prod;

const BEGIN: &str = "<!-- curl examples: begin -->";
const END: &str = "<!-- curl examples: end -->";

/// (command, expected output) pairs from the README's marked block.
fn examples() -> Vec<(String, String)> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find(BEGIN)
        .expect("the README marks its curl examples");
    let end = readme.find(END).expect("the README ends its curl examples");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in readme[start..end].lines() {
        if line.starts_with("curl ") {
            out.push((line.to_owned(), String::new()));
        } else if let Some(expected) = line.strip_prefix('#')
            && let Some((_, output)) = out.last_mut()
        {
            output.push_str(expected.strip_prefix(' ').unwrap_or(expected));
            output.push('\n');
        }
    }
    out
}

#[test]
fn readme_curl_examples_print_what_the_readme_says() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "curl is required in CI");
        eprintln!("SKIPPED: no curl on this machine");
        return;
    }
    let examples = examples();
    assert!(examples.len() >= 8, "{examples:?}");
    let server = Prod::start(&[]);
    for (command, expected) in examples {
        let command = command.replace("localhost:50051", &server.addr.to_string());
        let out = Command::new("sh")
            .args(["-c", &format!("{command} --max-time 30")])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "{command}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{command}");
    }
}
