//! A limit on calls in flight across the server, and a share of it per
//! client address. Beyond either, a call is refused at once with
//! `RESOURCE_EXHAUSTED` (clients retry with backoff) instead of queueing
//! where it would only add latency and memory.
//!
//! The per-address share (`--max-calls-per-ip`, off by default since behind
//! a proxy every call comes from one address) keeps one client from holding
//! every slot, so other clients still get in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
}

/// What a call holds until its response ends: its slot, its share of its
/// address's slots, and its place among its connection's calls in flight.
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
    _share: Option<Share>,
    _on_conn: Option<CallOnConn>,
}

impl Permit {
    /// A call that takes no slot (health checks), still counted on its connection.
    pub fn exempt(conn: Option<&ConnInfo>) -> Self {
        Self {
            _slot: None,
            _share: None,
            _on_conn: conn.map(|c| c.state.call_started()),
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
        }
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
        // A share as large as the whole pool limits nothing: skip its lock.
        let share = match conn {
            Some(conn) if self.per_ip_limit < self.limit => {
                Some(self.take_share(conn.remote_addr.ip())?)
            }
            _ => None,
        };
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Status::resource_exhausted(format!(
                "the server is at its limit of {} concurrent {}; retry later",
                self.limit, self.what
            ))
        })?;
        Ok(Permit {
            _slot: Some(slot),
            _share: share,
            _on_conn: conn.map(|c| c.state.call_started()),
        })
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
