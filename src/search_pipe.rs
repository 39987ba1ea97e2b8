//! What a searchOrders stream holds between its producer and the
//! connection, bounded in bytes whatever the orders' size.
//!
//! A client that does not read its search (the hostile trial: 900 streams)
//! leaves each producer waiting with its current page of orders and a full
//! channel. Counted in orders (a step of 256 candidates, a channel of 32),
//! that was ~12 MiB per stream with 50 KB orders, 10 GiB for 900 streams.
//! Here both are bounded in bytes:
//!
//! - the channel by [`PIPE_BYTES`] of orders, counted as the memory they
//!   hold ([`held_bytes`]): the producer waits for room before it sends
//!   (one order larger than that still goes, alone);
//! - a search step's budget ([`next_step`]) starts small and doubles while
//!   its pages stay under half of [`PIPE_BYTES`], halving when one is over,
//!   so a page of big orders stays about that size too.
//!
//! So a stalled stream holds about 2 x 256 KiB here, plus hyper's send
//! buffer (`--max-send-buffer-bytes`, 64 KiB) below, for at most
//! `--write-stall-timeout`.
//!
//! A step's orders cross the channel as one message (a page, cut where it
//! would exceed [`PIPE_BYTES`]), not one message each: the producer and the
//! connection then hand over once a step, which is most of what streaming
//! a search that matches every order costs otherwise. The room is given
//! back order by order as the connection takes them, so the bound in bytes
//! is as before.

use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
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
/// What the channel carries: a page of orders, or the error that ends the
/// stream.
pub type Page = Result<Vec<Order>, Status>;

/// The producer's end.
#[derive(Clone)]
pub struct PipeSender {
    tx: mpsc::Sender<Page>,
    room: Arc<Semaphore>,
}

/// A byte-bounded channel of search results (at most `slots` pages too).
pub fn pipe(slots: usize) -> (PipeSender, impl Stream<Item = Item> + Send + 'static) {
    let (tx, rx) = mpsc::channel(slots);
    let room = Arc::new(Semaphore::new(PIPE_BYTES));
    let freed = Arc::clone(&room);
    let rx = ReceiverStream::new(rx)
        .flat_map(|page: Page| {
            futures_util::stream::iter(match page {
                Ok(orders) => orders.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(status) => vec![Err(status)],
            })
        })
        .map(move |item| {
            freed.add_permits(cost(&item));
            item
        });
    (PipeSender { tx, room }, rx)
}

/// The bytes an item takes from the pipe's room.
fn cost(item: &Item) -> usize {
    item.as_ref().map_or(0, held_bytes)
}

/// About the memory `order` holds while it waits here, decoded: the struct
/// and its strings' buffers, several times its encoded size for a small
/// order. (Counted in encoded bytes, 900 stalled searches of small orders
/// held ~2 MiB each: `cargo xtask attacks`.) At most [`PIPE_BYTES`], so
/// one larger order still goes, alone.
pub fn held_bytes(order: &Order) -> usize {
    let strings = order.id.capacity() + order.description.capacity() + order.destination.capacity();
    let items = order.items.capacity() * std::mem::size_of::<String>()
        + order.items.iter().map(String::capacity).sum::<usize>();
    (std::mem::size_of::<Order>() + strings + items).min(PIPE_BYTES)
}

impl PipeSender {
    /// Sends one item once there is room; `Err` if the stream is gone.
    pub async fn send(&self, item: Item) -> Result<(), ()> {
        match item {
            Ok(order) => self.send_page(vec![order]).await,
            Err(status) => self.tx.send(Err(status)).await.map_err(|_| ()),
        }
    }

    /// Sends `orders` in order, as few messages as the room allows (each
    /// at most [`PIPE_BYTES`], or one order alone), each once there is room
    /// for it; `Err` if the stream is gone.
    pub async fn send_page(&self, mut orders: Vec<Order>) -> Result<(), ()> {
        while !orders.is_empty() {
            let (mut take, mut bytes) = (0, 0);
            for order in &orders {
                let c = held_bytes(order);
                if take > 0 && bytes + c > PIPE_BYTES {
                    break;
                }
                take += 1;
                bytes += c;
            }
            let rest = orders.split_off(take);
            let permits = self.room.acquire_many(bytes as u32).await.map_err(|_| ())?;
            permits.forget(); // given back by the receiving end
            self.tx.send(Ok(orders)).await.map_err(|_| ())?;
            orders = rest;
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The plain channel, for what bypasses the bound (a producer's panic).
    pub fn raw(&self) -> mpsc::Sender<Page> {
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
        let each = held_bytes(&big);
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

    #[test]
    fn an_order_is_counted_at_what_it_holds_decoded_not_encoded() {
        use prost::Message as _;
        let small = Order {
            id: "bulk-0000001".into(),
            items: vec!["widget 1".into(), "gadget".into()],
            destination: "Seoul".into(),
            price: 1.0,
            ..Order::default()
        };
        let (held, encoded) = (held_bytes(&small), small.encoded_len());
        assert!(held >= 3 * encoded, "held {held}, encoded {encoded}");
        let huge = Order {
            description: "x".repeat(2 * PIPE_BYTES),
            ..Order::default()
        };
        assert_eq!(
            held_bytes(&huge),
            PIPE_BYTES,
            "one huge order still fits alone"
        );
    }

    #[tokio::test]
    async fn a_page_arrives_whole_in_order_and_within_the_bytes() {
        let (tx, rx) = pipe(1_000);
        let order = |i: usize| Order {
            id: format!("{i:04}"),
            items: vec!["x".repeat(1000)],
            ..Order::default()
        };
        // More than the room: sent in parts, each once there is room.
        let many: Vec<Order> = (0..600).map(order).collect();
        let total = many.len();
        let sender = tokio::spawn(async move {
            tx.send_page(many).await.unwrap();
            tx.send(Err(Status::internal("end"))).await.unwrap();
        });
        let got: Vec<Item> = rx.collect().await;
        sender.await.unwrap();
        assert_eq!(got.len(), total + 1);
        for (i, item) in got[..total].iter().enumerate() {
            assert_eq!(item.as_ref().unwrap().id, format!("{i:04}"));
        }
        assert!(got[total].is_err());
    }
}
