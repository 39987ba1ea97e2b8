//! Orders in PostgreSQL: several server replicas can share one database.
//!
//! Module map:
//! - this file: [`PgStore`], [`PgOptions`], [`migrate`], the
//!   [`OrderStore`] implementation, deadlines and retries.
//! - `url`: the database URL (`sslmode`, `sslrootcert`, redaction).
//! - `tls`: rustls connectors for each `sslmode`.
//! - `migrate`: embedded, versioned schema migrations
//!   (`migrations/*.sql`).
//! - `error`: what each PostgreSQL failure means for the caller.
//! - `sql`: the statements, row decoding and the search pattern.
//! - `lease`: a pooled connection lent to one call, cancelled if dropped.
//!
//! This file is over 600 lines: the `read!`/`write!` retry-and-deadline
//! machinery and the trait methods that use them are one piece; split, each
//! part would be read against the others.
//!
//! Semantics are the embedded stores' (see [`OrderStore`]):
//! - `insert`: the primary key decides; a taken id is `AlreadyExists`,
//!   also when two replicas race (exactly one wins).
//! - `update_all`: one transaction; the rows are locked in id order
//!   (`SELECT .. ORDER BY id FOR UPDATE`: no deadlock between two
//!   updates), the first missing id in request order is `NotFound` and
//!   nothing changes; otherwise every order is replaced. Row locks make
//!   concurrent updates serial.
//! - `search`: `items_folded LIKE '%q%'` (a trigram index) in id order
//!   after the cursor, `LIMIT budget`; each candidate is checked with the
//!   shared [`rule`], so results equal the embedded stores' exactly.
//! - `count`: an exact `count(*)` (an index-only scan of the primary key:
//!   milliseconds per 100k orders; the server calls it at start only).
//!
//! Failures: serialization failures and deadlocks (40001, 40P01) are
//! retried up to [`PgOptions::max_attempts`] times with jittered backoff
//! (CockroachDB reports contention that way). A write's deadline covers
//! everything before COMMIT: when it passes, the running statement is
//! cancelled (the connection's cancel token), the transaction is rolled
//! back, the connection is discarded and the answer is
//! `DeadlineExceeded`: nothing was written. Once COMMIT is sent, its
//! answer is awaited (at most [`COMMIT_GRACE`] past the deadline): a
//! failure then is `Unavailable` saying the outcome is unknown, never a
//! success nor a "nothing written". An unreachable database is
//! `Unavailable`; the pool reconnects by itself when it is back.

mod error;
mod lease;
mod migrate;
mod sql;
mod tls;
mod url;

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::task::TaskTracker;

pub use error::{PgError, PgOpenError};
pub use migrate::{LATEST_VERSION, MigrateReport};
pub use url::{DatabaseUrl, SslMode, redact};

use self::error::{Class, chain, classify, unknown_outcome, unreachable_db};
use self::lease::Lease;
use super::{OrderStore, SearchPage, StoreError, rule};
use crate::pb::Order;

/// How long a COMMIT may take past the call's deadline before the write
/// is reported as of unknown outcome (a COMMIT is normally sub-millisecond;
/// this bounds a database that stops answering mid-commit).
pub const COMMIT_GRACE: Duration = Duration::from_secs(1);

/// How long a COMMIT may take for a call without a deadline.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// How a [`PgStore`] connects.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// At most this many connections (each serves one call at a time).
    pub pool_size: usize,
    /// How long opening one connection may take (unless the URL says
    /// `connect_timeout=`).
    pub connect_timeout: Duration,
    /// Apply pending migrations when connecting. When `false` the schema
    /// must already be at [`LATEST_VERSION`] (see [`migrate`]).
    pub migrate: bool,
    /// Tries of a transaction that fails with a serialization failure or a
    /// deadlock, the first included.
    pub max_attempts: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            migrate: true,
            max_attempts: 5,
        }
    }
}

