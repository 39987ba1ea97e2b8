//! PEM files given to the TLS options (server and client), read and
//! checked at start so that a wrong file is reported by name with what is
//! wrong with it (unreadable, not a certificate, expired, a key that does
//! not match its certificate) instead of rustls' "transport error" at the
//! first handshake, or nothing at all.

use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM text of a file of certificates (a CA, a chain): at least one,
/// each parseable and valid now.
pub fn certificates(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let pem = read(path, what)?;
    parse_certificates(&pem, path, what)?;
    Ok(pem)
}

/// The PEM texts of a certificate chain and its private key, checked as
/// [`certificates`] and that the key is the certificate's.
pub fn identity(cert: &Path, key: &Path, what: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let cert_pem = read(cert, &format!("{what} certificate"))?;
    let chain = parse_certificates(&cert_pem, cert, &format!("{what} certificate"))?;
    let key_pem = read(key, &format!("{what} key"))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        let holds = if CertificateDer::pem_slice_iter(&key_pem).any(|c| c.is_ok()) {
            "holds a certificate, not a private key"
        } else {
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
        };
        format!("the {what} key {} {holds}", key.display())
    })?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, private, &provider) {
        Ok(_) => Ok((cert_pem, key_pem)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "the {what} key {} does not match the certificate {}",
            key.display(),
            cert.display()
        )),
        Err(e) => Err(format!(
            "the {what} key {} cannot be used: {e}",
            key.display()
        )),
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn parse_certificates(
    pem: &[u8],
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the {what} {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        let holds = if PrivateKeyDer::from_pem_slice(pem).is_ok() {
            "holds a private key, not a certificate"
        } else {
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        };
        return Err(format!("the {what} {} {holds}", path.display()));
    }
    for (i, der) in certs.iter().enumerate() {
        let which = if certs.len() == 1 {
            String::new()
        } else {
            format!(" (certificate {} of {})", i + 1, certs.len())
        };
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            format!(
                "the {what} {}{which} is not an X.509 certificate: {e}",
                path.display()
            )
        })?;
        let validity = cert.validity();
        let now = x509_parser::time::ASN1Time::now();
        if now > validity.not_after {
            return Err(format!(
                "the {what} {}{which} expired on {}",
                path.display(),
                validity.not_after
            ));
        }
        if now < validity.not_before {
            return Err(format!(
                "the {what} {}{which} is not valid before {}",
                path.display(),
                validity.not_before
            ));
        }
    }
    Ok(certs)
}
