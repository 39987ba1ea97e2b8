//! What a processOrders stream holds between its producer and the
//! connection, bounded in bytes, as `search_pipe` bounds a search's.
//!
//! A client can send ids and never read the shipments. Bounded in messages
//! (a channel of 32), the stream then held up to 32 shipments of up to
//! `--batch-size` orders each, and an order may hold ~1 MB (1,000 items of
//! 1 KiB): with the same large order's id sent again and again, ~100 MB per
//! stream, uncounted. Here:
//!
//! - the channel holds at most [`PIPE_BYTES`] of shipments, counted as the
//!   memory they hold ([`held_bytes`]); a larger shipment still goes, alone;
//! - every shipment waiting in it counts against the server's budget
//!   (`--max-buffered-bytes`, [`Budget`]) at its whole size, from before it
//!   is sent until the connection takes it.
//!
//! The producer waits for room in both, and stops at once if the stream is
//! gone. It does not fail the call: a client reading slowly is no error, and
//! one that never reads is cut off by `--write-stall-timeout`.

use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::buffer_budget::{Budget, Held};
use crate::pb::CombinedShipment;
use crate::search_pipe::{self, PIPE_BYTES};

type Item = Result<CombinedShipment, Status>;

/// Shipments (or the error ending the stream) the channel holds at most,
/// whatever their size.
const SLOTS: usize = 32;

/// The producer's end.
pub struct ShipmentSender {
    tx: mpsc::Sender<Item>,
    room: Arc<Semaphore>,
    held: Option<Arc<Held>>,
}

/// A byte-bounded channel of shipments, counted against `budget` when there
/// is one.
pub fn pipe(
    budget: Option<Arc<Budget>>,
) -> (ShipmentSender, impl Stream<Item = Item> + Send + 'static) {
    let (tx, rx) = mpsc::channel(SLOTS);
    let room = Arc::new(Semaphore::new(PIPE_BYTES));
    let held = budget.map(|budget| Arc::new(Held::new(budget)));
    let freed = Arc::clone(&room);
    let given = held.clone();
    let rx = ReceiverStream::new(rx).map(move |item: Item| {
        if let Ok(shipment) = &item {
            let bytes = held_bytes(shipment);
            freed.add_permits(room_for(bytes));
            if let Some(held) = &given {
                held.give(bytes);
            }
        }
        item
    });
    (ShipmentSender { tx, room, held }, rx)
}

/// About the memory `shipment` holds while it waits here: the struct, its
/// strings and its orders (as `search_pipe` counts an order, but whole).
pub fn held_bytes(shipment: &CombinedShipment) -> usize {
    let orders: usize = shipment
        .orders_list
        .iter()
        .map(search_pipe::order_bytes)
        .sum();
    std::mem::size_of::<CombinedShipment>()
        + shipment.id.capacity()
        + shipment.status.capacity()
        + (shipment.orders_list.capacity() - shipment.orders_list.len())
            * std::mem::size_of::<crate::pb::Order>()
        + orders
}

/// The room in the channel a shipment of `bytes` takes: at most all of it.
fn room_for(bytes: usize) -> usize {
    bytes.min(PIPE_BYTES)
}

impl ShipmentSender {
    /// Sends `shipment` once the budget and the channel have room for it;
    /// `Err` if the stream is gone first.
    pub async fn send(&self, shipment: CombinedShipment) -> Result<(), ()> {
        let bytes = held_bytes(&shipment);
        if let Some(held) = &self.held {
            tokio::select! {
                biased;
                counted = held.budget().reserve(bytes) => {
                    held.add(counted);
                    // Larger than the whole budget: it waited for all of
                    // it, and counts at its size.
                    held.force(bytes - counted);
                }
                () = self.tx.closed() => return Err(()),
            }
        }
        // The room is given back by the receiving end only: once that is
        // gone, waiting would never end.
        let permits = tokio::select! {
            biased;
            permits = self.room.acquire_many(room_for(bytes) as u32) => permits.map_err(|_| ())?,
            () = self.tx.closed() => return Err(()),
        };
        permits.forget();
        self.tx.send(Ok(shipment)).await.map_err(|_| ())
    }

    /// Ends the stream with `status`; `Err` if the stream is gone.
    pub async fn send_error(&self, status: Status) -> Result<(), ()> {
        self.tx.send(Err(status)).await.map_err(|_| ())
    }

    /// Resolves once the receiving end is gone.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// The plain channel, for what bypasses the bound (a producer's panic).
    pub fn raw(&self) -> mpsc::Sender<Item> {
        self.tx.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pb::Order;

    fn shipment(orders: usize, item_bytes: usize) -> CombinedShipment {
        CombinedShipment {
            id: "cmb - Seoul".into(),
            status: "Processed!".into(),
            orders_list: (0..orders)
                .map(|i| Order {
                    id: i.to_string(),
                    items: vec!["x".repeat(item_bytes)],
                    ..Order::default()
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn waiting_shipments_count_against_the_budget_until_taken_or_dropped() {
        let budget = Budget::new(100_000, 1 << 20);
        let (tx, rx) = pipe(Some(Arc::clone(&budget)));
        let each = held_bytes(&shipment(3, 10_000));
        assert!(each > 30_000 && each < 33_000, "{each}");
        // No one reads: the producer sends until the budget is full, then
        // waits (it does not fail).
        let producer = tokio::spawn(async move {
            for _ in 0..10 {
                if tx.send(shipment(3, 10_000)).await.is_err() {
                    return Err(());
                }
            }
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!producer.is_finished(), "sent 10 shipments of {each} bytes");
        // (The channel's room, 256 KiB, would take eight.)
        assert_eq!(budget.used(), 3 * each, "three fit in 100,000 bytes");

        // Taking one makes room for the next.
        let mut rx = Box::pin(rx);
        rx.next().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(budget.used(), 3 * each);

        // The reader goes away: the producer stops, everything given back.
        drop(rx);
        let stopped = tokio::time::timeout(Duration::from_secs(5), producer)
            .await
            .expect("the producer stops once the stream is gone")
            .unwrap();
        assert!(stopped.is_err());
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_shipment_larger_than_the_channel_or_the_budget_still_goes_alone() {
        let budget = Budget::new(200_000, 1 << 20);
        let (tx, rx) = pipe(Some(Arc::clone(&budget)));
        let big = shipment(1, 500_000);
        let bytes = held_bytes(&big);
        tx.send(big).await.unwrap();
        assert_eq!(budget.used(), bytes, "counted at its size, over the limit");
        let mut rx = Box::pin(rx);
        let got = rx.next().await.unwrap().unwrap();
        assert_eq!(got.orders_list[0].items[0].len(), 500_000);
        assert_eq!(budget.used(), 0);
    }
}
