//! Orders in a sorted map in memory: for tests and `--in-memory`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{OrderStore, ScanPage, StoreError};
use crate::pb::Order;

/// Orders in a `BTreeMap` behind a lock; gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    orders: RwLock<BTreeMap<String, Order>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `orders` (a later order wins on a repeated id).
    pub fn with_orders(orders: impl IntoIterator<Item = Order>) -> Self {
        let map = orders.into_iter().map(|o| (o.id.clone(), o)).collect();
        Self {
            orders: RwLock::new(map),
        }
    }

    /// How many orders are stored.
    pub fn len(&self) -> usize {
        self.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, BTreeMap<String, Order>>, StoreError> {
        self.orders.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, BTreeMap<String, Order>>, StoreError> {
        self.orders.write().map_err(|_| poisoned())
    }
}

impl OrderStore for MemoryStore {
    fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        Ok(self.read()?.get(id).cloned())
    }

    fn scan(
        &self,
        after: Option<&str>,
        max_examined: usize,
        keep: &dyn Fn(&Order) -> bool,
    ) -> Result<ScanPage, StoreError> {
        let orders = self.read()?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = ScanPage::default();
        let mut last: Option<&String> = None;
        let range = orders.range::<str, _>((start, Bound::Unbounded));
        for (examined, (id, order)) in range.enumerate() {
            if examined == max_examined {
                // More may follow: resume after the last id examined.
                page.next = last.cloned();
                return Ok(page);
            }
            last = Some(id);
            if keep(order) {
                page.orders.push(order.clone());
            }
        }
        Ok(page)
    }

    fn insert(&self, order: Order) -> Result<(), StoreError> {
        let mut orders = self.write()?;
        if orders.contains_key(&order.id) {
            return Err(StoreError::AlreadyExists(order.id));
        }
        orders.insert(order.id.clone(), order);
        Ok(())
    }

    fn update_all(&self, updates: &[Order]) -> Result<(), StoreError> {
        let mut orders = self.write()?;
        if let Some(unknown) = updates.iter().find(|o| !orders.contains_key(&o.id)) {
            return Err(StoreError::NotFound(unknown.id.clone()));
        }
        for order in updates {
            orders.insert(order.id.clone(), order.clone());
        }
        Ok(())
    }
}

fn poisoned() -> StoreError {
    StoreError::Failed("in-memory store lock poisoned by an earlier panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, item: &str) -> Order {
        Order {
            id: id.into(),
            items: vec![item.into()],
            ..Order::default()
        }
    }

    #[test]
    fn scan_walks_in_id_order_in_bounded_steps() {
        let store = MemoryStore::with_orders(["3", "1", "5", "2", "4"].map(|id| order(id, "x")));
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.scan(after.as_deref(), 2, &|o| o.id != "4").unwrap();
            assert!(page.orders.len() <= 2);
            seen.extend(page.orders.into_iter().map(|o| o.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["1", "2", "3", "5"]);
    }

    #[test]
    fn update_all_is_all_or_nothing() {
        let store = MemoryStore::with_orders([order("1", "a"), order("2", "b")]);
        let err = store
            .update_all(&[order("1", "changed"), order("9", "nope")])
            .unwrap_err();
        assert_eq!(err, StoreError::NotFound("9".into()));
        assert_eq!(store.get("1").unwrap().unwrap().items, ["a"]);

        store
            .update_all(&[order("1", "c"), order("2", "d")])
            .unwrap();
        assert_eq!(store.get("2").unwrap().unwrap().items, ["d"]);
    }

    #[test]
    fn insert_refuses_a_taken_id() {
        let store = MemoryStore::new();
        store.insert(order("1", "a")).unwrap();
        assert_eq!(
            store.insert(order("1", "b")),
            Err(StoreError::AlreadyExists("1".into()))
        );
        assert_eq!(store.get("1").unwrap().unwrap().items, ["a"]);
    }
}
