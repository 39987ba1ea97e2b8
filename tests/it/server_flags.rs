//! The server's flags as people type them (issue 17): boolean variables in
//! their usual spellings, `--listen` forms, and TLS files checked at start,
//! each refusal naming the variable or the file and what is wrong.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::support::certs::TestPki;
use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr};

/// The server binary with exactly `args` and `env` (no ORDER_* inherited).
fn server_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command.args(args).env("RUST_LOG", "info");
    for (name, _) in std::env::vars() {
        if name.starts_with("ORDER_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs a server that must refuse to start; its output.
fn refused(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = server_command(args, env)
        .stdin(Stdio::null())
        .output()
        .expect("run the server");
    assert!(!out.status.success(), "{args:?} {env:?} started");
    assert!(!stderr(&out).contains("listening on"), "{}", stderr(&out));
    out
}

/// A server process, killed and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server and returns it with the address it logged.
fn listening(args: &[&str]) -> (Killed, String) {
    let mut child = Killed(
        server_command(args, &[])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server"),
    );
    let mut log = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if log.read_line(&mut line).unwrap() == 0 {
            panic!("{args:?}: the server exited before listening");
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            return (child, rest.trim().to_owned());
        }
    }
}

#[test]
fn boolean_variables_take_the_usual_spellings_and_errors_name_them() {
    for (value, seeded) in [
        ("true", false),
        ("YES", false),
        ("1", false),
        ("on", false),
        ("false", true),
        ("No", true),
        ("0", true),
    ] {
        let server = ServerProcess::start_with_env(&["--in-memory"], &[("ORDER_NO_SEED", value)])
            .unwrap_or_else(|(status, log)| panic!("ORDER_NO_SEED={value}: {status}\n{log}"));
        let out = run_client(&server.url, &["101"]);
        assert_eq!(out.status.success(), seeded, "ORDER_NO_SEED={value}");
    }
    // ORDER_IN_MEMORY=false is no conflict with --data-dir: the file is used.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let server =
        ServerProcess::start_with_env(&["--data-dir", data_dir], &[("ORDER_IN_MEMORY", "false")])
            .unwrap_or_else(|(status, log)| panic!("{status}\n{log}"));
    assert!(
        server.startup.contains("orders.redb (0 orders)"),
        "{}",
        server.startup
    );
    drop(server);
    let server = ServerProcess::start(&["--data-dir", data_dir])
        .unwrap_or_else(|(status, log)| panic!("{status}\n{log}"));
    assert!(
        server.startup.contains("orders.redb (1 order)"),
        "{}",
        server.startup
    );
    drop(server);

    let out = refused(
        &["--listen", "127.0.0.1:0"],
        &[("ORDER_IN_MEMORY", "maybe")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ORDER_IN_MEMORY=maybe is not a boolean"),
        "{}",
        stderr(&out)
    );
    let out = refused(&["--listen", "127.0.0.1:0", "--no-seed=maybe"], &[]);
    assert!(
        stderr(&out).contains("--no-seed=maybe is not a boolean"),
        "{}",
        stderr(&out)
    );
    let out = refused(
        &["--listen", "127.0.0.1:0", "--data-dir", data_dir],
        &[("ORDER_IN_MEMORY", "yes")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with --data-dir"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn listen_takes_port_colon_port_and_host_names() {
    for (listen, host) in [(":0", "[::]:"), ("0", "[::]:"), ("localhost:0", "")] {
        let (child, addr) = listening(&["--in-memory", "--listen", listen]);
        assert!(addr.starts_with(host), "{listen}: {addr}");
        let port = addr.rsplit_once(':').unwrap().1;
        // Reachable where it says it listens (through the loopback).
        let local = format!("localhost:{port}");
        let out = run_client(&local, &["101"]);
        drop(child);
        assert_eq!(out.status.code(), Some(0), "{listen}: {}", stderr(&out));
    }
    for bad in ["localhost", "localhost:port", "1.2.3.4:99999"] {
        let out = refused(&["--in-memory", "--listen", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--listen"), "{}", stderr(&out));
    }
}

/// A self-signed certificate for localhost that expired in 2020.
fn expired_pair(dir: &std::path::Path) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("expired.pem"), dir.join("expired-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

#[test]
fn tls_files_are_checked_at_start_and_named() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let (expired, expired_key) = expired_pair(dir.path());
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let (cert, key) = (pki.server.cert(), pki.server.key());
    let cases: [(&[&str], String); 6] = [
        (
            &["--tls-cert", key, "--tls-key", key],
            format!("{key} holds a private key, not a certificate"),
        ),
        (
            &["--tls-cert", cert, "--tls-key", cert],
            format!("{cert} holds a certificate, not a private key"),
        ),
        (
            &["--tls-cert", cert, "--tls-key", pki.client.key()],
            format!(
                "key {} does not match the certificate {cert}",
                pki.client.key()
            ),
        ),
        (
            &["--tls-cert", missing, "--tls-key", key],
            format!("cannot read the TLS certificate {missing}"),
        ),
        (
            &["--tls-cert", &expired, "--tls-key", &expired_key],
            format!("{expired} expired on"),
        ),
        (
            &["--tls-cert", cert, "--tls-key", key, "--client-ca", key],
            format!("client CA {key} holds a private key"),
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["--in-memory", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = refused(&all, &[]);
        let err = stderr(&out);
        assert!(
            err.contains(&says),
            "{args:?}: expected {says:?} in:\n{err}"
        );
    }

    // The client's TLS options too: exit 2 before any network access.
    let unused = "https://127.0.0.1:1";
    for (args, says) in [
        (
            &["--ca-cert", key][..],
            format!("{key} holds a private key, not a certificate"),
        ),
        (&["--ca-cert", &expired], format!("{expired} expired on")),
        (
            &[
                "--ca-cert",
                pki.ca(),
                "--cert",
                pki.client.cert(),
                "--key",
                key,
            ],
            format!("does not match the certificate {}", pki.client.cert()),
        ),
    ] {
        let mut all = args.to_vec();
        all.push("101");
        let out = run_client(unused, &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&says), "{args:?}: {}", stderr(&out));
    }
}
