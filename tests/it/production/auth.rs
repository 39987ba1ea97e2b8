//! Bearer auth (`--auth-token-file`): calls need the token, health probes
//! do not.

use crate::support::{run_client, stderr, stdout};
use tonic::{Code, Request};

use super::harness::{Prod, SERVICE, with_request_id};

#[test]
fn auth_token_is_required_for_calls_but_not_for_health() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let server = Prod::start(&["--auth-token-file", token.to_str().unwrap()]);
    let url = server.url();

    let out = run_client(&url, &["101"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("client: Unauthenticated: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    let out = run_client(&url, &["--token-file", wrong.to_str().unwrap(), "101"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    let out = run_client(&url, &["--token-file", token.to_str().unwrap(), "101"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("id: \"101\"\n"),
        "{}",
        stdout(&out)
    );

    for args in [&["health"][..], &["health", SERVICE]] {
        let out = run_client(&url, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "SERVING\n");
    }

    // The status itself, through a generated client.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = server.client().await;
        let status = client
            .get_order(with_request_id("101".to_owned(), "unauthenticated-1"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.metadata().get("x-request-id").unwrap(),
            "unauthenticated-1"
        );
        let mut request = Request::new("101".to_owned());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret-token".parse().unwrap());
        client.get_order(request).await.unwrap();
    });
}
