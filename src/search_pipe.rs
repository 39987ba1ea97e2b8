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
//! Many stalled streams together are bounded by the server's budget
//! (`--max-buffered-bytes`, [`Budget`]), shared with incomplete request
//! messages: a step reserves [`PIPE_BYTES`] from it before searching
//! ([`PipeSender::reserve`], which waits while the budget is full), the page
//! found is counted at its size, and each order is given back as the
//! connection takes it (whatever is still in the pipe, when both ends are
//! gone).
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

use crate::buffer_budget::{Budget, Held};
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
    counted: Option<Arc<Held>>,
}

/// Bytes of the budget counted for a step before its page is found
/// ([`PipeSender::reserve`]); [`PipeSender::send_page`] settles them.
#[must_use]
pub struct Reserved(usize);

/// A byte-bounded channel of search results (at most `slots` pages too),
/// counted against `budget` when there is one.
pub fn pipe(
    slots: usize,
    budget: Option<Arc<Budget>>,
) -> (PipeSender, impl Stream<Item = Item> + Send + 'static) {
    let (tx, rx) = mpsc::channel(slots);
    let room = Arc::new(Semaphore::new(PIPE_BYTES));
    let counted = budget.map(|budget| Arc::new(Held::new(budget)));
    let freed = Arc::clone(&room);
    let given = counted.clone();
    let rx = ReceiverStream::new(rx)
        .flat_map(|page: Page| {
            // Taken from the page as it is (not collected into a second
            // vector of results first, which held the page twice).
            let (orders, end) = match page {
                Ok(orders) => (orders, None),
                Err(status) => (Vec::new(), Some(Err(status))),
            };
            futures_util::stream::iter(orders.into_iter().map(Ok).chain(end))
        })
        .map(move |item| {
            let bytes = cost(&item);
            freed.add_permits(bytes);
            if let Some(counted) = &given {
                counted.give(bytes);
            }
            item
        });
    (PipeSender { tx, room, counted }, rx)
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
    order_bytes(order).min(PIPE_BYTES)
}

/// The memory `order` holds, decoded: the struct and its strings' buffers.
pub fn order_bytes(order: &Order) -> usize {
    let strings = order.id.capacity() + order.description.capacity() + order.destination.capacity();
    let items = order.items.capacity() * std::mem::size_of::<String>()
        + order.items.iter().map(String::capacity).sum::<usize>();
    std::mem::size_of::<Order>() + strings + items
}

impl PipeSender {
    /// Ends the stream with `status`; `Err` if the stream is gone.
    pub async fn send_error(&self, status: Status) -> Result<(), ()> {
        self.tx.send(Err(status)).await.map_err(|_| ())
    }

    /// Waits until the server's budget has room for a page
    /// ([`PIPE_BYTES`]) and counts it; `Err` if the stream is gone first.
    pub async fn reserve(&self) -> Result<Reserved, ()> {
        let Some(counted) = &self.counted else {
            return Ok(Reserved(0));
        };
        tokio::select! {
            biased;
            n = counted.budget().reserve(PIPE_BYTES) => {
                counted.add(n);
                Ok(Reserved(n))
            }
            () = self.tx.closed() => Err(()),
        }
    }

    /// Sends `orders` in order, as few messages as the room allows (each
    /// at most [`PIPE_BYTES`], or one order alone), each once there is room
    /// for it; `Err` if the stream is gone. They are counted against the
    /// budget at their size from now on, in place of `reserved`.
    pub async fn send_page(&self, mut orders: Vec<Order>, reserved: Reserved) -> Result<(), ()> {
        if let Some(counted) = &self.counted {
            let bytes: usize = orders.iter().map(held_bytes).sum();
            if bytes > reserved.0 {
                counted.force(bytes - reserved.0);
            } else {
                counted.give(reserved.0 - bytes);
            }
        }
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
            // The room is given back by the receiving end only: once that is
            // gone (the connection was reset), waiting would never end, and
            // would keep this page and the pipe's count for ever.
            let permits = tokio::select! {
                biased;
                permits = self.room.acquire_many(bytes as u32) => permits.map_err(|_| ())?,
                () = self.tx.closed() => return Err(()),
            };
            permits.forget();
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
        let (tx, rx) = pipe(1_000, None);
        let big = Order {
            items: vec!["x".repeat(1000); 100],
            ..Order::default()
        };
        let each = held_bytes(&big);
        let fits = PIPE_BYTES / each;
        for _ in 0..fits {
            tx.send_page(vec![big.clone()], Reserved(0)).await.unwrap();
        }
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send_page(vec![big.clone()], Reserved(0)),
        );
        assert!(
            blocked.await.is_err(),
            "the pipe took more than {PIPE_BYTES} bytes"
        );
        let mut rx = Box::pin(rx);
        rx.next().await.unwrap().unwrap();
        tx.send_page(vec![big], Reserved(0)).await.unwrap(); // room again
    }

    #[tokio::test]
    async fn what_a_pipe_holds_is_counted_against_the_budget_until_taken_or_dropped() {
        let budget = Budget::new(PIPE_BYTES + PIPE_BYTES / 2, 1 << 20);
        let (tx, rx) = pipe(1_000, Some(Arc::clone(&budget)));
        let order = Order {
            items: vec!["x".repeat(1000)],
            ..Order::default()
        };
        let each = held_bytes(&order);
        let reserved = tx.reserve().await.unwrap();
        assert_eq!(budget.used(), PIPE_BYTES, "a step reserves a page");
        tx.send_page(vec![order.clone(); 10], reserved)
            .await
            .unwrap();
        assert_eq!(budget.used(), 10 * each, "the page, counted at its size");

        // Another stream's step fits; then the budget is full, and a step
        // waits for room.
        let (other, other_rx) = pipe(1_000, Some(Arc::clone(&budget)));
        let held = other.reserve().await.unwrap();
        assert_eq!(budget.used(), 10 * each + PIPE_BYTES);
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.reserve().await.map(|r| r.0) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a step reserved past the budget");
        // The other stream goes away: what it counted is given back.
        drop((other, other_rx, held));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the freed bytes woke the waiting step")
            .unwrap();
        assert_eq!(got, Ok(PIPE_BYTES));
        assert_eq!(budget.used(), 10 * each + PIPE_BYTES);

        // Each order taken by the connection is given back.
        let mut rx = Box::pin(rx);
        for taken in 1..=10 {
            rx.next().await.unwrap().unwrap();
            assert_eq!(budget.used(), (10 - taken) * each + PIPE_BYTES);
        }
        // Orders never taken (and a reservation never settled) are given
        // back when both ends are gone.
        tx.send_page(vec![order; 3], Reserved(0)).await.unwrap();
        assert_eq!(
            budget.used(),
            3 * each + PIPE_BYTES,
            "counted, over its reservation"
        );
        drop((tx, rx));
        assert_eq!(budget.used(), 0);
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
        let (tx, rx) = pipe(1_000, None);
        let order = |i: usize| Order {
            id: format!("{i:04}"),
            items: vec!["x".repeat(1000)],
            ..Order::default()
        };
        // More than the room: sent in parts, each once there is room.
        let many: Vec<Order> = (0..600).map(order).collect();
        let total = many.len();
        let sender = tokio::spawn(async move {
            let reserved = tx.reserve().await.unwrap();
            tx.send_page(many, reserved).await.unwrap();
            tx.send_error(Status::internal("end")).await.unwrap();
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