/// A pool of connections to one PostgreSQL database holding orders.
pub struct PgStore {
    pool: Pool,
    tls: MakeRustlsConnect,
    /// The redacted URL, for logs.
    target: String,
    connect_timeout: Duration,
    max_attempts: u32,
    /// Cancel requests of abandoned calls still on their way; shutdown
    /// waits for them ([`OrderStore::close`]), or a query blocked in the
    /// database would outlive the process that asked for it.
    cancels: TaskTracker,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// Applies every pending migration to the database at `url` (for a
/// `server migrate` command); see `migrate` for how replicas share it.
pub async fn migrate(url: &str) -> Result<MigrateReport, PgOpenError> {
    let url = DatabaseUrl::parse(url).map_err(PgOpenError)?;
    let (mut client, _task) = connect_one(&url, PgOptions::default().connect_timeout).await?;
    migrate::run(&mut client, &url.redacted).await
}

/// One connection outside the pool (migrations), its task spawned.
async fn connect_one(
    url: &DatabaseUrl,
    timeout: Duration,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), PgOpenError> {
    let tls = tls::connector(url.ssl_mode, url.root_cert.as_deref()).map_err(PgOpenError)?;
    let config = driver_config(url, timeout);
    let (client, connection) = config.connect(tls).await.map_err(|e| {
        PgOpenError(format!(
            "cannot connect to the database {}: {}",
            url.redacted,
            chain(&e)
        ))
    })?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, task))
}

fn driver_config(url: &DatabaseUrl, connect_timeout: Duration) -> tokio_postgres::Config {
    let mut config = url.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("order-management");
    }
    // Notice a dead peer on an idle TCP connection within about a minute.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    config
}

/// Runs a read: `|client| expr` (`expr` a `Result<T, tokio_postgres::Error>`
/// that may `.await`) on a pooled connection, until `deadline`; see
/// [`PgStore::read_step`]. A macro, not a closure-taking function: async
/// closures over borrowed arguments are not `Send` for all lifetimes yet.
macro_rules! read {
    ($store:expr, $deadline:expr, |$client:ident| $body:expr) => {{
        let store: &PgStore = $store;
        let deadline: Option<Instant> = $deadline;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = store.lease(deadline).await?;
            let outcome = {
                let $client: &Object = lease.client();
                until(deadline, async { $body }).await
            };
            if let Some(value) = store.read_step(lease, outcome, attempt)? {
                break value;
            }
        }
    }};
}

/// Runs a write transaction: `|tx| expr` (`expr` a `Result<T, Failure>`
/// that may `.await`, `tx` the open transaction), then COMMIT; retried and
/// bounded as the module doc says; see [`PgStore::write_step`].
macro_rules! write {
    ($store:expr, $deadline:expr, |$tx:ident| $body:expr) => {{
        let store: &PgStore = $store;
        let deadline: Option<Instant> = $deadline;
        let mut attempt = 0;
        let mut stale_retried = false;
        loop {
            attempt += 1;
            let mut lease = store.lease(deadline).await?;
            let outcome = {
                let client = lease.client();
                let work = async {
                    let owned = client.transaction().await.map_err(sorted)?;
                    let value = {
                        let $tx = &owned;
                        $body?
                    };
                    Ok::<_, Failure>((owned, value))
                };
                match until(deadline, work).await {
                    None => Err(Failure::Final(PgError::DeadlineExceeded)),
                    Some(Err(failure)) => Err(failure),
                    // The work finished, but too late to commit (the timer
                    // may fire after a fast reply): roll back.
                    Some(Ok(_)) if passed(deadline) => {
                        Err(Failure::Final(PgError::DeadlineExceeded))
                    }
                    Some(Ok((tx, value))) => commit(tx, deadline).await.map(|()| value),
                }
            };
            if let Some(value) = store
                .write_step(lease, outcome, attempt, &mut stale_retried, deadline)
                .await?
            {
                break value;
            }
        }
    }};
}

