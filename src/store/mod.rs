//! Where orders live. The service talks to the [`OrderStore`] trait only.
//!
//! The trait is async so that a store may wait on a disk or a network
//! without stalling the runtime; each implementation decides what it runs
//! inline and what it sends elsewhere:
//!
//! - [`MemoryStore`]: everything inline (a map behind a lock; nothing waits).
//! - [`RedbStore`]: `get` answers inline from a small cache of decoded
//!   orders when it can, and otherwise reads the file on the runtime's
//!   blocking pool; `search` and `count` always run on the blocking pool;
//!   writes go to the store's writer thread, which commits everything
//!   waiting in one transaction (group commit). See [`durable`].
//!
//! Module map:
//! - [`rule`]: the search rule (folding, matching, trigrams), shared by all.
//! - `memory`: [`MemoryStore`].
//! - [`postgres`]: [`PgStore`], orders in PostgreSQL, which several
//!   server replicas can share.
//! - [`durable`]: [`RedbStore`]: opening, reads, the trait.
//! - `cache`: the decoded-order cache and why it is never stale.
//! - `schema`: tables, format versions, migration, index maintenance
//!   (including the list of inserted orders not yet indexed).
//! - `writer`: the writer thread and how one group is applied.
//! - `search`: a search step over the trigram index (or a scan).
//! - `tests`: the stores' behaviour (groups, FIFO, deadlines, failed
//!   commits, search against brute force, files).
//! - `verify`: [`RedbStore::verify`], a full check of a data file.

pub mod embedded;
mod memory;
pub mod postgres;
pub mod rule;

pub use self::embedded::{
    FILE_NAME, FORMAT_VERSION, OpenError, RedbOptions, RedbStore, VerifyReport,
};
pub use self::memory::MemoryStore;
pub use self::postgres::{PgOptions, PgStore};

use std::time::Instant;

use async_trait::async_trait;

use crate::pb::Order;

/// Storage for orders, keyed by id, ordered by id.
///
/// Writes take effect in the order they were called (FIFO). A write that
/// returns `Ok` is stored (durably, for a durable store); one that returns
/// an error changed nothing.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// The order with this id, if any.
    async fn get(&self, id: &str) -> Result<Option<Order>, StoreError>;

    /// One bounded step of a search: the orders matching `query` (see
    /// [`rule`]) with ids after `after` (from the first id when `None`), in
    /// id order, examining at most `budget` candidates. Lets a search walk
    /// the whole store in bounded steps without holding a lock or a copy of
    /// everything.
    async fn search(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, StoreError>;

    /// Stores a new order; [`StoreError::AlreadyExists`] if its id is
    /// taken; [`StoreError::DeadlineExceeded`] (and nothing stored) if
    /// `deadline` passes before the write is committed.
    async fn insert(&self, order: Order, deadline: Option<Instant>) -> Result<(), StoreError>;

    /// Replaces every given order at once, or none of them:
    /// [`StoreError::NotFound`] names the first id that does not exist.
    /// `deadline` as for [`OrderStore::insert`].
    async fn update_all(
        &self,
        orders: Vec<Order>,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError>;

    /// How many orders are stored (cheap: no scan).
    async fn count(&self) -> Result<u64, StoreError>;

    /// Whether the store can serve now (a database that answers); health
    /// follows it. Stores in this process are always ready.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called once at shutdown, after the last call ended: finishes what
    /// the store still owes the outside world (PostgreSQL: the cancel
    /// requests of abandoned calls). Bounded in time.
    async fn close(&self) {}
}

/// One step of an [`OrderStore::search`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SearchPage {
    /// The matching orders found in this step, in id order.
    pub orders: Vec<Order>,
    /// Where the next step starts (pass it as `after`), or `None` when the
    /// search is done.
    pub next: Option<String>,
    /// How many candidates this step looked at (fetched and checked).
    pub examined: usize,
}

/// Why a store operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An insert found this id already stored.
    AlreadyExists(String),
    /// An update named this id, which is not stored.
    NotFound(String),
    /// The call's deadline passed before its write was committed; nothing
    /// of it was written.
    DeadlineExceeded,
    /// The storage could not be reached (a database store: the database
    /// is down or unreachable), or a write's outcome is unknown: the
    /// message says which. Worth retrying (gRPC UNAVAILABLE).
    Unavailable(String),
    /// The storage itself failed; nothing was changed.
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::AlreadyExists(id) => write!(f, "order {id} already exists"),
            StoreError::NotFound(id) => write!(f, "order {id} not found"),
            StoreError::DeadlineExceeded => {
                f.write_str("the deadline passed before the write was committed")
            }
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
            StoreError::Failed(why) => write!(f, "store failure: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}
