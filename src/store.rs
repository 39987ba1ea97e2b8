//! Where orders live. The service talks to the [`OrderStore`] trait only.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::pb::Order;

/// Storage for orders, keyed by id.
pub trait OrderStore: Send + Sync + 'static {
    /// The order with this id, if any.
    fn get(&self, id: &str) -> Result<Option<Order>, StoreError>;
}

/// A failure of the storage itself (not of the caller's input).
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Orders in a map in memory: fast, and gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    orders: RwLock<BTreeMap<String, Order>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `orders` (later ones win on a repeated id).
    pub fn with_orders(orders: impl IntoIterator<Item = Order>) -> Self {
        let map = orders.into_iter().map(|o| (o.id.clone(), o)).collect();
        Self {
            orders: RwLock::new(map),
        }
    }
}

impl OrderStore for MemoryStore {
    fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        let orders = self.orders.read().map_err(|_| poisoned())?;
        Ok(orders.get(id).cloned())
    }
}

fn poisoned() -> StoreError {
    StoreError("in-memory store lock poisoned by an earlier panic".into())
}