impl PgStore {
    /// Connects to the database at `url` (libpq URL or key-value string;
    /// `sslmode` and `sslrootcert` as in libpq), checks it answers, and
    /// applies pending migrations (or, with `options.migrate == false`,
    /// checks there are none). Errors name the database without its
    /// password and say what to do.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, PgOpenError> {
        let url = DatabaseUrl::parse(url).map_err(PgOpenError)?;
        let tls = tls::connector(url.ssl_mode, url.root_cert.as_deref()).map_err(PgOpenError)?;
        let target = url.redacted.clone();
        if options.migrate {
            let (mut client, _task) = connect_one(&url, options.connect_timeout).await?;
            migrate::run(&mut client, &target).await?;
        }
        let manager = Manager::from_config(
            driver_config(&url, options.connect_timeout),
            tls.clone(),
            ManagerConfig {
                // A connection is reused unless it is closed; a broken one
                // fails its next call once (retried for reads).
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| PgOpenError(format!("cannot create the connection pool: {e}")))?;
        let store = Self {
            pool,
            tls,
            target,
            connect_timeout: options.connect_timeout,
            max_attempts: options.max_attempts.max(1),
            cancels: TaskTracker::new(),
        };
        let mut lease = store.lease(None).await.map_err(|e| {
            PgOpenError(format!(
                "cannot connect to the database {}: {e}",
                store.target
            ))
        })?;
        let version = migrate::current_version(lease.client(), &store.target).await?;
        lease.release();
        migrate::refuse_newer(version, &store.target)?;
        if version < LATEST_VERSION {
            return Err(PgOpenError(format!(
                "the database {} has schema version {version}, this binary needs {LATEST_VERSION}: \
                 run `server migrate` first (or connect with migrations enabled)",
                store.target
            )));
        }
        Ok(store)
    }

    /// The database, as logs may name it (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Readiness: one round trip on a pooled connection, bounded by the
    /// connect timeout. `Unavailable` when the database does not answer.
    pub async fn ping(&self) -> Result<(), PgError> {
        let deadline = Instant::now() + self.connect_timeout;
        read!(self, Some(deadline), |client| client
            .simple_query("SELECT 1")
            .await
            .map(|_| ()));
        Ok(())
    }

    /// Stores `order` if the store holds no order at all; `Ok(true)` if it
    /// did. Safe when several replicas start together: at most one order
    /// is seeded, and none of them fails.
    pub async fn seed_if_empty(&self, order: Order) -> Result<bool, PgError> {
        check_text(&order)?;
        let folded = sql::folded_items(&order);
        Ok(write!(self, None, |tx| async {
            let stmt = tx.prepare_cached(sql::SEED).await.map_err(sorted)?;
            let n = tx
                .execute(&stmt, &sql::params(&order, &folded))
                .await
                .map_err(sorted)?;
            Ok::<_, Failure>(n == 1)
        }
        .await))
    }

