//! Where orders live. The service talks to the [`OrderStore`] trait only.
//!
//! Reads (`get`, `scan`) are called on the async runtime and must be cheap:
//! every implementation serves them from memory. Writes (`insert`,
//! `update_all`) may block on disk; the service runs them on the runtime's
//! blocking pool.

mod durable;
mod memory;

pub use durable::{FILE_NAME, OpenError, RedbStore};
pub use memory::MemoryStore;

use crate::pb::Order;

/// Storage for orders, keyed by id, ordered by id.
pub trait OrderStore: Send + Sync + 'static {
    /// The order with this id, if any.
    fn get(&self, id: &str) -> Result<Option<Order>, StoreError>;

    /// Examines up to `max_examined` orders with ids after `after` (from the
    /// first id when `None`), in id order, and returns those `keep` accepts.
    /// Lets a search walk the whole store in bounded steps without holding a
    /// lock or a copy of everything.
    fn scan(
        &self,
        after: Option<&str>,
        max_examined: usize,
        keep: &dyn Fn(&Order) -> bool,
    ) -> Result<ScanPage, StoreError>;

    /// Stores a new order; [`StoreError::AlreadyExists`] if its id is taken.
    fn insert(&self, order: Order) -> Result<(), StoreError>;

    /// Replaces every given order at once, or none of them:
    /// [`StoreError::NotFound`] names the first id that does not exist.
    fn update_all(&self, orders: &[Order]) -> Result<(), StoreError>;
}

/// One step of a [`OrderStore::scan`].
#[derive(Debug, Default)]
pub struct ScanPage {
    /// The examined orders that matched, in id order.
    pub orders: Vec<Order>,
    /// Where the next step starts (the last id examined), or `None` when the
    /// scan has reached the end of the store.
    pub next: Option<String>,
}

/// Why a store operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An insert found this id already stored.
    AlreadyExists(String),
    /// An update named this id, which is not stored.
    NotFound(String),
    /// The storage itself failed; nothing was changed.
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::AlreadyExists(id) => write!(f, "order {id} already exists"),
            StoreError::NotFound(id) => write!(f, "order {id} not found"),
            StoreError::Failed(why) => write!(f, "store failure: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}
