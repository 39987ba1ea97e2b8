//! Rich errors (google.rpc.BadRequest): field violations in the status
//! details, printed one per line by the client.

use crate::support::{run_client, stderr, stdout};
use order_management::Order;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::harness::Prod;

#[tokio::test]
async fn an_invalid_add_order_carries_bad_request_field_violations() {
    let server = Prod::start(&[]);
    let mut client = server.client().await;
    let invalid = Order {
        id: String::new(),
        items: vec!["ok".into(), "  ".into()],
        description: String::new(),
        price: -1.0,
        destination: "x".repeat(300),
    };
    let status = client.add_order(invalid).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad_request = status
        .get_details_bad_request()
        .expect("google.rpc.BadRequest details");
    let violations: Vec<(&str, &str)> = bad_request
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert_eq!(violations[0], ("items[1]", "must not be blank"));
    assert_eq!(
        violations[1],
        ("price", "must be a finite number >= 0, got -1")
    );
    assert_eq!(violations[2].0, "destination");
}

#[test]
fn client_prints_the_field_violations_on_the_one_error_line() {
    let server = Prod::start(&[]);
    let out = run_client(
        &server.url(),
        &[
            "add",
            "--item",
            " ",
            "--price",
            "-1",
            "--destination",
            "Seoul",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    // One line: the message already names every violation, so none is
    // repeated; then the request id the server made for the failed call.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "client: InvalidArgument: invalid order: items[0]: must not be blank; \
             price: must be a finite number >= 0, got -1 (request id "
        ),
        "{err}"
    );
}