    /// Inserts many new orders in one transaction: all of them, or none
    /// (`AlreadyExists` naming a taken id). For bulk loads and benchmarks.
    pub async fn insert_many(&self, orders: Vec<Order>) -> Result<(), PgError> {
        for order in &orders {
            check_text(order)?;
        }
        let folded: Vec<String> = orders.iter().map(sql::folded_items).collect();
        write!(self, None, |tx| async {
            let stmt = &tx.prepare_cached(sql::INSERT).await.map_err(sorted)?;
            // Pipelined: sent back to back, answered in order.
            let results = futures_util::future::join_all(
                orders
                    .iter()
                    .zip(&folded)
                    .map(|(o, f)| async move { (o, tx.execute(stmt, &sql::params(o, f)).await) }),
            )
            .await;
            for (order, result) in results {
                match result {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(Failure::Final(PgError::AlreadyExists(order.id.clone())));
                    }
                    Err(e) => return Err(sorted(e)),
                }
            }
            Ok::<_, Failure>(())
        }
        .await);
        Ok(())
    }

    /// A pooled connection, waiting at most until `deadline`.
    async fn lease(&self, deadline: Option<Instant>) -> Result<Lease, PgError> {
        let asked = Instant::now();
        let client = until(deadline, self.pool.get()).await;
        crate::metrics::store::pool_waited(asked.elapsed(), matches!(client, Some(Ok(_))));
        let client = client
            .ok_or(PgError::DeadlineExceeded)?
            .map_err(|e| self.pool_error(e))?;
        Ok(Lease {
            cancel: client.cancel_token(),
            client: Some(client),
            tls: self.tls.clone(),
            cancels: self.cancels.clone(),
        })
    }

    fn pool_error(&self, e: PoolError) -> PgError {
        let error = match e {
            PoolError::Backend(e) => match classify(&e) {
                Class::Failed => {
                    PgError::Failed(format!("cannot connect to the database: {}", chain(&e)))
                }
                _ => unreachable_db(&chain(&e)),
            },
            PoolError::Timeout(_) => {
                unreachable_db(&format!("no connection within {:?}", self.connect_timeout))
            }
            other => PgError::Failed(format!("connection pool: {other}")),
        };
        self.log(&error);
        error
    }

    fn log(&self, error: &PgError) {
        if let PgError::Unavailable(why) | PgError::Failed(why) = error {
            tracing::warn!(database = %self.target, "{why}");
        }
    }

    /// What a read attempt's outcome means: `Ok(Some(value))` the answer,
    /// `Ok(None)` try once more (the pooled connection was dead: the
    /// database restarted since it was opened), `Err` the error.
    fn read_step<T>(
        &self,
        lease: Lease,
        outcome: Option<Result<T, tokio_postgres::Error>>,
        attempt: u32,
    ) -> Result<Option<T>, PgError> {
        let Some(result) = outcome else {
            drop(lease); // armed: cancels the query, discards the connection
            return Err(PgError::DeadlineExceeded);
        };
        lease.release();
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                let class = classify(&e);
                if class != Class::Failed && attempt < 2 {
                    return Ok(None);
                }
                let error = match class {
                    Class::Failed => PgError::Failed(chain(&e)),
                    _ => unreachable_db(&chain(&e)),
                };
                self.log(&error);
                Err(error)
            }
        }
    }

    /// What a write attempt's outcome means: `Ok(Some(value))` committed,
    /// `Ok(None)` try again (after a backoff for contention), `Err` the
    /// answer. A deadline or an unknown outcome leaves the lease armed, so
    /// dropping it cancels and discards the connection.
    async fn write_step<T>(
        &self,
        lease: Lease,
        outcome: Result<T, Failure>,
        attempt: u32,
        stale_retried: &mut bool,
        deadline: Option<Instant>,
    ) -> Result<Option<T>, PgError> {
        let failure = match outcome {
            Ok(value) => {
                lease.release();
                return Ok(Some(value));
            }
            Err(failure) => failure,
        };
        match failure {
            Failure::Final(e @ (PgError::DeadlineExceeded | PgError::Unavailable(_))) => {
                drop(lease);
                self.log(&e);
                Err(e)
            }
            Failure::Final(e) => {
                lease.release();
                Err(e)
            }
            Failure::Retry(e) => {
                lease.release();
                if attempt >= self.max_attempts {
                    let error = PgError::Unavailable(format!(
                        "the database kept refusing this write for contention ({}); \
                         gave up after {attempt} attempts; nothing was written",
                        chain(&e)
                    ));
                    self.log(&error);
                    return Err(error);
                }
                backoff(attempt, deadline).await?;
                Ok(None)
            }
            Failure::Stale(e) => {
                lease.release();
                if *stale_retried {
                    let error = unreachable_db(&chain(&e));
                    self.log(&error);
                    return Err(error);
                }
                *stale_retried = true;
                Ok(None)
            }
        }
    }
}

/// Commits, waiting for the answer at most [`COMMIT_GRACE`] past the
/// deadline ([`COMMIT_WAIT`] without one).
async fn commit(
    tx: deadpool_postgres::Transaction<'_>,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let now = Instant::now();
    let commit_by = match deadline {
        Some(d) => d.max(now) + COMMIT_GRACE,
        None => now + COMMIT_WAIT,
    };
    match tokio::time::timeout_at(commit_by.into(), tx.commit()).await {
        Ok(Ok(())) => Ok(()),
        // The server answered: the transaction was rolled back.
        Ok(Err(e)) if e.code().is_some() && classify(&e) != Class::Unavailable => Err(sorted(e)),
        Ok(Err(e)) => Err(Failure::Final(unknown_outcome(&chain(&e)))),
        Err(_) => Err(Failure::Final(unknown_outcome(&format!(
            "no answer to COMMIT within {:?}",
            commit_by.saturating_duration_since(now)
        )))),
    }
}

