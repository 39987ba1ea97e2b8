//! The database URL: what tokio-postgres parses, plus the TLS settings it
//! does not (`sslmode=verify-ca|verify-full`, `sslrootcert`), and a
//! description of the target that never holds the password.
//!
//! Both libpq forms are accepted: `postgres://user:pw@host:port/db?k=v&..`
//! and `host=... dbname=... k=v`. A Unix socket is a host that is an
//! absolute path (`?host=/run/postgresql`, or `%2Frun%2Fpostgresql` as the
//! URL's host).

use std::path::PathBuf;

use tokio_postgres::config::Host;

/// How the connection to the database is protected (libpq's `sslmode`).
///
/// Unix sockets never use TLS, whatever the mode (as with libpq).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, certificate not checked (libpq's
    /// default, and ours when the URL names no mode).
    Prefer,
    /// TLS or no connection; certificate not checked.
    Require,
    /// TLS; the certificate must chain to a trusted root; any host name.
    VerifyCa,
    /// TLS; the certificate must chain to a trusted root and name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            // libpq's `allow` tries plain first: the closest we do is prefer.
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "unknown sslmode {other:?} in the database URL \
                     (expected disable, prefer, require, verify-ca or verify-full)"
                ));
            }
        })
    }

    /// What tokio-postgres is told: it knows only disable/prefer/require;
    /// the verify modes are TLS-required with our own certificate checks.
    fn driver_value(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require | Self::VerifyCa | Self::VerifyFull => "require",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A parsed database URL.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// For tokio-postgres (holds the password; its `Debug` redacts it).
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted roots for the verify modes;
    /// without one, the webpki (Mozilla) roots built into the binary.
    pub root_cert: Option<PathBuf>,
    /// `postgres://user@host:port/db?sslmode=..`: for logs and errors.
    pub redacted: String,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl DatabaseUrl {
    /// Parses `url`. An error message never contains the URL's password
    /// (nor the URL itself: only [`redact`]ed).
    pub fn parse(url: &str) -> Result<Self, String> {
        let invalid = |why: String| format!("invalid database URL {}: {why}", redact(url));
        let (rest, ssl, root) = if let Some(form) = url_form(url) {
            split_url_params(url, form)
        } else {
            split_key_values(url)
        }
        .map_err(invalid)?;
        let ssl_mode = match ssl {
            Some(v) => SslMode::parse(&v).map_err(invalid)?,
            None => SslMode::Prefer,
        };
        let config: tokio_postgres::Config = with_driver_ssl_mode(&rest, ssl_mode)
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(super::error::chain(&e)))?;
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(invalid("it names no host".into()));
        }
        let redacted = describe(&config, ssl_mode);
        Ok(Self {
            config,
            ssl_mode,
            root_cert: root.map(PathBuf::from),
            redacted,
        })
    }
}

/// The URL form's prefix, if `url` is one.
fn url_form(url: &str) -> Option<&'static str> {
    ["postgres://", "postgresql://"]
        .into_iter()
        .find(|p| url.starts_with(p))
}

type Split = (String, Option<String>, Option<String>);

/// Takes `sslmode` and `sslrootcert` out of a URL's query.
fn split_url_params(url: &str, _prefix: &str) -> Result<Split, String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let (mut ssl, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("parameter {:?} has no value", key_only(pair)))?;
        match key {
            "sslmode" => ssl = Some(percent_decode(value)?),
            "sslrootcert" => root = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok((out, ssl, root))
}

fn key_only(pair: &str) -> &str {
    pair.split('=').next().unwrap_or(pair)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid percent encoding")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent encoding is not UTF-8".into())
}

/// Takes `sslmode` and `sslrootcert` out of a `key=value ...` string, and
/// writes the rest back quoted.
fn split_key_values(s: &str) -> Result<Split, String> {
    let (mut ssl, mut root) = (None, None);
    let mut out = String::new();
    for (key, value) in key_values(s)? {
        match key.as_str() {
            "sslmode" => ssl = Some(value),
            "sslrootcert" => root = Some(value),
            _ => {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                out.push_str(&format!("{key}='{quoted}' "));
            }
        }
    }
    Ok((out, ssl, root))
}

