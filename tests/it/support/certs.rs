//! Certificates made at test time with rcgen: a CA, a server leaf for
//! localhost and 127.0.0.1, a client leaf, and a client leaf from another CA
//! that the server must refuse. Written as PEM files in a temporary
//! directory, for the binaries' `--tls-*` / `--ca-cert` / `--cert` flags.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct PemPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PemPair {
    pub fn cert(&self) -> &str {
        self.cert.to_str().unwrap()
    }

    pub fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }
}

/// Every file a TLS test needs; deleted with the value.
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// The CA that signs the server and the good client (`ca.pem`).
    pub ca: PathBuf,
    /// A CA nobody trusts (`other-ca.pem`).
    pub other_ca: PathBuf,
    /// Server leaf: SAN `localhost` and `127.0.0.1`, signed by `ca`.
    pub server: PemPair,
    /// Client leaf signed by `ca`.
    pub client: PemPair,
    /// Client leaf signed by `other_ca`.
    pub rogue_client: PemPair,
}

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let (ca_pem, ca) = new_ca("order-management test CA");
        let (other_ca_pem, other_ca) = new_ca("some other CA");

        let server = leaf(
            &ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(&ca, "test client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let rogue = leaf(
            &other_ca,
            "rogue client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let path = |name: &str| dir.path().join(name);
        let write = |name: &str, pem: &str| {
            let p = path(name);
            std::fs::write(&p, pem).expect("write a PEM file");
            p
        };
        let pair = |name: &str, (cert, key): (String, String)| PemPair {
            cert: write(&format!("{name}.pem"), &cert),
            key: write(&format!("{name}-key.pem"), &key),
        };
        Self {
            ca: write("ca.pem", &ca_pem),
            other_ca: write("other-ca.pem", &other_ca_pem),
            server: pair("server", server),
            client: pair("client", client),
            rogue_client: pair("rogue-client", rogue),
            _dir: dir,
        }
    }

    pub fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }

    pub fn other_ca(&self) -> &str {
        self.other_ca.to_str().unwrap()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A self-signed CA: its certificate PEM and the issuer that signs leaves.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A leaf signed by `issuer`: (certificate PEM, private key PEM).
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("valid subject alt names");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign the leaf");
    (cert.pem(), key.serialize_pem())
}
