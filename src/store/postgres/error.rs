//! What a PostgreSQL failure means for the caller.
//!
//! | cause | answer |
//! | --- | --- |
//! | unique violation (23505) on insert | `AlreadyExists(id)` |
//! | serialization failure (40001), deadlock (40P01) | retried (see `retry`); then `Unavailable` |
//! | no connection, connection lost, server shutting down or starting (class 08, 57P01-57P03, 53300), TLS or I/O errors | `Unavailable("the database ... is unreachable ...")` |
//! | the connection lost during COMMIT | `Unavailable("... the outcome of this write is unknown ...")` |
//! | the call's deadline | `DeadlineExceeded` (the query is cancelled) |
//! | anything else (a bug, a schema drift, a bad value) | `Failed(message)` |
//!
//! Messages name the database by its redacted URL: never a password.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

/// Why a [`super::PgStore`] call did not happen; maps one to one onto the
/// trait's `StoreError` (see `impl From<PgError> for StoreError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    AlreadyExists(String),
    NotFound(String),
    DeadlineExceeded,
    /// The database could not be reached, or a write's outcome is unknown:
    /// worth retrying (gRPC UNAVAILABLE).
    Unavailable(String),
    Failed(String),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyExists(id) => write!(f, "order {id} already exists"),
            Self::NotFound(id) => write!(f, "order {id} not found"),
            Self::DeadlineExceeded => {
                f.write_str("the deadline passed before the write was committed")
            }
            Self::Unavailable(why) => f.write_str(why),
            Self::Failed(why) => write!(f, "store failure: {why}"),
        }
    }
}

impl std::error::Error for PgError {}

/// What to do about one failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// Try the whole transaction again (40001, 40P01).
    Retry,
    /// The database is unreachable (or went away).
    Unavailable,
    /// A definite, permanent failure.
    Failed,
}

pub(super) fn classify(e: &tokio_postgres::Error) -> Class {
    if let Some(code) = e.code() {
        return match code {
            c if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                Class::Retry
            }
            c if c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::IDLE_SESSION_TIMEOUT =>
            {
                Class::Unavailable
            }
            _ => Class::Failed,
        };
    }
    if e.is_closed() || has_io_source(e) {
        return Class::Unavailable;
    }
    // No SQLSTATE: the driver's own errors. Those about the link (connect,
    // TLS, authentication exchange cut short) are the database being
    // unreachable; encode/decode/row-count are bugs.
    let text = e.to_string();
    if text.starts_with("error connecting")
        || text.starts_with("error performing TLS")
        || text.starts_with("error communicating")
        || text.starts_with("timeout waiting")
    {
        Class::Unavailable
    } else {
        Class::Failed
    }
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The error and its causes, `: `-separated (tokio-postgres's `Display`
/// alone says only "db error" or "error connecting to server").
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The answer for a database that cannot be reached. (The message goes
/// to clients: it does not name the database; the store logs that.)
pub(super) fn unreachable_db(why: &str) -> PgError {
    PgError::Unavailable(format!("the database is unreachable: {why}"))
}

/// The answer for a COMMIT whose result never came.
pub(super) fn unknown_outcome(why: &str) -> PgError {
    PgError::Unavailable(format!(
        "the connection to the database failed while committing, so the outcome of this \
         write is unknown (it may or may not have been stored: read it back before \
         retrying): {why}"
    ))
}

/// Why a store could not be opened or migrated. The message names the
/// database (redacted) and says what to do; the server prints it and
/// exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOpenError(pub String);

impl std::fmt::Display for PgOpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgOpenError {}

impl From<PgError> for PgOpenError {
    fn from(e: PgError) -> Self {
        Self(e.to_string())
    }
}
