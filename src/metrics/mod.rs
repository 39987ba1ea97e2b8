//! The server's Prometheus metrics, served by the admin listener
//! ([`crate::admin`]) at `GET /metrics`.
//!
//! Built on `prometheus-client` (the Prometheus project's own crate): its
//! counters and gauges are `Arc`-shared atomics, so a handle resolved once
//! (per method, per code) costs a call one relaxed atomic add, with no
//! global recorder, no map lookup and no background thread. Histograms are
//! our own ([`histogram`]): lock-free, where `prometheus-client`'s takes a
//! mutex per observation. (`metrics` + `metrics-exporter-prometheus` was the
//! other choice: its handles are as cheap, but its histograms keep every
//! raw observation until the next scrape, so their memory grows with the
//! call rate.)
//!
//! Names follow grpc-go's Prometheus conventions for calls
//! (`grpc_server_*`, see [`rpc`]), Prometheus' for the process
//! (`process_*`), and `order_management_*` for the rest. The README lists
//! every one.
//!
//! The metrics are one set per process ([`install`]), as a metrics
//! recorder is: they are recorded only once the admin listener is on, so a
//! server without `--admin-listen` pays one atomic load per call.

pub mod histogram;
pub mod process;
pub mod rpc;
pub mod server;
pub mod store;

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use self::rpc::RpcMetrics;
use self::server::ServerGauges;
use self::store::StoreMetrics;

/// Every metric of the process, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    pub rpc: RpcMetrics,
    pub calls: CallCounters,
    pub store: StoreMetrics,
    pub server: ServerGauges,
}

/// What the call layer counts besides the per-method metrics.
pub struct CallCounters {
    /// RESOURCE_EXHAUSTED from admission (calls in flight, in all or per address).
    pub refused_admission: Counter,
    /// UNAUTHENTICATED: no or a wrong bearer token.
    pub refused_auth: Counter,
    /// Handler panics caught and answered INTERNAL.
    pub panics: Counter,
    /// Trace spans dropped because the export queue was full.
    pub spans_dropped: Counter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics, recording from now on. Installing twice (two
/// servers in one process, as in tests) returns the same set.
pub fn install() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The metrics, if installed: what every recording site asks first.
#[inline]
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let rpc = RpcMetrics::register(&mut registry);
        let calls = CallCounters::register(&mut registry);
        let store = StoreMetrics::register(&mut registry);
        let server = ServerGauges::register(&mut registry);
        process::register(&mut registry);
        Self {
            registry,
            rpc,
            calls,
            store,
            server,
        }
    }

    /// Every metric in the OpenMetrics text format (which Prometheus
    /// scrapes; [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl CallCounters {
    fn register(registry: &mut Registry) -> Self {
        let refused = prometheus_client::metrics::family::Family::<
            [(&'static str, &'static str); 1],
            Counter,
        >::default();
        let counters = Self {
            refused_admission: refused.get_or_create_owned(&[("reason", "admission")]),
            refused_auth: refused.get_or_create_owned(&[("reason", "auth")]),
            panics: Counter::default(),
            spans_dropped: Counter::default(),
        };
        registry.register(
            "order_management_calls_refused",
            "Calls refused before their handler: reason=admission (RESOURCE_EXHAUSTED, calls in flight) or auth (UNAUTHENTICATED)",
            refused,
        );
        registry.register(
            "order_management_panics",
            "Handler panics caught and answered INTERNAL",
            counters.panics.clone(),
        );
        registry.register(
            "order_management_trace_spans_dropped",
            "Trace spans dropped because the export queue was full (the collector is slow or down)",
            counters.spans_dropped.clone(),
        );
        counters
    }
}

/// The call layer refused a call before its handler with `code`.
pub fn refused(code: tonic::Code) {
    if let Some(m) = get() {
        match code {
            tonic::Code::Unauthenticated => m.calls.refused_auth.inc(),
            _ => m.calls.refused_admission.inc(),
        };
    }
}

/// The call layer caught a handler's panic.
pub fn panicked() {
    if let Some(m) = get() {
        m.calls.panics.inc();
    }
}
