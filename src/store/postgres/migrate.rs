//! Versioned schema migrations, embedded in the binary.
//!
//! Each migration is a SQL file (`migrations/NNNN_name.sql`) applied in
//! its own transaction, which also records it in
//! `order_schema_migrations(version, name, applied_at)`. Every
//! transaction first takes `pg_advisory_xact_lock(LOCK_KEY)`, so replicas
//! starting together apply each migration once: the others wait, then see
//! it recorded and skip it. The version row is inserted *before* the
//! migration's SQL runs, so even without the lock (CockroachDB, which has
//! no advisory locks) a second migrator blocks on that row's key and then
//! fails with a unique violation, which is taken as "already applied".
//!
//! A database whose newest recorded version is above this binary's
//! [`LATEST_VERSION`] is refused (an older binary must not write a schema
//! it does not know), naming both versions.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::error::{PgOpenError, chain};

/// One embedded migration.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order. Append only: never edit one that
/// has shipped.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "orders",
    sql: include_str!("migrations/0001_orders.sql"),
}];

/// The schema version this binary reads and writes.
pub const LATEST_VERSION: i32 = 1;

/// The advisory lock migrations hold (an arbitrary constant: "orders" in
/// ASCII).
const LOCK_KEY: i64 = 0x6f72_6465_7273;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS order_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// What [`super::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// The schema version found (0: an empty database).
    pub from: i32,
    /// The version now (always [`LATEST_VERSION`] on success).
    pub to: i32,
    /// The migrations this call applied, `(version, name)`; empty when
    /// the database was up to date (or another replica did the work).
    pub applied: Vec<(i32, String)>,
}

impl std::fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.applied.is_empty() {
            write!(f, "database schema at version {}: up to date", self.to)
        } else {
            let names: Vec<String> = self
                .applied
                .iter()
                .map(|(v, n)| format!("{v} ({n})"))
                .collect();
            write!(
                f,
                "database schema migrated from version {} to {}: applied {}",
                self.from,
                self.to,
                names.join(", ")
            )
        }
    }
}

/// Whether the server is CockroachDB (no advisory locks there).
async fn is_cockroach(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client.query_one("SELECT version()", &[]).await?;
    Ok(row.get::<_, String>(0).contains("CockroachDB"))
}

/// Brings the schema to [`LATEST_VERSION`]; see the module doc.
pub(super) async fn run(client: &mut Client, target: &str) -> Result<MigrateReport, PgOpenError> {
    let failed = |what: &str, e: &tokio_postgres::Error| {
        PgOpenError(format!(
            "cannot migrate the database {target}: {what}: {}",
            chain(e)
        ))
    };
    check_encoding(client, target).await?;
    let cockroach = is_cockroach(client)
        .await
        .map_err(|e| failed("cannot read the server version", &e))?;
    let from = current_version(client, target).await?;
    refuse_newer(from, target)?;
    let mut report = MigrateReport {
        from,
        to: from,
        applied: Vec::new(),
    };
    for migration in MIGRATIONS {
        if migration.version <= report.to {
            continue;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply(client, migration, cockroach, target).await {
                Ok(Applied::Now) => {
                    report
                        .applied
                        .push((migration.version, migration.name.to_owned()));
                    break;
                }
                Ok(Applied::Before) => break,
                Err(Attempt::Retry(_)) if attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(Attempt::Retry(e)) | Err(Attempt::Failed(e)) => {
                    return Err(failed(
                        &format!("migration {} ({})", migration.version, migration.name),
                        &e,
                    ));
                }
                Err(Attempt::Refused(e)) => return Err(e),
            }
        }
        report.to = migration.version;
    }
    report.to = current_version(client, target).await?;
    refuse_newer(report.to, target)?;
    Ok(report)
}

enum Applied {
    Now,
    /// Another migrator had applied it.
    Before,
}

enum Attempt {
    Retry(tokio_postgres::Error),
    Failed(tokio_postgres::Error),
    Refused(PgOpenError),
}

async fn apply(
    client: &mut Client,
    migration: &Migration,
    cockroach: bool,
    target: &str,
) -> Result<Applied, Attempt> {
    let sorted = |e: tokio_postgres::Error| match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Attempt::Retry(e)
        }
        _ => Attempt::Failed(e),
    };
    let tx = client.transaction().await.map_err(sorted)?;
    if !cockroach {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(sorted)?;
    }
    tx.batch_execute(CREATE_TABLE).await.map_err(sorted)?;
    let newest: Option<i32> = tx
        .query_one("SELECT max(version) FROM order_schema_migrations", &[])
        .await
        .map_err(sorted)?
        .get(0);
    refuse_newer(newest.unwrap_or(0), target).map_err(Attempt::Refused)?;
    if newest.unwrap_or(0) >= migration.version {
        tx.rollback().await.map_err(sorted)?;
        return Ok(Applied::Before);
    }
    // The version row first: a concurrent migrator without the lock waits
    // on this key and then fails with a unique violation.
    match tx
        .execute(
            "INSERT INTO order_schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(Applied::Before),
        Err(e) => return Err(sorted(e)),
    }
    tx.batch_execute(migration.sql).await.map_err(sorted)?;
    match tx.commit().await {
        Ok(()) => Ok(Applied::Now),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Applied::Before),
        Err(e) => Err(sorted(e)),
    }
}

/// The newest applied version, 0 for a database without the table.
pub(super) async fn current_version(client: &Client, target: &str) -> Result<i32, PgOpenError> {
    let failed = |e: &tokio_postgres::Error| {
        PgOpenError(format!(
            "cannot read the schema version of the database {target}: {}",
            chain(e)
        ))
    };
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('order_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| failed(&e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let newest: Option<i32> = client
        .query_one("SELECT max(version) FROM order_schema_migrations", &[])
        .await
        .map_err(|e| failed(&e))?
        .get(0);
    Ok(newest.unwrap_or(0))
}

pub(super) fn refuse_newer(found: i32, target: &str) -> Result<(), PgOpenError> {
    if found > LATEST_VERSION {
        return Err(PgOpenError(format!(
            "the database {target} has schema version {found}, newer than this binary's \
             {LATEST_VERSION}: it was migrated by a newer release. Run that release (or newer); \
             this one will not read or write a schema it does not know"
        )));
    }
    Ok(())
}

/// Orders are Unicode text: a database in another encoding would refuse
/// some of them (or, SQL_ASCII, compare bytes of any encoding).
async fn check_encoding(client: &Client, target: &str) -> Result<(), PgOpenError> {
    let encoding: String = client
        .query_one("SHOW server_encoding", &[])
        .await
        .map_err(|e| {
            PgOpenError(format!(
                "cannot read the encoding of the database {target}: {}",
                chain(&e)
            ))
        })?
        .get(0);
    if !encoding.eq_ignore_ascii_case("UTF8") {
        return Err(PgOpenError(format!(
            "the database {target} has encoding {encoding}; orders need UTF8 \
             (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_the_latest_is_last() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST_VERSION));
    }

    #[test]
    fn a_newer_database_is_refused_naming_both_versions() {
        let err = refuse_newer(LATEST_VERSION + 1, "postgres://u@h:5432/d").unwrap_err();
        assert!(
            err.0
                .contains(&format!("schema version {}", LATEST_VERSION + 1)),
            "{err}"
        );
        assert!(
            err.0.contains(&format!("this binary's {LATEST_VERSION}")),
            "{err}"
        );
        assert!(refuse_newer(LATEST_VERSION, "x").is_ok());
    }
}
