//! TLS and mutual TLS between the real client binary and the real server
//! binary, with certificates made at test time (tests/it/support/certs.rs):
//! the client verifies the server against `--ca-cert` (and `--tls-domain`),
//! and with `--client-ca` the server refuses every client that does not
//! present a certificate signed by that CA.

use std::process::Output;

use crate::support::certs::TestPki;
use crate::support::process::ServerProcess;
use crate::support::{run_client, stderr, stdout};

const ORDER_101_TEXT: &str = "id: \"101\"\n\
                              items: \"Item - A\"\n\
                              items: \"Item - B\"\n\
                              description: \"Sample order description.\"\n\
                              price: 1000.0\n\
                              destination: \"Seoul\"\n";

fn tls_server(pki: &TestPki, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--in-memory",
        "--tls-cert",
        pki.server.cert(),
        "--tls-key",
        pki.server.key(),
    ];
    args.extend_from_slice(extra);
    ServerProcess::start_with_env(&args, &[])
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status}):\n{log}"))
}

fn assert_success(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: stderr: {}",
        stderr(out)
    );
}

/// A refused client: non-zero exit, nothing on stdout, one line on stderr.
fn assert_refused(out: &Output, what: &str) -> i32 {
    let code = out.status.code().expect("the client exited");
    assert_ne!(code, 0, "{what} was served: {}", stdout(out));
    assert_eq!(stdout(out), "", "{what}");
    assert_eq!(stderr(out).lines().count(), 1, "{what}: {}", stderr(out));
    code
}

#[test]
fn tls_serves_clients_that_trust_the_ca_and_fails_those_that_do_not() {
    let pki = TestPki::new();
    let mut server = tls_server(&pki, &[]);
    let url = server.https_url(); // https://127.0.0.1:PORT, in the SAN

    let out = run_client(&url, &["--ca-cert", pki.ca(), "101"]);
    assert_success(&out, "TLS with --ca-cert");
    assert_eq!(stdout(&out), ORDER_101_TEXT);

    let out = run_client(&url, &["--ca-cert", pki.ca(), "health"]);
    assert_success(&out, "health over TLS");
    assert_eq!(stdout(&out), "SERVING\n");

    // --tls-domain: the name to verify when the URL's host is not it.
    let out = run_client(
        &url,
        &["--ca-cert", pki.ca(), "--tls-domain", "localhost", "101"],
    );
    assert_success(&out, "--tls-domain localhost");
    assert_eq!(stdout(&out), ORDER_101_TEXT);
    let out = run_client(
        &url,
        &[
            "--ca-cert",
            pki.ca(),
            "--tls-domain",
            "not-this-server.example",
            "101",
        ],
    );
    assert_eq!(
        assert_refused(&out, "a name the certificate does not carry"),
        6,
        "{}",
        stderr(&out)
    );

    // A CA that did not sign the server's certificate: unreachable, exit 6.
    let out = run_client(&url, &["--ca-cert", pki.other_ca(), "101"]);
    assert_eq!(assert_refused(&out, "the wrong CA"), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the server"),
        "{}",
        stderr(&out)
    );

    // Plain HTTP/2 to a TLS port gets no service either.
    let out = run_client(&server.url, &["--timeout", "5", "101"]);
    assert_refused(&out, "plaintext to a TLS server");

    // Still serving after the failed handshakes; the call's log line names
    // the TLS peer.
    let out = run_client(&url, &["--ca-cert", pki.ca(), "101"]);
    assert_success(&out, "TLS after refused clients");
    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));
    let log = server.rest_of_log();
    let line = log
        .lines()
        .find(|l| l.contains("getOrder") && l.contains("call ended"))
        .unwrap_or_else(|| panic!("no getOrder line in the log:\n{log}"));
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
}

#[test]
fn mtls_serves_only_clients_with_a_certificate_from_the_client_ca() {
    let pki = TestPki::new();
    let mut server = tls_server(&pki, &["--client-ca", pki.ca()]);
    let url = server.https_url();
    let trust = ["--ca-cert", pki.ca()];

    let out = run_client(&url, &[&trust[..], &["--timeout", "5", "101"]].concat());
    assert_refused(&out, "a client without a certificate");

    let rogue = [
        "--cert",
        pki.rogue_client.cert(),
        "--key",
        pki.rogue_client.key(),
    ];
    let out = run_client(
        &url,
        &[&trust[..], &rogue[..], &["--timeout", "5", "101"]].concat(),
    );
    assert_refused(&out, "a client certificate from another CA");

    // The server's own certificate is from the right CA but is not a
    // client certificate (serverAuth only): refused as well.
    let wrong_usage = ["--cert", pki.server.cert(), "--key", pki.server.key()];
    let out = run_client(
        &url,
        &[&trust[..], &wrong_usage[..], &["--timeout", "5", "101"]].concat(),
    );
    assert_refused(&out, "a certificate without clientAuth usage");

    let good = ["--cert", pki.client.cert(), "--key", pki.client.key()];
    let out = run_client(&url, &[&trust[..], &good[..], &["101"][..]].concat());
    assert_success(&out, "mTLS with the right client certificate");
    assert_eq!(stdout(&out), ORDER_101_TEXT);

    let out = run_client(&url, &[&trust[..], &good[..], &["health"][..]].concat());
    assert_success(&out, "health over mTLS");
    assert_eq!(stdout(&out), "SERVING\n");

    // The refused handshakes were logged, naming the peer and why, and
    // rate-limited: one warning for the three within 10 s.
    server.signal("TERM");
    server.wait_exit();
    let log = server.rest_of_log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a TLS handshake from 127.0.0.1"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
}

#[test]
fn mtls_refusals_exit_6_like_an_unreachable_server() {
    let pki = TestPki::new();
    let server = tls_server(&pki, &["--client-ca", pki.ca()]);
    let url = server.https_url();
    for (what, cert) in [
        ("no client certificate", None),
        ("a certificate from another CA", Some(&pki.rogue_client)),
    ] {
        let mut args = vec!["--ca-cert", pki.ca(), "--timeout", "5"];
        if let Some(pair) = cert {
            args.extend(["--cert", pair.cert(), "--key", pair.key()]);
        }
        args.push("101");
        let out = run_client(&url, &args);
        assert_eq!(assert_refused(&out, what), 6, "{what}: {}", stderr(&out));
    }
}
