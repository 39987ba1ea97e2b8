//! Structured calls through the real service, in-process: a sequence of
//! addOrder / updateOrders / getOrder / searchOrders / processOrders calls
//! with well-framed, well-encoded orders whose field values are arbitrary
//! (empty, blank, control characters, lengths around every limit, any float
//! bit pattern), checked against a model of the store (a `BTreeMap`).
//!
//! Properties, besides those every call has (see `fuzz_support::call`):
//! - addOrder and updateOrders answer OK, INVALID_ARGUMENT, ALREADY_EXISTS,
//!   NOT_FOUND or RESOURCE_EXHAUSTED, and only what the model allows
//!   (ALREADY_EXISTS only for a stored id, NOT_FOUND only when an id is not
//!   stored, OK only when every id is new / stored), or OUT_OF_RANGE for a
//!   message over tonic's 4 MiB limit (documented in the README);
//! - an order addOrder accepted comes back from getOrder exactly as sent
//!   (validated orders are stored exactly), under the id addOrder returned;
//! - updateOrders is all or nothing, and replies with the ids it updated;
//! - getOrder, searchOrders and processOrders agree with the model;
//! - at the end, searching for "" lists exactly the model's orders.
//!
//! Prices are compared bit for bit, except that -0.0 reads back as 0.0: prost
//! does not write a float equal to 0.0 (see tests/fixtures/index.md).
#![no_main]

use std::collections::BTreeMap;

use fuzz_support::{Metadata, Reply, Server, call, frame, frames, same_order, server};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use order_management::service::ServiceConfig;
use order_management::shipments::{STATUS_PROCESSED, shipment_id};
use order_management::{CombinedShipment, Order, seed};
use prost::Message as _;
use tonic::Code;

/// At most this many calls per input, and orders per updateOrders call.
const MAX_OPS: usize = 12;
const MAX_BATCH: usize = 24;
/// tonic's default limit on one request message (the production server's
/// `--max-request-bytes`): OUT_OF_RANGE beyond.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Some text. `Repeat` reaches the length limits (id 128, item 1024,
/// destination 256, description 4096 bytes) without the fuzzer having to
/// write thousands of bytes.
#[derive(Arbitrary, Debug, Clone)]
enum Text {
    Raw(String),
    Repeat {
        ch: char,
        len: u16,
    },
    Empty,
    /// Whitespace only: a blank item.
    Blank(u8),
}

