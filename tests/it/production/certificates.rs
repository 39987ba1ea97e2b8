//! An expired server certificate is named in a warning at start (the
//! server still starts: see `src/server/certificate.rs`).

use std::sync::Arc;

use order_management::seed;
use order_management::store::MemoryStore;

use super::harness::{LogCapture, Prod};

#[test]
fn an_expired_server_certificate_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let cert = dir.path().join("server.pem");
    let key_file = dir.path().join("server-key.pem");
    std::fs::write(&cert, params.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let log = LogCapture::default();
    let store = Arc::new(MemoryStore::with_orders([seed::order_101()]));
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ];
    let mut server = Prod::logging_to(&args, store, &log);
    server.shutdown();
    server.stopped().unwrap();
    let warned = log.lines().into_iter().any(|line| {
        line["level"] == "WARN"
            && line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("server.pem") && m.contains("expired at"))
    });
    assert!(warned, "{:?}", log.lines());
}
