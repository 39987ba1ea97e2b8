//! What a searchOrders stream holds between its producer and the
//! connection, bounded in bytes whatever the orders' size.
//!
//! A client that does not read its search (the hostile trial: 900 streams)
//! leaves each producer waiting with its current page of orders and a full
//! channel. Counted in orders (a step of 256 candidates, a channel of 32),
//! that was ~12 MiB per stream with 50 KB orders, 10 GiB for 900 streams.
//! Here both are bounded in bytes:
//!
//! - the channel by [`PIPE_BYTES`] of encoded orders: the producer waits for
//!   room before it sends (one order larger than that still goes, alone);
//! - a search step's budget ([`next_step`]) starts small and doubles while
//!   its pages stay under half of [`PIPE_BYTES`], halving when one is over,
//!   so a page of big orders stays about that size too.
//!
//! So a stalled stream holds about 2 x 256 KiB here, plus hyper's send
//! buffer (400 KiB) below, for at most `--write-stall-timeout`.

use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use prost::Message as _;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::pb::Order;

/// Bytes of encoded orders a search's channel holds, and about the most a
/// page may hold.
pub const PIPE_BYTES: usize = 256 << 10;

/// The first step's budget of candidates, and the largest.
pub const FIRST_STEP: usize = 4;
pub const MAX_STEP: usize = 256;

type Item = Result<Order, Status>;

/// The producer's end.
#[derive(Clone)]
pub struct PipeSender {
    tx: mpsc::Sender<Item>,
    room: Arc<Semaphore>,
}

/// A byte-bounded channel of search results (at most `slots` items too).
pub fn pipe(slots: usize) -> (PipeSender, impl Stream<Item = Item> + Send + 'static) {
    let (tx, rx) = mpsc::channel(slots);
    let room = Arc::new(Semaphore::new(PIPE_BYTES));
    let freed = Arc::clone(&room);
    let rx = ReceiverStream::new(rx).map(move |item| {
        freed.add_permits(cost(&item));
        item
    });
    (PipeSender { tx, room }, rx)
}

/// The bytes an item takes from the pipe's room.
fn cost(item: &Item) -> usize {
    item.as_ref().map_or(0, |o| o.encoded_len().min(PIPE_BYTES))
}

impl PipeSender {
    /// Sends once there is room; `Err` if the stream is gone.
    pub async fn send(&self, item: Item) -> Result<(), ()> {
        let permits = self
            .room
            .acquire_many(cost(&item) as u32)
            .await
            .map_err(|_| ())?;
        permits.forget(); // given back by the receiving end
        self.tx.send(item).await.map_err(|_| ())
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The plain channel, for what bypasses the bound (a producer's panic).
    pub fn raw(&self) -> mpsc::Sender<Item> {
        self.tx.clone()
    }
}

/// The next step's budget after a page of `bytes` that examined `examined`
/// candidates of a budget of `step`.
pub fn next_step(step: usize, examined: usize, bytes: usize) -> usize {
    if bytes > PIPE_BYTES {
        (step / 2).max(1)
    } else if examined >= step && bytes < PIPE_BYTES / 2 {
        (step * 2).min(MAX_STEP)
    } else {
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_on_small_pages_and_shrink_on_big_ones() {
        let mut step = FIRST_STEP;
        for _ in 0..10 {
            step = next_step(step, step, 1_000);
        }
        assert_eq!(step, MAX_STEP);
        step = next_step(step, step, 13 << 20);
        assert_eq!(step, MAX_STEP / 2);
        assert_eq!(next_step(1, 1, 13 << 20), 1);
        // A step that found little but did not use its budget (the end): kept.
        assert_eq!(next_step(8, 3, 10), 8);
    }

    #[tokio::test]
    async fn the_pipe_holds_at_most_its_bytes() {
        let (tx, rx) = pipe(1_000);
        let big = Order {
            items: vec!["x".repeat(1000); 100],
            ..Order::default()
        };
        let each = big.encoded_len();
        let fits = PIPE_BYTES / each;
        for _ in 0..fits {
            tx.send(Ok(big.clone())).await.unwrap();
        }
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send(Ok(big.clone())),
        );
        assert!(
            blocked.await.is_err(),
            "the pipe took more than {PIPE_BYTES} bytes"
        );
        let mut rx = Box::pin(rx);
        rx.next().await.unwrap().unwrap();
        tx.send(Ok(big)).await.unwrap(); // room again
    }
}
