//! The store's metrics: the embedded writer's group commits, searches, and
//! the PostgreSQL pool. Recorded by the stores and the search handler
//! through the functions below, which do nothing while metrics are off.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::Histogram;

pub struct StoreMetrics {
    group_size: Histogram,
    commit: Histogram,
    examined: Counter,
    returned: Counter,
    pool_wait: Histogram,
    pool_errors: Counter,
    /// Orders stored, read from the store at each scrape (by the admin listener).
    pub orders: Gauge,
}

impl StoreMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            group_size: Histogram::group_sizes(),
            commit: Histogram::seconds(),
            examined: Counter::default(),
            returned: Counter::default(),
            pool_wait: Histogram::seconds(),
            pool_errors: Counter::default(),
            orders: Gauge::default(),
        };
        registry.register(
            "order_management_store_write_group_size",
            "Writes per group commit of the embedded store (one transaction, one disk sync)",
            metrics.group_size.clone(),
        );
        registry.register(
            "order_management_store_commit_seconds",
            "Time to apply and commit one group of writes of the embedded store, disk sync included",
            metrics.commit.clone(),
        );
        registry.register(
            "order_management_store_orders",
            "Orders stored, as the store counts them when scraped",
            metrics.orders.clone(),
        );
        registry.register(
            "order_management_search_candidates_examined",
            "Orders searchOrders fetched and checked against the query",
            metrics.examined.clone(),
        );
        registry.register(
            "order_management_search_orders_returned",
            "Orders searchOrders found matching (examined / returned: how selective the index is)",
            metrics.returned.clone(),
        );
        registry.register(
            "order_management_db_pool_wait_seconds",
            "Time a call waited for a PostgreSQL connection from the pool",
            metrics.pool_wait.clone(),
        );
        registry.register(
            "order_management_db_pool_errors",
            "Failures to get a PostgreSQL connection (database unreachable, pool timeout)",
            metrics.pool_errors.clone(),
        );
        metrics
    }
}

/// The embedded writer committed a group of `writes` in `took`.
pub fn group_committed(writes: usize, took: Duration) {
    if let Some(m) = super::get() {
        m.store.group_size.record(writes as u64);
        m.store.commit.record_duration(took);
    }
}

/// One search step examined `examined` candidates and returned `returned`.
pub fn searched(examined: usize, returned: usize) {
    if let Some(m) = super::get() {
        m.store.examined.inc_by(examined as u64);
        m.store.returned.inc_by(returned as u64);
    }
}

/// A call waited `took` for a pooled PostgreSQL connection; `ok`: it got one.
pub fn pool_waited(took: Duration, ok: bool) {
    if let Some(m) = super::get() {
        m.store.pool_wait.record_duration(took);
        if !ok {
            m.store.pool_errors.inc();
        }
    }
}
