//! A limit on calls in flight across the server. Beyond it, a call is
//! refused at once with `RESOURCE_EXHAUSTED` (clients retry with backoff)
//! instead of queueing where it would only add latency and memory.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
}

/// A call's slot, released when the call's response ends.
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    pub fn try_admit(&self) -> Result<Permit, Status> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map(Permit)
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "the server is at its limit of {} concurrent calls; retry later",
                    self.limit
                ))
            })
    }
}