/// libpq's `key = value` pairs; values may be single-quoted, with `\`
/// escapes.
fn key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("parameter {key:?} has no value"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn with_driver_ssl_mode(rest: &str, mode: SslMode) -> String {
    let value = mode.driver_value();
    if url_form(rest).is_some() {
        let sep = if rest.contains('?') { '&' } else { '?' };
        format!("{rest}{sep}sslmode={value}")
    } else {
        format!("{rest}sslmode={value}")
    }
}

/// `postgres://user@host:port/db?sslmode=..`, from the parsed config: no
/// password, whatever the URL held.
pub fn describe(config: &tokio_postgres::Config, ssl: SslMode) -> String {
    let user = config.get_user().unwrap_or("");
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    format!(
        "postgres://{user}@{}/{db}?sslmode={}",
        hosts.join(","),
        ssl.as_str()
    )
}

/// `url` with any password replaced by `***`: the userinfo's
/// (`user:pw@`) and a `password=` parameter's, in either form. For
/// messages about a URL that did not parse.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(prefix) = url_form(url) {
        let rest = &url[prefix.len()..];
        if let Some(at) = rest.find('@') {
            // tokio-postgres takes credentials up to the first '@' anywhere.
            let creds = &rest[..at];
            if let Some(colon) = creds.find(':') {
                out = format!("{prefix}{}:***{}", &creds[..colon], &rest[at..]);
            }
        }
    }
    redact_password_params(&out)
}

/// Replaces the value of every `password=` parameter (URL query or
/// key-value form) with `***`.
fn redact_password_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("password") {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let preceded_ok = head.is_empty() || head.ends_with(['?', '&', ' ', '\t', '\n']);
        let after_key = &tail["password".len()..];
        let trimmed = after_key.trim_start();
        if preceded_ok && trimmed.starts_with('=') {
            out.push_str("password=***");
            let value = trimmed[1..].trim_start();
            let end = if let Some(quoted) = value.strip_prefix('\'') {
                // Up to the closing quote (skipping escaped characters).
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' => {
                            end = i + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                1 + end
            } else {
                value.find(['&', ' ', '\t', '\n']).unwrap_or(value.len())
            };
            rest = &value[end..];
        } else {
            out.push_str("password");
            rest = after_key;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_and_root_cert_are_ours_the_rest_is_the_drivers() {
        let url = DatabaseUrl::parse(
            "postgres://app:s3cret@db.example:6543/orders?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=om",
        )
        .unwrap();
        assert_eq!(url.ssl_mode, SslMode::VerifyFull);
        assert_eq!(url.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            url.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(url.config.get_application_name(), Some("om"));
        assert_eq!(url.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(
            url.redacted,
            "postgres://app@db.example:6543/orders?sslmode=verify-full"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[test]
    fn unix_sockets_and_key_value_strings() {
        let url = DatabaseUrl::parse("postgres://postgres@%2Ftmp%2Fpg/db").unwrap();
        assert_eq!(
            url.redacted,
            "postgres://postgres@/tmp/pg:5432/db?sslmode=prefer"
        );
        let url =
            DatabaseUrl::parse("postgresql://postgres@/db?host=/tmp/pg&sslmode=disable").unwrap();
        assert_eq!(
            url.redacted,
            "postgres://postgres@/tmp/pg:5432/db?sslmode=disable"
        );
        let url = DatabaseUrl::parse(
            "host=/tmp/pg user=postgres password='a b\\'c' dbname=db sslmode=verify-ca",
        )
        .unwrap();
        assert_eq!(url.ssl_mode, SslMode::VerifyCa);
        assert_eq!(url.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(
            url.redacted,
            "postgres://postgres@/tmp/pg:5432/db?sslmode=verify-ca"
        );
    }

    #[test]
    fn errors_never_show_the_password() {
        for bad in [
            "postgres://app:s3cret@db/orders?sslmode=bogus",
            "postgres://app:s3cret@db:notaport/orders",
            "postgres://app:s3cret@db/orders?password=s3cret&nonsense=1",
            "host=db password=s3cret sslmode=bogus",
            "host=db password='s3cret' bogus=1",
            "postgres://app:s3cret@/orders",
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(!err.contains("s3cret"), "{bad} -> {err}");
            assert!(err.contains("***") || !bad.contains(":s3cret@"), "{err}");
        }
        assert_eq!(
            redact("postgres://u:p@h/d?password=x&a=b"),
            "postgres://u:***@h/d?password=***&a=b"
        );
        assert_eq!(
            redact("host=h password = 'x y' user=u"),
            "host=h password=*** user=u"
        );
    }
}
