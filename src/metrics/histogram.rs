//! A histogram of fixed buckets kept in atomics: recording a value is a
//! short scan of the bounds and three relaxed atomic adds, no lock (the
//! histogram of `prometheus-client` takes a mutex per observation).
//! Values are recorded as integers (nanoseconds, or a count) and shown
//! divided by a scale (seconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Call and commit durations, in seconds: finer than grpc-go's defaults
/// (5 ms to 10 s) at the low end, where a getOrder from cache is (~50 µs).
pub const SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Writes per group commit (the writer closes a group at 1024 writes).
pub const GROUP_SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

#[derive(Debug, Clone)]
pub struct Histogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds, in recorded units, ascending.
    bounds: Vec<u64>,
    /// What the bounds are shown as (recorded value / scale).
    shown: &'static [f64],
    scale: f64,
    /// Observations per bucket (not cumulative); the last is +Inf.
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
}

impl Histogram {
    /// Buckets `shown` (as exposed), recorded in units of 1/`scale`.
    pub fn new(shown: &'static [f64], scale: f64) -> Self {
        Self {
            inner: Arc::new(Inner {
                bounds: shown.iter().map(|b| (b * scale).round() as u64).collect(),
                shown,
                scale,
                counts: (0..=shown.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0),
            }),
        }
    }

    /// A histogram of seconds, recorded in nanoseconds.
    pub fn seconds() -> Self {
        Self::new(SECONDS, 1e9)
    }

    /// A histogram of group sizes.
    pub fn group_sizes() -> Self {
        Self::new(GROUP_SIZES, 1.0)
    }

    /// Records `value` (in recorded units).
    pub fn record(&self, value: u64) {
        let inner = &*self.inner;
        let bucket = inner
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(inner.bounds.len());
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        inner.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (for histograms of seconds).
    pub fn record_duration(&self, duration: std::time::Duration) {
        self.record(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(inner.counts.len());
        for (i, count) in inner.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = inner.shown.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        let sum = inner.sum.load(Ordering::Relaxed) as f64 / inner.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, cumulative, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::group_sizes();
        for v in [1, 1, 3, 1024, 5000] {
            h.record(v);
        }
        let counts: Vec<u64> = h
            .inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 2, "1 and 1 in le=1");
        assert_eq!(counts[2], 1, "3 in le=4");
        assert_eq!(counts[10], 1, "1024 in le=1024");
        assert_eq!(counts[11], 1, "5000 in +Inf");
        assert_eq!(h.count(), 5);
        assert_eq!(h.inner.sum.load(Ordering::Relaxed), 1 + 1 + 3 + 1024 + 5000);
    }
}
