//! Gauges and counters read from the server's own state when scraped:
//! calls in flight (admission's slots), connections (the accept loop's
//! counts), bytes held for clients (`--max-buffered-bytes`), and the
//! process. Nothing is recorded per call for these.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::buffer_budget::Budget;
use crate::middleware::admission::Admission;
use crate::server::connections::ConnectionStats;

type Label = [(&'static str, &'static str); 1];

pub struct ServerGauges {
    in_flight: Family<Label, Gauge>,
    waiting: Family<Label, Gauge>,
    open: Gauge,
    accepted: Counter,
    refused: Family<Label, Counter>,
    accept_errors: Counter,
    handshake_timeouts: Counter,
    idle_closed: Counter,
    buffered: Gauge,
    resident: Gauge,
    fds: Gauge,
}

/// Where a server's scrape-time values come from.
pub struct Sources {
    /// Admission pools, by the name they are shown with.
    pub pools: Vec<(&'static str, Admission)>,
    pub connections: Arc<ConnectionStats>,
    pub buffered: Arc<Budget>,
}

impl ServerGauges {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let g = Self {
            in_flight: Family::default(),
            waiting: Family::default(),
            open: Gauge::default(),
            accepted: Counter::default(),
            refused: Family::default(),
            accept_errors: Counter::default(),
            handshake_timeouts: Counter::default(),
            idle_closed: Counter::default(),
            buffered: Gauge::default(),
            resident: Gauge::default(),
            fds: Gauge::default(),
        };
        registry.register(
            "order_management_calls_in_flight",
            "Calls holding an admission slot, by pool (reads, writes, health_watches); health checks take none",
            g.in_flight.clone(),
        );
        registry.register(
            "order_management_calls_waiting",
            "Calls waiting for an admission slot, by pool (only writes wait: --max-queued-writes)",
            g.waiting.clone(),
        );
        registry.register(
            "order_management_connections_open",
            "Connections open now",
            g.open.clone(),
        );
        registry.register(
            "order_management_connections_accepted",
            "Connections accepted",
            g.accepted.clone(),
        );
        registry.register(
            "order_management_connections_refused",
            "Connections closed at once: reason=max_connections (--max-connections) or per_ip (--max-connections-per-ip)",
            g.refused.clone(),
        );
        registry.register(
            "order_management_connection_accept_errors",
            "Errors from accept (EMFILE...)",
            g.accept_errors.clone(),
        );
        registry.register(
            "order_management_connection_handshake_timeouts",
            "Connections closed for not finishing the HTTP/2 preface or TLS handshake in time",
            g.handshake_timeouts.clone(),
        );
        registry.register(
            "order_management_connections_idle_closed",
            "Connections closed after --idle-timeout without a call",
            g.idle_closed.clone(),
        );
        registry.register(
            "order_management_buffered_request_bytes",
            "Bytes held for clients now against --max-buffered-bytes (incomplete request messages, requests of writes waiting in line, searchOrders results and processOrders shipments not yet sent)",
            g.buffered.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            g.resident.clone(),
        );
        registry.register("process_open_fds", "Open file descriptors", g.fds.clone());
        g
    }

    /// Copies the server's current state into the metrics (before a scrape).
    pub fn refresh(&self, sources: &Sources) {
        for (name, pool) in &sources.pools {
            self.in_flight
                .get_or_create(&[("pool", name)])
                .set(pool.in_flight() as i64);
            if pool.queues() {
                self.waiting
                    .get_or_create(&[("pool", name)])
                    .set(pool.waiting() as i64);
            }
        }
        let c = &sources.connections;
        self.open.set(c.open.load(Ordering::Relaxed) as i64);
        set(&self.accepted, c.accepted.load(Ordering::Relaxed));
        set(
            &self.refused.get_or_create(&[("reason", "max_connections")]),
            c.refused_total.load(Ordering::Relaxed),
        );
        set(
            &self.refused.get_or_create(&[("reason", "per_ip")]),
            c.refused_per_ip.load(Ordering::Relaxed),
        );
        set(&self.accept_errors, c.accept_errors.load(Ordering::Relaxed));
        set(
            &self.handshake_timeouts,
            c.handshake_timeouts.load(Ordering::Relaxed),
        );
        set(&self.idle_closed, c.idle_closed.load(Ordering::Relaxed));
        self.buffered.set(sources.buffered.used() as i64);
        if let Some(bytes) = super::process::resident_bytes() {
            self.resident.set(bytes);
        }
        if let Some(fds) = super::process::open_fds() {
            self.fds.set(fds);
        }
    }
}

/// A counter mirrors a count kept elsewhere (only ever growing).
fn set(counter: &Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
}
