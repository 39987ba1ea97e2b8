//! Orders in a sorted map in memory: for tests and `--in-memory`.
//!
//! Every operation runs inline: it holds a lock for the length of a map
//! operation and never waits for anything else. Writes are applied in the
//! order their calls take the lock, which is the order they were called
//! (FIFO): nothing is queued. Deadlines cannot pass during a write, so
//! only one already passed is refused.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use async_trait::async_trait;

use super::{OrderStore, SearchPage, StoreError, rule};
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

    /// A search step by a scan of the map in id order (see [`OrderStore::search`]).
    pub fn search_now(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, StoreError> {
        let needle = rule::fold(query);
        let orders = self.read()?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = SearchPage::default();
        let mut last: Option<&String> = None;
        for (id, order) in orders.range::<str, _>((start, Bound::Unbounded)) {
            if page.examined == budget {
                // More may follow: resume after the last id examined.
                page.next = last.cloned();
                return Ok(page);
            }
            page.examined += 1;
            last = Some(id);
            if rule::matches(order, &needle) {
                page.orders.push(order.clone());
            }
        }
        Ok(page)
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, BTreeMap<String, Order>>, StoreError> {
        self.orders.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, BTreeMap<String, Order>>, StoreError> {
        self.orders.write().map_err(|_| poisoned())
    }
}

fn check_deadline(deadline: Option<Instant>) -> Result<(), StoreError> {
    match deadline {
        Some(at) if at <= Instant::now() => Err(StoreError::DeadlineExceeded),
        _ => Ok(()),
    }
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        Ok(self.read()?.get(id).cloned())
    }

    async fn search(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, StoreError> {
        self.search_now(query, after, budget)
    }

    async fn insert(&self, order: Order, deadline: Option<Instant>) -> Result<(), StoreError> {
        let mut orders = self.write()?;
        check_deadline(deadline)?;
        if orders.contains_key(&order.id) {
            return Err(StoreError::AlreadyExists(order.id));
        }
        orders.insert(order.id.clone(), order);
        Ok(())
    }

    async fn update_all(
        &self,
        updates: Vec<Order>,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        let mut orders = self.write()?;
        check_deadline(deadline)?;
        if let Some(unknown) = updates.iter().find(|o| !orders.contains_key(&o.id)) {
            return Err(StoreError::NotFound(unknown.id.clone()));
        }
        for order in updates {
            orders.insert(order.id.clone(), order);
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.len() as u64)
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

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn search_walks_in_id_order_in_bounded_steps() {
        let store = MemoryStore::with_orders(
            [("3", "x"), ("1", "x"), ("5", "x"), ("2", "x"), ("4", "y")]
                .map(|(id, item)| order(id, item)),
        );
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.search_now("X", after.as_deref(), 2).unwrap();
            assert!(page.examined <= 2);
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
        block_on(async {
            let store = MemoryStore::with_orders([order("1", "a"), order("2", "b")]);
            let err = store
                .update_all(vec![order("1", "changed"), order("9", "nope")], None)
                .await
                .unwrap_err();
            assert_eq!(err, StoreError::NotFound("9".into()));
            assert_eq!(store.get("1").await.unwrap().unwrap().items, ["a"]);

            store
                .update_all(vec![order("1", "c"), order("2", "d")], None)
                .await
                .unwrap();
            assert_eq!(store.get("2").await.unwrap().unwrap().items, ["d"]);
        });
    }

    #[test]
    fn insert_refuses_a_taken_id_and_a_passed_deadline() {
        block_on(async {
            let store = MemoryStore::new();
            store.insert(order("1", "a"), None).await.unwrap();
            assert_eq!(
                store.insert(order("1", "b"), None).await,
                Err(StoreError::AlreadyExists("1".into()))
            );
            assert_eq!(store.get("1").await.unwrap().unwrap().items, ["a"]);
            assert_eq!(
                store.insert(order("2", "b"), Some(Instant::now())).await,
                Err(StoreError::DeadlineExceeded)
            );
            assert_eq!(store.count().await.unwrap(), 1);
        });
    }
}
