//! TLS to the database: each `sslmode` against a server that accepts only
//! TLS on TCP, with a certificate for `localhost` from a test CA.

use std::time::{Duration, Instant};

use order_management::store::{OrderStore, PgOptions, PgStore, StoreError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::harness::Postgres;
use super::order;
use super::store::waiting_on_locks;

/// (CA PEM, server certificate PEM for `localhost`, server key PEM).
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "order-management test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_checks_what_libpq_checks() {
    let (ca, cert, key) = certificates();
    let port = Postgres::free_port();
    let Some(pg) = Postgres::start_tls(port, &cert, &key) else {
        return;
    };
    pg.create_database("tls").await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca).unwrap();
    let root = ca_file.path().display().to_string().replace('/', "%2F");
    let options = PgOptions {
        connect_timeout: Duration::from_secs(5),
        ..PgOptions::default()
    };
    let url =
        |host: &str, params: &str| format!("postgres://postgres:pw@{host}:{port}/tls?{params}");

    // verify-full with our CA, the name on the certificate: connects, works.
    let store = PgStore::connect(
        &url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        ),
        options.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    store
        .insert(order("t1", &["over TLS"]), None)
        .await
        .unwrap();
    assert_eq!(store.get("t1").await.unwrap().unwrap().items, ["over TLS"]);
    store.ping().await.unwrap();

    // A deadline's cancel request goes over TLS too: the blocked write is
    // cancelled on the server.
    let holder = pg.connect("tls").await;
    holder
        .batch_execute("BEGIN; SELECT * FROM orders WHERE id = 't1' FOR UPDATE")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    assert_eq!(
        store
            .update_all(vec![order("t1", &["changed"])], Some(deadline))
            .await,
        Err(StoreError::DeadlineExceeded)
    );
    let observer = pg.connect("tls").await;
    let by = Instant::now() + Duration::from_secs(5);
    while waiting_on_locks(&observer).await > 0 {
        assert!(Instant::now() < by, "the blocked UPDATE was not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();

    // verify-full to an address the certificate does not name: refused.
    let err = PgStore::connect(
        &url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        ),
        options.clone(),
    )
    .await
    .unwrap_err();
    eprintln!("verify-full, wrong name: {err}");
    assert!(err.0.contains("certificate"), "{err}");
    assert!(!err.0.contains(":pw@"), "{err}");

    // verify-ca checks the chain only: the address is fine.
    PgStore::connect(
        &url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={root}"),
        ),
        options.clone(),
    )
    .await
    .unwrap();

    // verify-full against the built-in webpki roots: our test CA is unknown.
    let err = PgStore::connect(&url("localhost", "sslmode=verify-full"), options.clone())
        .await
        .unwrap_err();
    eprintln!("verify-full, webpki roots: {err}");
    assert!(err.0.contains("certificate"), "{err}");

    // require: encrypted, not checked (as libpq).
    PgStore::connect(&url("127.0.0.1", "sslmode=require"), options.clone())
        .await
        .unwrap();

    // disable: this server refuses plain TCP.
    let err = PgStore::connect(&url("127.0.0.1", "sslmode=disable"), options)
        .await
        .unwrap_err();
    eprintln!("disable, TLS-only server: {err}");
    assert!(err.0.contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_given_as_the_host_parameter_works_too() {
    let Some(pg) = Postgres::start() else { return };
    pg.create_database("hostparam").await;
    let store = PgStore::connect(&pg.url_with_host_param("hostparam"), PgOptions::default())
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
}