/// A failed attempt at a write.
enum Failure {
    /// A serialization failure or deadlock: nothing was written; try again.
    Retry(tokio_postgres::Error),
    /// The connection failed before COMMIT: nothing was written; worth one
    /// more try on a fresh connection.
    Stale(tokio_postgres::Error),
    /// The answer.
    Final(PgError),
}

/// A failure before COMMIT, sorted.
fn sorted(e: tokio_postgres::Error) -> Failure {
    match classify(&e) {
        Class::Retry => Failure::Retry(e),
        Class::Unavailable => Failure::Stale(e),
        Class::Failed => Failure::Final(PgError::Failed(chain(&e))),
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// Waits before retry `attempt + 1`: 10 ms x 2^(attempt-1), +-50 %
/// jitter; `DeadlineExceeded` instead if that would pass the deadline.
async fn backoff(attempt: u32, deadline: Option<Instant>) -> Result<(), PgError> {
    let base = Duration::from_millis(10) * 2u32.pow(attempt.saturating_sub(1).min(6));
    let pause = base.mul_f64(0.5 + jitter());
    if deadline.is_some_and(|d| Instant::now() + pause >= d) {
        return Err(PgError::DeadlineExceeded);
    }
    tokio::time::sleep(pause).await;
    Ok(())
}

/// A number in [0, 1), different per call (no RNG dependency: std's
/// randomly keyed hasher over the time).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `f`, or `None` if `deadline` passes first (or has passed already:
/// then `f` is not started).
async fn until<F: Future>(deadline: Option<Instant>, f: F) -> Option<F::Output> {
    match deadline {
        Some(d) if d <= Instant::now() => None,
        Some(d) => tokio::time::timeout_at(d.into(), f).await.ok(),
        None => Some(f.await),
    }
}

fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| d <= Instant::now())
}

/// PostgreSQL text cannot hold U+0000. The service's validation refuses it
/// for every backend first; this is the last guard, for direct users.
fn check_text(order: &Order) -> Result<(), PgError> {
    let bad = |field: &str| {
        PgError::Failed(format!(
            "order {:?}: {field} contains a NUL character (U+0000), which PostgreSQL text cannot store",
            order.id
        ))
    };
    if order.id.contains('\0') {
        return Err(bad("the id"));
    }
    if order.items.iter().any(|i| i.contains('\0')) {
        return Err(bad("an item"));
    }
    if order.description.contains('\0') {
        return Err(bad("the description"));
    }
    if order.destination.contains('\0') {
        return Err(bad("the destination"));
    }
    Ok(())
}

#[async_trait]
impl OrderStore for PgStore {
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(self.ping().await?)
    }

    async fn close(&self) {
        self.cancels.close();
        // Each cancel is bounded by CANCEL_WAIT; a second more for the
        // connections to close.
        let wait = lease::CANCEL_WAIT + Duration::from_secs(1);
        if tokio::time::timeout(wait, self.cancels.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                database = %self.target,
                "queries of abandoned calls may still run: their cancel requests did not finish"
            );
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        Ok(self.get_order(id).await?)
    }

    async fn search(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, StoreError> {
        Ok(self.search_step(query, after, budget).await?)
    }

    async fn insert(&self, order: Order, deadline: Option<Instant>) -> Result<(), StoreError> {
        Ok(self.insert_order(order, deadline).await?)
    }

    async fn update_all(
        &self,
        orders: Vec<Order>,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        Ok(self.update_orders(orders, deadline).await?)
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.count_orders().await?)
    }
}

