//! Health's overload signal: the health entry [`HEALTH_NAME`] is
//! `NOT_SERVING` while the server is saturated (its read or write slots all
//! taken, or calls being refused for want of one), `SERVING` otherwise.
//!
//! Why a separate entry, not `""` or `ecommerce.OrderManagement`: a load
//! balancer that pulls every saturated replica out of rotation moves its
//! load onto the others, which then saturate too, and the fleet flaps.
//! Overload is already answered per call (`RESOURCE_EXHAUSTED`, which
//! clients retry with backoff); this entry lets a balancer or an operator
//! that wants to weigh it ask for it (`client health
//! ecommerce.OrderManagement.capacity`), while the main entries keep
//! meaning "this server can serve" (store ready, not shutting down).
//!
//! And with hysteresis: sampled every [`SAMPLE_EVERY`], the entry changes
//! only after [`TICKS_TO_CHANGE`] samples in a row disagree with it, so a
//! burst that fills the slots for a moment does not make it flap. Each
//! change is logged (a warning when saturated).

use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::middleware::admission::Admission;

/// The health entry that reports overload (see the module docs).
pub const HEALTH_NAME: &str = "ecommerce.OrderManagement.capacity";

/// How often the admission pools are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Samples in a row it takes to change the entry either way.
const TICKS_TO_CHANGE: u32 = 3;

/// Follows `pools` forever, setting [`HEALTH_NAME`] (starts `SERVING`).
pub async fn follow(pools: Vec<Admission>, health: HealthReporter) {
    let mut saturated = false;
    let mut disagreeing = 0;
    let mut refused_before: Vec<u64> = pools.iter().map(Admission::refused).collect();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let refused_now: Vec<u64> = pools.iter().map(Admission::refused).collect();
        let full = pools
            .iter()
            .zip(refused_before.iter().zip(&refused_now))
            .filter(|(pool, (before, now))| pool.in_flight() >= pool.limit() || now > before)
            .map(|(pool, _)| pool.what())
            .collect::<Vec<_>>();
        refused_before = refused_now;
        if full.is_empty() != saturated {
            disagreeing = 0;
            continue;
        }
        disagreeing += 1;
        if disagreeing < TICKS_TO_CHANGE {
            continue;
        }
        disagreeing = 0;
        saturated = !saturated;
        let status = if saturated {
            tracing::warn!(
                "overloaded: every slot for {} taken or calls refused for {}s; health {HEALTH_NAME} NOT_SERVING",
                full.join(" and "),
                TICKS_TO_CHANGE
            );
            ServingStatus::NotServing
        } else {
            tracing::info!("no longer overloaded: health {HEALTH_NAME} SERVING");
            ServingStatus::Serving
        };
        health.set_service_status(HEALTH_NAME, status).await;
    }
}
