//! A limit on calls in flight across the server, and a share of it per
//! client address. Beyond either, a call is refused at once with
//! `RESOURCE_EXHAUSTED` (clients retry with backoff) instead of queueing
//! where it would only add latency and memory.
//!
//! The per-address share (`--max-calls-per-ip`, off by default since behind
//! a proxy every call comes from one address) keeps one client from holding
//! every slot, so other clients still get in.
//!
//! Writes are the exception ([`Admission::queued`], `--max-queued-writes`):
//! a write finding every write slot taken waits for one, first come first
//! served, in a queue of bounded length. Refused at once, a flood of writes
//! re-sent at once by its clients kept the server's core busy refusing them
//! (a refusal costs about what a getOrder does), and reads waited behind the
//! refusals: a probe's p99 was 16x its p99 alone, against 2.7x beside the
//! same writes admitted (`docs/bench/OVERLOAD.md`). A write still cannot
//! wait past its deadline, and one whose expected wait (those ahead of it
//! times the recent time a write holds its slot, over the slots) is longer
//! than its deadline is refused at once rather than left to time out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::server::connections::{CallOnConn, ConnInfo};

#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
    /// What the slots are for, in refusals: "calls", "writes"...
    what: &'static str,
    per_ip_limit: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Calls refused because every slot was taken (not for an address's
    /// share): health's overload signal reads it (`server/overload.rs`).
    refused: Arc<AtomicU64>,
    /// Calls waiting for a slot, if this pool queues them (writes).
    queue: Option<Arc<Queue>>,
}

/// The calls waiting for a slot of a pool, and what predicts their wait.
struct Queue {
    max: usize,
    waiting: AtomicUsize,
    /// How long a call has held its slot lately, in microseconds (a moving
    /// average over about the last 16 calls).
    hold_us: AtomicU64,
}

impl Queue {
    /// How long the `position`th call in line should wait for one of `slots`.
    fn expected_wait(&self, position: usize, slots: usize) -> Duration {
        let hold = self.hold_us.load(Ordering::Relaxed);
        Duration::from_micros(hold.saturating_mul(position as u64) / slots.max(1) as u64)
    }

    fn held(&self, for_: Duration) {
        let sample = u64::try_from(for_.as_micros()).unwrap_or(u64::MAX);
        let old = self.hold_us.load(Ordering::Relaxed);
        // Racy updates lose a sample now and then: an estimate, not a count.
        let new = if old == 0 {
            sample
        } else {
            old - old / 16 + sample / 16
        };
        self.hold_us.store(new, Ordering::Relaxed);
    }
}

/// Times how long a call of a queued pool holds its slot.
struct Held {
    queue: Arc<Queue>,
    since: Instant,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.queue.held(self.since.elapsed());
    }
}

/// One call in a queue, counted while it waits (also when its wait is dropped).
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a call holds until its response ends: its slot, its share of its
/// address's slots, and its place among its connection's calls in flight.
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
    _share: Option<Share>,
    _on_conn: Option<CallOnConn>,
    _held: Option<Held>,
}

impl Permit {
    /// A call that takes no slot (health checks), still counted on its connection.
    pub fn exempt(conn: Option<&ConnInfo>) -> Self {
        Self {
            _slot: None,
            _share: None,
            _on_conn: conn.map(|c| c.state.call_started()),
            _held: None,
        }
    }
}