impl Text {
    fn make(&self) -> String {
        match self {
            Text::Raw(s) => s.clone(),
            Text::Repeat { ch, len } => {
                let len = usize::from(*len) % 4200;
                // Land on the byte limits whatever the width of `ch`.
                let n = len / ch.len_utf8() + usize::from(len % ch.len_utf8() != 0);
                std::iter::repeat_n(*ch, n).collect()
            }
            Text::Empty => String::new(),
            Text::Blank(n) => {
                [" ", "\t", "\u{3000}", "\n"][usize::from(*n) % 4].repeat(usize::from(*n % 5))
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum IdChoice {
    /// "": addOrder picks one; an error elsewhere.
    Empty,
    /// The seed's "101".
    Seed,
    /// An id used earlier in this input (or "101").
    Earlier(u8),
    Text(Text),
}

#[derive(Arbitrary, Debug, Clone)]
enum Price {
    Bits(u32),
    Special(u8),
}

impl Price {
    fn make(&self) -> f32 {
        const SPECIAL: [f32; 12] = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            -1.0,
            1000.0,
            0.1,
        ];
        match self {
            Price::Bits(bits) => f32::from_bits(*bits),
            Price::Special(i) => SPECIAL[usize::from(*i) % SPECIAL.len()],
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct ArbOrder {
    id: IdChoice,
    items: Vec<Text>,
    /// Extra copies of the first item, to reach the 1000-item limit.
    more_items: u16,
    description: Text,
    price: Price,
    destination: Text,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Add(ArbOrder),
    Update(Vec<ArbOrder>),
    Get(IdChoice),
    Search(Text),
    Process(Vec<IdChoice>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// DATA chunk size of request bodies (0: one chunk).
    chunk: u8,
    ops: Vec<Op>,
}

struct Harness {
    server: Server,
    chunk: usize,
    /// What the store must hold.
    model: BTreeMap<String, Order>,
    /// Ids seen in this input, for `IdChoice::Earlier`.
    ids: Vec<String>,
}

fuzz_target!(|input: Input| {
    let mut h = Harness {
        server: server(false),
        chunk: usize::from(input.chunk),
        model: BTreeMap::from([("101".to_owned(), seed::order_101())]),
        ids: vec!["101".to_owned()],
    };
    for op in input.ops.iter().take(MAX_OPS) {
        h.run(op);
    }
    h.check_store();
});

impl Harness {
    fn id(&mut self, choice: &IdChoice) -> String {
        let id = match choice {
            IdChoice::Empty => String::new(),
            IdChoice::Seed => "101".to_owned(),
            IdChoice::Earlier(i) => self.ids[usize::from(*i) % self.ids.len()].clone(),
            IdChoice::Text(t) => t.make(),
        };
        if !id.is_empty() && !self.ids.contains(&id) {
            self.ids.push(id.clone());
        }
        id
    }

    fn order(&mut self, o: &ArbOrder) -> Order {
        let mut items: Vec<String> = o.items.iter().take(64).map(Text::make).collect();
        if let Some(first) = items.first().cloned() {
            let more = usize::from(o.more_items) % 1100;
            items.extend(std::iter::repeat_n(first, more));
        }
        Order {
            id: self.id(&o.id),
            items,
            description: o.description.make(),
            price: o.price.make(),
            destination: o.destination.make(),
        }
    }

    fn call(&mut self, method: &str, body: &[u8]) -> Reply {
        call(
            &mut self.server,
            method,
            body,
            self.chunk,
            &Metadata::default(),
        )
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Add(o) => {
                let order = self.order(o);
                self.add(order);
            }
            Op::Update(list) => {
                let orders: Vec<Order> =
                    list.iter().take(MAX_BATCH).map(|o| self.order(o)).collect();
                self.update(orders);
            }
            Op::Get(choice) => {
                let id = self.id(choice);
                self.get(&id);
            }
            Op::Search(text) => {
                let query = text.make();
                self.search(&query);
            }
            Op::Process(choices) => {
                let ids: Vec<String> = choices.iter().take(MAX_BATCH).map(|c| self.id(c)).collect();
                self.process(&ids);
            }
        }
    }

    fn add(&mut self, order: Order) {
        let reply = self.call("addOrder", &frame(&order.encode_to_vec()));
        match reply.code() {
            Code::Ok => {
                let [id] = <[String; 1]>::try_from(reply.decode::<String>()).expect("one id");
                if order.id.is_empty() {
                    assert!(!id.is_empty(), "a generated id is empty");
                } else {
                    assert_eq!(id, order.id, "addOrder returned another id");
                }
                assert!(
                    !self.model.contains_key(&id),
                    "addOrder accepted {id:?}, which was already stored"
                );
                let stored = Order {
                    id: id.clone(),
                    ..order
                };
                self.model.insert(id.clone(), stored.clone());
                if !self.ids.contains(&id) {
                    self.ids.push(id.clone());
                }
                let got = self.get(&id).expect("an added order can be read back");
                assert!(
                    same_order(&got, &stored, true),
                    "addOrder stored something else\n sent: {stored:?}\n read: {got:?}"
                );
            }
            Code::AlreadyExists => assert!(
                !order.id.is_empty() && self.model.contains_key(&order.id),
                "ALREADY_EXISTS for an id that is not stored: {order:?} {reply:?}"
            ),
            Code::InvalidArgument => assert!(!reply.grpc_message.is_empty()),
            // tonic's limit on a request message (README: `--max-request-bytes`).
            Code::OutOfRange => assert!(
                order.encoded_len() > MAX_MESSAGE_BYTES,
                "OUT_OF_RANGE for an order of {} bytes: {reply:?}",
                order.encoded_len()
            ),
            // Allowed by the contract, never expected from addOrder.
            code @ (Code::NotFound | Code::ResourceExhausted) => {
                panic!("addOrder answered {code:?} for {order:?}: {reply:?}")
            }
            code => panic!("addOrder answered {code:?}: {reply:?}"),
        }
    }

    fn update(&mut self, orders: Vec<Order>) {
        let reply = self.call("updateOrders", &frames(&orders));
        let stored = |o: &Order| self.model.contains_key(&o.id);
        match reply.code() {
            Code::Ok => {
                let [text] = <[String; 1]>::try_from(reply.decode::<String>()).expect("one reply");
                let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
                assert_eq!(text, format!("Updated Order IDs : {}", ids.join(", ")));
                assert!(
                    orders.iter().all(stored),
                    "updateOrders OK with an unknown id: {orders:?}"
                );
                for order in &orders {
                    self.model.insert(order.id.clone(), order.clone());
                }
                for order in &orders {
                    let got = self
                        .get(&order.id)
                        .expect("an updated order can be read back");
                    assert!(
                        same_order(&got, order, true),
                        "updateOrders stored something else\n sent: {order:?}\n read: {got:?}"
                    );
                }
            }
            Code::NotFound => assert!(
                !orders.iter().all(stored),
                "NOT_FOUND although every id is stored: {reply:?}"
            ),
            Code::InvalidArgument | Code::ResourceExhausted => {}
            Code::OutOfRange => assert!(
                orders.iter().any(|o| o.encoded_len() > MAX_MESSAGE_BYTES),
                "OUT_OF_RANGE with no order over the limit: {reply:?}"
            ),
            code @ Code::AlreadyExists => panic!("updateOrders answered {code:?}: {reply:?}"),
            code => panic!("updateOrders answered {code:?}: {reply:?}"),
        }
    }

    /// getOrder, checked against the model; the order when found.
    fn get(&mut self, id: &str) -> Option<Order> {
        let reply = self.call("getOrder", &frame(&id.to_owned().encode_to_vec()));
        match (reply.code(), self.model.get(id)) {
            (Code::Ok, Some(expected)) => {
                let [got] = <[Order; 1]>::try_from(reply.decode::<Order>()).expect("one order");
                assert!(
                    same_order(&got, expected, true),
                    "getOrder({id:?})\n expected: {expected:?}\n got: {got:?}"
                );
                Some(got)
            }
            (Code::InvalidArgument, None) if id.is_empty() => None,
            (Code::NotFound, None) if !id.is_empty() => None,
            (code, expected) => {
                panic!("getOrder({id:?}) answered {code:?}; stored: {expected:?}; {reply:?}")
            }
        }
    }

    fn search(&mut self, query: &str) -> Vec<Order> {
        let reply = self.call("searchOrders", &frame(&query.to_owned().encode_to_vec()));
        assert_eq!(reply.code(), Code::Ok, "searchOrders({query:?}): {reply:?}");
        let found = reply.decode::<Order>();
        let needle = query.to_lowercase();
        let expected: Vec<&Order> = self
            .model
            .values()
            .filter(|o| o.items.iter().any(|i| i.to_lowercase().contains(&needle)))
            .collect();
        assert!(
            found.len() == expected.len()
                && found
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| same_order(a, b, true)),
            "searchOrders({query:?})\n expected: {expected:?}\n found: {found:?}"
        );
        found
    }

    fn process(&mut self, ids: &[String]) {
        let body = frames(ids);
        let reply = self.call("processOrders", &body);
        let shipments = reply.decode::<CombinedShipment>();
        let orders: Vec<&Order> = shipments.iter().flat_map(|s| &s.orders_list).collect();
        for s in &shipments {
            assert_eq!(s.status, STATUS_PROCESSED);
            assert!(!s.orders_list.is_empty());
            assert!(
                s.orders_list
                    .iter()
                    .all(|o| shipment_id(&o.destination) == s.id),
                "{s:?}"
            );
        }
        // Every full batch of ids before the first unknown one is shipped, and
        // on success the last partial batch too; within a batch, orders are
        // grouped by destination, so compare the ids as multisets.
        let first_bad = ids.iter().position(|id| !self.model.contains_key(id));
        let batch = ServiceConfig::default().batch_size;
        let shipped = match (reply.code(), first_bad) {
            (Code::Ok, None) => ids.len(),
            (Code::NotFound, Some(i)) if !ids[i].is_empty() => i / batch * batch,
            (Code::InvalidArgument, Some(i)) if ids[i].is_empty() => i / batch * batch,
            (code, _) => panic!("processOrders({ids:?}) answered {code:?}: {reply:?}"),
        };
        let mut expected: Vec<&str> = ids[..shipped].iter().map(String::as_str).collect();
        let mut got: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(
            got, expected,
            "processOrders({ids:?}) shipped other orders: {shipments:?}"
        );
        for order in orders {
            assert!(same_order(order, &self.model[&order.id], true), "{order:?}");
        }
    }

    /// The store holds exactly the model: every stored order has an item
    /// (validation), so searching for "" lists them all.
    fn check_store(&mut self) {
        let all = self.search("");
        assert_eq!(all.len(), self.model.len());
    }
}