/// The trait's operations, with this store's own error type.
impl PgStore {
    async fn get_order(&self, id: &str) -> Result<Option<Order>, PgError> {
        Ok(read!(self, None, |client| {
            let stmt = client.prepare_cached(sql::GET).await?;
            let row = client.query_opt(&stmt, &[&id]).await?;
            row.as_ref().map(sql::order).transpose()
        }))
    }

    async fn search_step(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, PgError> {
        let needle = rule::fold(query);
        let pattern = sql::contains_pattern(&needle);
        let budget = budget.max(1);
        let limit = i64::try_from(budget).unwrap_or(i64::MAX);
        // Not a cached prepared statement: after a few runs PostgreSQL would
        // plan that for any pattern (a generic plan), which walks the primary
        // key for a rare needle instead of asking the trigram index. An
        // unnamed statement is planned for the pattern at hand, still in
        // one round trip.
        let rows = read!(self, None, |client| match after {
            None => {
                client
                    .query_typed(
                        sql::SEARCH_FIRST,
                        &[(&pattern, Type::TEXT), (&limit, Type::INT8)],
                    )
                    .await
            }
            Some(after) => {
                client
                    .query_typed(
                        sql::SEARCH_AFTER,
                        &[
                            (&pattern, Type::TEXT),
                            (&after, Type::TEXT),
                            (&limit, Type::INT8),
                        ],
                    )
                    .await
            }
        });
        let mut page = SearchPage {
            examined: rows.len(),
            ..SearchPage::default()
        };
        if rows.len() == budget {
            page.next = rows.last().map(|r| r.get::<_, String>(0));
        }
        for row in &rows {
            let order = sql::order(row).map_err(|e| PgError::Failed(chain(&e)))?;
            if rule::matches(&order, &needle) {
                page.orders.push(order);
            }
        }
        Ok(page)
    }

    async fn insert_order(&self, order: Order, deadline: Option<Instant>) -> Result<(), PgError> {
        check_text(&order)?;
        let folded = sql::folded_items(&order);
        write!(self, deadline, |tx| async {
            let stmt = tx.prepare_cached(sql::INSERT).await.map_err(sorted)?;
            match tx.execute(&stmt, &sql::params(&order, &folded)).await {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(Failure::Final(PgError::AlreadyExists(order.id.clone())))
                }
                Err(e) => Err(sorted(e)),
            }
        }
        .await);
        Ok(())
    }

    async fn update_orders(
        &self,
        orders: Vec<Order>,
        deadline: Option<Instant>,
    ) -> Result<(), PgError> {
        for order in &orders {
            check_text(order)?;
        }
        let folded: Vec<String> = orders.iter().map(sql::folded_items).collect();
        let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        write!(self, deadline, |tx| async {
            let lock = tx.prepare_cached(sql::LOCK).await.map_err(sorted)?;
            let found: std::collections::HashSet<String> = tx
                .query(&lock, &[&ids])
                .await
                .map_err(sorted)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if let Some(missing) = ids.iter().find(|id| !found.contains(**id)) {
                return Err(Failure::Final(PgError::NotFound((*missing).to_owned())));
            }
            let update = tx.prepare_cached(sql::UPDATE).await.map_err(sorted)?;
            // Pipelined, applied in request order.
            let results = futures_util::future::join_all(
                orders
                    .iter()
                    .zip(&folded)
                    .map(|(o, f)| async { tx.execute(&update, &sql::params(o, f)).await }),
            )
            .await;
            for result in results {
                result.map_err(sorted)?;
            }
            Ok::<_, Failure>(())
        }
        .await);
        Ok(())
    }

    async fn count_orders(&self) -> Result<u64, PgError> {
        let n: i64 = read!(self, None, |client| client
            .query_one(sql::COUNT, &[])
            .await
            .map(|row| row.get(0)));
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::AlreadyExists(id) => Self::AlreadyExists(id),
            PgError::NotFound(id) => Self::NotFound(id),
            PgError::DeadlineExceeded => Self::DeadlineExceeded,
            PgError::Unavailable(why) => Self::Unavailable(why),
            PgError::Failed(why) => Self::Failed(why),
        }
    }
}