/// One call's part of its address's share.
struct Share {
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// `limit` calls in flight in all, `per_ip_limit` from one address.
    pub fn new(limit: usize, per_ip_limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            what: "calls",
            per_ip_limit,
            per_ip: Arc::default(),
            refused: Arc::default(),
            queue: None,
        }
    }

    /// Lets up to `max` calls wait for a slot instead of being refused
    /// (0: none wait); see the module docs.
    pub fn queued(mut self, max: usize) -> Self {
        self.queue = (max > 0).then(|| {
            Arc::new(Queue {
                max,
                waiting: AtomicUsize::new(0),
                hold_us: AtomicU64::new(0),
            })
        });
        self
    }

    /// Whether calls wait for a slot rather than being refused at once.
    pub fn queues(&self) -> bool {
        self.queue.is_some()
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.queue
            .as_ref()
            .map_or(0, |q| q.waiting.load(Ordering::Relaxed))
    }

    /// Names what the slots are for in refusals (`"writes"`: "...its limit
    /// of 250 concurrent writes").
    pub fn named(mut self, what: &'static str) -> Self {
        self.what = what;
        self
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What the slots are for ("calls", "writes"...).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Calls refused so far because every slot was taken.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A slot for a call on `conn`, or `RESOURCE_EXHAUSTED` saying which limit.
    pub fn try_admit(&self, conn: Option<&ConnInfo>) -> Result<Permit, Status> {
        let share = self.share(conn)?;
        let slot = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| self.full())?;
        Ok(self.permit(slot, share, conn))
    }

    /// Like [`Admission::try_admit`], but in a pool that queues, a call that
    /// finds every slot taken waits for one until `deadline`
    /// (`DEADLINE_EXCEEDED` then); it is refused at once if the queue is
    /// full or its expected wait ends after `deadline`.
    pub async fn admit_queued(
        &self,
        conn: Option<&ConnInfo>,
        deadline: Option<Instant>,
    ) -> Result<Permit, Status> {
        let share = self.share(conn)?;
        let queue = match (Arc::clone(&self.slots).try_acquire_owned(), &self.queue) {
            (Ok(slot), _) => return Ok(self.permit(slot, share, conn)),
            (Err(_), None) => return Err(self.full()),
            (Err(_), Some(queue)) => queue,
        };
        let position = queue.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        let _in_line = InLine(&queue.waiting);
        if position > queue.max {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "the server is at its limit of {} concurrent {} and {} waiting; retry later",
                self.limit, self.what, queue.max
            )));
        }
        let expected = queue.expected_wait(position, self.limit);
        if let Some(deadline) = deadline
            && Instant::now() + expected > deadline
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "the server is at its limit of {} concurrent {}, and the expected wait \
                 for one ({} ms) is longer than this call's deadline; retry later",
                self.limit,
                self.what,
                expected.as_millis()
            )));
        }
        let slot = Arc::clone(&self.slots).acquire_owned();
        let slot = match deadline {
            Some(at) => tokio::time::timeout_at(at.into(), slot)
                .await
                .map_err(|_| crate::call::deadline::exceeded())?,
            None => slot.await,
        };
        // The semaphore is never closed.
        let slot = slot.map_err(|_| self.full())?;
        Ok(self.permit(slot, share, conn))
    }

    /// `conn`'s address's share of the pool, if it has one of its own.
    fn share(&self, conn: Option<&ConnInfo>) -> Result<Option<Share>, Status> {
        // A share as large as the whole pool limits nothing: skip its lock.
        match conn {
            Some(conn) if self.per_ip_limit < self.limit => {
                self.take_share(conn.remote_addr.ip()).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn full(&self) -> Status {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Status::resource_exhausted(format!(
            "the server is at its limit of {} concurrent {}; retry later",
            self.limit, self.what
        ))
    }

    fn permit(
        &self,
        slot: OwnedSemaphorePermit,
        share: Option<Share>,
        conn: Option<&ConnInfo>,
    ) -> Permit {
        Permit {
            _slot: Some(slot),
            _share: share,
            _on_conn: conn.map(|c| c.state.call_started()),
            _held: self.queue.as_ref().map(|queue| Held {
                queue: Arc::clone(queue),
                since: Instant::now(),
            }),
        }
    }

    fn take_share(&self, ip: IpAddr) -> Result<Share, Status> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip_limit {
            return Err(Status::resource_exhausted(format!(
                "this client address has {} calls in flight, its limit; retry later",
                self.per_ip_limit
            )));
        }
        *n += 1;
        Ok(Share {
            ip,
            per_ip: Arc::clone(&self.per_ip),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(ip: &str) -> ConnInfo {
        ConnInfo::new(format!("{ip}:1000").parse().unwrap())
    }

    #[test]
    fn one_address_gets_its_share_and_others_still_get_in() {
        let admission = Admission::new(4, 2);
        let a = conn("10.0.0.1");
        let b = conn("10.0.0.2");
        let a1 = admission.try_admit(Some(&a)).unwrap();
        let _a2 = admission.try_admit(Some(&a)).unwrap();
        let refused = admission.try_admit(Some(&a)).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("client address"), "{refused:?}");
        assert_eq!(a.state.calls(), 2, "a refused call is not counted");
        let _b1 = admission.try_admit(Some(&b)).unwrap();
        let _b2 = admission.try_admit(Some(&b)).unwrap();
        let full = admission.try_admit(None).err().unwrap();
        assert!(full.message().contains("4 concurrent calls"), "{full:?}");
        assert_eq!(admission.in_flight(), 4);
        drop(a1);
        assert_eq!(a.state.calls(), 1);
        admission.try_admit(Some(&a)).unwrap();
    }

    #[tokio::test]
    async fn a_queued_pool_lets_calls_wait_in_line_up_to_its_bound() {
        let pool = Admission::new(1, usize::MAX).named("writes").queued(1);
        let held = pool.admit_queued(None, None).await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.admit_queued(None, None).await.map(drop) }
        });
        tokio::task::yield_now().await;
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = pool.admit_queued(None, None).await.err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("1 waiting"), "{refused:?}");
        assert_eq!(pool.refused(), 1);
        drop(held);
        waiting.await.unwrap().unwrap();
        assert_eq!(pool.waiting(), 0);
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn the_expected_wait_is_those_ahead_times_the_hold_over_the_slots() {
        let queue = Queue {
            max: 10,
            waiting: AtomicUsize::new(0),
            hold_us: AtomicU64::new(0),
        };
        queue.held(Duration::from_millis(100));
        assert_eq!(queue.expected_wait(4, 2), Duration::from_millis(200));
        // A moving average: one short hold moves it a sixteenth of the way.
        queue.held(Duration::ZERO);
        assert_eq!(queue.hold_us.load(Ordering::Relaxed), 93_750);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_deadline_passes_in_line_is_deadline_exceeded() {
        let pool = Admission::new(1, usize::MAX).queued(5);
        let _held = pool.try_admit(None).unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        let late = pool.admit_queued(None, Some(deadline)).await.err().unwrap();
        assert_eq!(late.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(pool.waiting(), 0, "it left the line");
    }

    #[test]
    fn a_refusal_by_the_total_gives_the_share_back() {
        let admission = Admission::new(1, 5);
        let a = conn("10.0.0.1");
        let _held = admission.try_admit(None).unwrap();
        for _ in 0..10 {
            assert!(admission.try_admit(Some(&a)).is_err());
        }
        assert!(admission.per_ip.lock().unwrap().is_empty());
    }
}
