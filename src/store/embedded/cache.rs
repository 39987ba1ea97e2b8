//! A small bounded cache of decoded orders in front of the redb file, kept
//! exactly consistent with committed writes.
//!
//! getOrder is answered inline (on the runtime thread) on a hit, so its
//! cost stays that of a map lookup and a clone; a miss reads the file on
//! the blocking pool and may fill the cache.
//!
//! **Consistency.** A reader must never put a value older than the last
//! commit into the cache. Every commit bumps a sequence number and writes
//! its new versions into the cache, both under one mutex, after the
//! commit and before any of its calls is acknowledged. A reader notes the
//! sequence number *before* it opens its read transaction, and fills the
//! cache under the same mutex only if the number has not moved:
//!
//! - unchanged: no commit finished its cache update since the reader
//!   started; a commit that finished *in redb* meanwhile can only have
//!   given the reader a newer snapshot, and its own cache update comes
//!   later under the mutex and overwrites whatever the reader put in;
//! - changed: the reader's snapshot may predate a commit whose cache
//!   update is already done, so the reader leaves the cache alone.
//!
//! So after the writer's update for commit N, the cache holds, for every
//! id commit N wrote, its version from commit N or later. Inserts of new
//! ids need no invalidation (a reader never caches an absent order), and
//! the bulk load does not fill the cache.

use std::sync::Mutex;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::pb::Order;

#[derive(Clone)]
struct Bytes;

impl Weighter<String, Order> for Bytes {
    fn weight(&self, id: &String, order: &Order) -> u64 {
        // A rough size of the heap and inline bytes the entry holds.
        let items: usize = order.items.iter().map(|i| i.len() + 24).sum();
        (id.len() + order.description.len() + order.destination.len() + items + 160) as u64
    }
}

pub(super) struct OrderCache {
    /// `None` when the cache is configured off (0 bytes).
    orders: Option<Cache<String, Order, Bytes>>,
    /// Bumped by each commit; see the module docs.
    seq: Mutex<u64>,
}

impl OrderCache {
    pub fn new(bytes: usize) -> Self {
        let orders = (bytes > 0).then(|| {
            // Orders are ~300 bytes on average: an estimate, not a limit.
            Cache::with_weighter((bytes / 300).max(64), bytes as u64, Bytes)
        });
        Self {
            orders,
            seq: Mutex::new(0),
        }
    }

    pub fn get(&self, id: &str) -> Option<Order> {
        self.orders.as_ref()?.get(id)
    }

    /// The sequence number to note before opening a read transaction.
    pub fn snapshot(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Caches `order`, read in a transaction opened after [`Self::snapshot`]
    /// returned `seen`, unless a commit has updated the cache since.
    pub fn fill(&self, seen: u64, order: &Order) {
        let Some(orders) = &self.orders else { return };
        let seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        if *seq == seen {
            orders.insert(order.id.clone(), order.clone());
        }
    }

    /// After a commit, before acknowledging it: the committed versions of
    /// the orders it changed replace any cached ones.
    pub fn committed<'a>(&self, changed: impl IntoIterator<Item = &'a Order>) {
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *seq += 1;
        if let Some(orders) = &self.orders {
            for order in changed {
                orders.insert(order.id.clone(), order.clone());
            }
        }
    }
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
    fn a_reader_that_started_before_a_commit_does_not_fill() {
        let cache = OrderCache::new(1 << 20);
        let seen = cache.snapshot();
        // The reader read the old version; meanwhile a commit updates "1".
        cache.committed([&order("1", "new")]);
        cache.fill(seen, &order("1", "old"));
        assert_eq!(cache.get("1").unwrap().items, ["new"]);

        // Whereas a reader whose fill comes before the commit's update is
        // overwritten by it.
        let seen = cache.snapshot();
        cache.fill(seen, &order("2", "old"));
        assert_eq!(cache.get("2").unwrap().items, ["old"]);
        cache.committed([&order("2", "new")]);
        assert_eq!(cache.get("2").unwrap().items, ["new"]);
    }

    #[test]
    fn a_zero_sized_cache_holds_nothing() {
        let cache = OrderCache::new(0);
        cache.committed([&order("1", "x")]);
        cache.fill(cache.snapshot(), &order("2", "x"));
        assert!(cache.get("1").is_none() && cache.get("2").is_none());
    }
}
