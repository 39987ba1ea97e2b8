//! The server certificate's validity period, checked at start.
//!
//! An expired (or not yet valid) certificate makes every client that checks
//! dates refuse the handshake, which looks like an unreachable server from
//! their side; the server says so in its log at start instead of starting
//! silently. It still starts: clients that pin the certificate or ignore
//! dates keep working, and a renewal that lags by a minute must not become
//! an outage of a server that cannot start. One that expires within
//! [`WARN_BEFORE`] is warned about too.

use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How long before its end a certificate is warned about.
pub const WARN_BEFORE: Duration = Duration::from_secs(14 * 24 * 3600);

/// What is wrong with the validity of the first (leaf) certificate in
/// `pem` at `now`, if anything; `None` also when it does not parse (the
/// TLS setup reports that).
pub fn validity_problem(pem: &[u8], now: SystemTime) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let validity = cert.validity();
    let now = i64::try_from(now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs()).ok()?;
    let (from, until) = (validity.not_before, validity.not_after);
    if now < from.timestamp() {
        return Some(format!(
            "is not valid before {from} (now it is refused by clients that check dates)"
        ));
    }
    if now >= until.timestamp() {
        return Some(format!(
            "expired at {until} (clients that check dates refuse it: renew it)"
        ));
    }
    let left = until.timestamp() - now;
    (left < WARN_BEFORE.as_secs() as i64)
        .then(|| format!("expires at {until}, in {} h: renew it", left / 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(from: time::OffsetDateTime, until: time::OffsetDateTime) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = from;
        params.not_after = until;
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn expired_not_yet_valid_and_expiring_certificates_are_named() {
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        let at = SystemTime::now();
        let expired = pem(now - day * 30, now - day);
        let problem = validity_problem(expired.as_bytes(), at).unwrap();
        assert!(problem.starts_with("expired at "), "{problem}");
        let early = pem(now + day, now + day * 30);
        assert!(
            validity_problem(early.as_bytes(), at)
                .unwrap()
                .contains("not valid before")
        );
        let soon = pem(now - day, now + day * 2);
        assert!(
            validity_problem(soon.as_bytes(), at)
                .unwrap()
                .contains("expires at")
        );
        let fine = pem(now - day, now + day * 365);
        assert_eq!(validity_problem(fine.as_bytes(), at), None);
        assert_eq!(validity_problem(b"not a certificate", at), None);
    }
}
