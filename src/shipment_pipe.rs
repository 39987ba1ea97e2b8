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
//! - every order the producer has read counts against the server's budget
//!   (`--max-buffered-bytes`, [`Budget`]) from then on, in the batch being
//!   made and in the channel, until the connection takes its shipment; and
//!   the producer reads the next order only while the budget has room
//!   ([`ShipmentSender::room`]), so all the streams together go over it by
//!   at most one order each.
//!
//! The producer waits for room, and stops at once if the stream is gone. It
//! does not fail the call: a client reading slowly is no error, and one
//! that never reads is cut off by `--write-stall-timeout`.

use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::buffer_budget::{Budget, Held};
use crate::pb::{CombinedShipment, Order};
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
    /// Waits until the budget has room, before the producer reads its next
    /// order; `Err` if the stream is gone first.
    pub async fn room(&self) -> Result<(), ()> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        tokio::select! {
            biased;
            // Room for one byte is room; nothing is kept counted.
            one = held.budget().reserve(1) => {
                held.budget().give(one);
                Ok(())
            }
            () = self.tx.closed() => Err(()),
        }
    }

    /// Counts an order the producer has read (see [`Self::room`]) until the
    /// connection takes its shipment.
    pub fn hold(&self, order: &Order) {
        if let Some(held) = &self.held {
            held.force(search_pipe::order_bytes(order));
        }
    }

    /// Sends `shipment`, whose orders were [held](Self::hold), once the
    /// channel has room for it; `Err` if the stream is gone first.
    pub async fn send(&self, shipment: CombinedShipment) -> Result<(), ()> {
        let bytes = held_bytes(&shipment);
        if let Some(held) = &self.held {
            // The shipment's own part: its orders are counted already.
            let orders: usize = shipment
                .orders_list
                .iter()
                .map(search_pipe::order_bytes)
                .sum();
            held.force(bytes - orders);
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

    /// The producer's loop, as `service::process` runs it: room, read,
    /// hold, and a shipment sent every three orders.
    async fn produce(tx: ShipmentSender, batches: usize, item_bytes: usize) -> Result<(), ()> {
        for _ in 0..batches {
            let one = shipment(3, item_bytes);
            for order in &one.orders_list {
                tx.room().await?;
                tx.hold(order);
            }
            tx.send(one).await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn orders_read_count_against_the_budget_until_taken_or_dropped() {
        let budget = Budget::new(100_000, 1 << 20);
        let (tx, rx) = pipe(Some(Arc::clone(&budget)));
        let each = held_bytes(&shipment(3, 10_000));
        assert!(each > 30_000 && each < 33_000, "{each}");
        // No one reads: the producer goes on while the budget has room
        // (the channel's, 256 KiB, would take eight), then waits: it does
        // not fail.
        let producer = tokio::spawn(produce(tx, 10, 10_000));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!producer.is_finished(), "sent 10 shipments of {each} bytes");
        let used = budget.used();
        assert!(
            (100_000..100_000 + each / 3 + 1).contains(&used),
            "over the budget by at most one order: {used}"
        );

        // Taking shipments makes room for more.
        let mut rx = Box::pin(rx);
        rx.next().await.unwrap().unwrap();
        rx.next().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!producer.is_finished());
        assert!(budget.used() >= 100_000, "{}", budget.used());

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
        tx.room().await.unwrap();
        tx.hold(&big.orders_list[0]);
        tx.send(big).await.unwrap();
        assert_eq!(budget.used(), bytes, "counted at its size, over the limit");
        let mut rx = Box::pin(rx);
        let got = rx.next().await.unwrap().unwrap();
        assert_eq!(got.orders_list[0].items[0].len(), 500_000);
        assert_eq!(budget.used(), 0);
    }
}
