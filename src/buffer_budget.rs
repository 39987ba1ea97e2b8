//! The server-wide budget of bytes held for clients (`--max-buffered-bytes`).
//!
//! Memory waits on a client in several places, and a hostile one can make
//! each grow with the number of its streams:
//!
//! - request messages not yet complete (tonic reserves a message's whole
//!   announced length from its prefix on), updateOrders' orders until the
//!   call ends, and the requests of writes waiting in line for a slot, read
//!   ahead: counted by `middleware::request_body`, which refuses the call
//!   that would go over (`RESOURCE_EXHAUSTED`);
//! - response streams' results decoded and waiting for a client to read
//!   them: searchOrders' orders ([`crate::search_pipe`]) and processOrders'
//!   shipments ([`crate::shipment_pipe`]), each stream's count kept in a
//!   [`Held`]. Their producers *wait* for room instead (a stream already
//!   under way is not failed; it pauses until readers drain, or stalled
//!   readers are cut off by `--write-stall-timeout`).
//!
//! Counting is a compare-and-swap on one atomic; a giver wakes waiting
//! producers only when some are waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The count of bytes held for clients, and its limit.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    /// The largest message tonic accepts (`--max-request-bytes`): one
    /// announced larger is refused by tonic from its prefix alone
    /// (`OUT_OF_RANGE`), nothing reserved, so it is not counted at its length.
    max_message: usize,
    /// Producers waiting in [`Budget::reserve`], and their wake-up.
    waiting: AtomicUsize,
    freed: Notify,
}

impl Budget {
    pub fn new(limit: usize, max_message: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
            max_message,
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// `--max-buffered-bytes`.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// `--max-request-bytes`.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Counts `n` bytes if they fit under the limit.
    pub fn take(&self, n: usize) -> bool {
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            if used + n > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + n,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Counts `n` bytes already held, over the limit or not (a page found
    /// larger than its reservation).
    pub fn force(&self, n: usize) {
        self.used.fetch_add(n, Ordering::SeqCst);
    }

    /// Gives back `n` counted bytes, and wakes the producers waiting for room.
    pub fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_waiters();
        }
    }

    /// Counts `n` bytes (at most the limit) once they fit; returns how many
    /// were counted.
    pub async fn reserve(&self, n: usize) -> usize {
        let n = n.min(self.limit);
        loop {
            if self.take(n) {
                return n;
            }
            // Registered before the second try: a give between the two
            // either is seen by the try or wakes this waiter.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let _waiting = Waiting::register(&self.waiting);
            if self.take(n) {
                return n;
            }
            freed.await;
        }
    }
}

/// What one stream's producer has counted against the budget and not yet
/// given back (`search_pipe`, `shipment_pipe`): what is left when both
/// ends of its pipe are gone (items never taken) is given back then.
#[derive(Debug)]
pub struct Held {
    budget: Arc<Budget>,
    bytes: AtomicUsize,
}

impl Held {
    pub fn new(budget: Arc<Budget>) -> Self {
        Self {
            budget,
            bytes: AtomicUsize::new(0),
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// `n` bytes this stream counted (taken or reserved from the budget).
    pub fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes already held, over the limit or not.
    pub fn force(&self, n: usize) {
        self.budget.force(n);
        self.add(n);
    }

    /// Gives back `n` of this stream's bytes.
    pub fn give(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
        self.budget.give(n);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give(*self.bytes.get_mut());
    }
}

/// One producer counted in `Budget::waiting` while it waits (also when its
/// wait is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn register(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn take_counts_only_what_fits() {
        let budget = Budget::new(100, 1 << 20);
        assert!(budget.take(60));
        assert!(!budget.take(41));
        assert!(budget.take(40));
        budget.give(100);
        assert_eq!(budget.used(), 0);
        budget.force(150);
        assert_eq!(budget.used(), 150, "forced bytes count over the limit");
        assert!(!budget.take(1));
    }

    #[tokio::test]
    async fn reserve_waits_for_room_and_is_woken_by_a_give() {
        let budget = Budget::new(100, 1 << 20);
        assert!(budget.take(90));
        let waiter = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.reserve(50).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "reserved 50 bytes with 10 free");
        assert_eq!(budget.used(), 90);
        budget.give(90);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the give woke the waiter")
            .unwrap();
        assert_eq!(got, 50);
        assert_eq!(budget.used(), 50);
        assert_eq!(budget.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_reservation_larger_than_the_limit_takes_the_limit() {
        let budget = Budget::new(100, 1 << 20);
        assert_eq!(budget.reserve(1_000).await, 100);
        assert_eq!(budget.used(), 100);
    }

    #[tokio::test]
    async fn a_dropped_wait_is_no_longer_counted_as_waiting() {
        let budget = Budget::new(10, 1 << 20);
        assert!(budget.take(10));
        let wait = tokio::time::timeout(Duration::from_millis(20), budget.reserve(5)).await;
        assert!(wait.is_err());
        assert_eq!(budget.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(budget.used(), 10);
    }
}
