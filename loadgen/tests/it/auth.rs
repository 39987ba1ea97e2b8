//! `loadgen` connects like the user's client: against a server that wants a
//! bearer token, `--token-file` (and gzip) reach every call of `bench` and
//! `soak`. (They once built their clients without credentials, so every call
//! failed with UNAUTHENTICATED.)

use std::process::{Command, Output};

use crate::server::InProcessServer;

const TOKEN: &str = "s3cret-token";

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A server that requires TOKEN, and a file holding it.
async fn authenticating_server() -> (InProcessServer, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.to_str().unwrap().to_owned();
    let server = InProcessServer::start(&["--auth-token-file", &token_file]).await;
    (server, dir, token_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sends_the_token_and_gzip_to_an_authenticating_server() {
    let (server, _dir, token_file) = authenticating_server().await;
    let url = server.url.clone();
    let token = token_file.clone();
    let run = move |with_token: bool| {
        let mut args = vec!["--server", &url, "--json", "--gzip"];
        if with_token {
            args.extend(["--token-file", &token]);
        }
        args.extend([
            "bench",
            "--rpc",
            "get",
            "--connections",
            "2",
            "--concurrency",
            "2",
            "--count",
            "200",
            "--seconds",
            "20",
        ]);
        loadgen(&args)
    };
    let with = tokio::task::spawn_blocking(move || run(true))
        .await
        .unwrap();
    assert!(with.status.success(), "{}", text(&with));
    let report: serde_json::Value = serde_json::from_slice(&with.stdout).unwrap();
    assert!(report["ok"].as_u64().unwrap() >= 200, "{}", text(&with));
    assert_eq!(report["errors"], serde_json::json!({}), "{}", text(&with));

    // Without the token the same run is refused, so the token is what passed.
    let url = server.url.clone();
    let without = tokio::task::spawn_blocking(move || {
        loadgen(&[
            "--server",
            &url,
            "bench",
            "--rpc",
            "get",
            "--count",
            "10",
            "--connections",
            "1",
            "--concurrency",
            "1",
        ])
    })
    .await
    .unwrap();
    assert!(!without.status.success(), "{}", text(&without));
    assert!(
        text(&without).contains("Unauthenticated"),
        "{}",
        text(&without)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_sends_the_token_to_an_authenticating_server() {
    let (server, _dir, token_file) = authenticating_server().await;
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        loadgen(&[
            "--server",
            &url,
            "--token-file",
            &token_file,
            "soak",
            "--seconds",
            "1",
            "--connections",
            "2",
            "--workers",
            "2",
        ])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!report.contains("Unauthenticated"), "{}", text(&out));
    server.stop().await;
}
