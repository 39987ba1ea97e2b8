//! Every RPC end to end over a real loopback connection, through the
//! generated client: happy paths, each error status, empty streams,
//! cancellation, deadlines, processOrders' batches (`process.rs`) and
//! concurrent writers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::store::Hooked;
use crate::support::{Backend, TestServer, for_each_backend, raw};
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::service::ServiceConfig;
use order_management::{CombinedShipment, Order, seed};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, IntoRequest, Status};

type Client = OrderManagementClient<Channel>;

/// A store that counts how many orders searches have examined, to see the
/// server's search work stop or wait.
struct CountingStore {
    store: Arc<Hooked>,
    examined: Arc<AtomicUsize>,
}

impl CountingStore {
    fn examined(&self) -> usize {
        self.examined.load(Ordering::SeqCst)
    }

    /// Who holds the store: the test, the service, running search tasks.
    fn holders(&self) -> usize {
        Arc::strong_count(&self.store)
    }

    fn serve(&self) -> TestServer {
        TestServer::start(self.store.clone())
    }
}

fn order(id: &str, items: &[&str], destination: &str) -> Order {
    Order {
        id: id.into(),
        items: items.iter().map(|s| s.to_string()).collect(),
        description: format!("order {id}"),
        price: 10.0,
        destination: destination.into(),
    }
}

/// The store of `backend` holding `orders`; a test whose backend is not
/// installed here (PostgreSQL, outside CI) ends at once, skipped.
macro_rules! store_or_skip {
    ($backend:expr, $orders:expr) => {
        match $backend.try_store($orders).await {
            Some(store) => store,
            None => return,
        }
    };
}

macro_rules! seeded_server {
    ($backend:expr) => {
        TestServer::start(store_or_skip!($backend, [seed::order_101()]))
    };
}

macro_rules! server_with {
    ($backend:expr, $orders:expr, $config:expr $(,)?) => {
        TestServer::start_with(store_or_skip!($backend, $orders), $config)
    };
}

async fn search_ids(client: &mut Client, query: &str) -> Vec<String> {
    let mut stream = client
        .search_orders(query.to_owned())
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(order) = stream.message().await.unwrap() {
        ids.push(order.id);
    }
    ids
}

async fn update(client: &mut Client, orders: Vec<Order>) -> Result<String, Status> {
    client
        .update_orders(tokio_stream::iter(orders))
        .await
        .map(|r| r.into_inner())
}

async fn process(client: &mut Client, ids: &[&str]) -> (Vec<CombinedShipment>, Option<Status>) {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut stream = match client.process_orders(tokio_stream::iter(ids)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return (Vec::new(), Some(status)),
    };
    let mut shipments = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(s)) => shipments.push(s),
            Ok(None) => return (shipments, None),
            Err(status) => return (shipments, Some(status)),
        }
    }
}

fn assert_status(status: &Status, code: Code, mentions: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(mentions),
        "{:?} should mention {mentions:?}",
        status.message()
    );
}

mod process;

// ---------- addOrder ----------

async fn add_then_get_returns_the_same_order(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    let new = order(
        "102",
        &["Google Pixel 3A", "Mac Book Pro"],
        "Mountain View, CA",
    );
    let id = client.add_order(new.clone()).await.unwrap().into_inner();
    assert_eq!(id, "102");
    assert_eq!(
        client
            .get_order("102".to_owned())
            .await
            .unwrap()
            .into_inner(),
        new
    );
}

async fn add_without_id_gets_a_fresh_unique_id(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    let mut ids = HashSet::new();
    for _ in 0..20 {
        let id = client
            .add_order(order("", &["x"], "Seoul"))
            .await
            .unwrap()
            .into_inner();
        assert!(!id.is_empty());
        let stored = client.get_order(id.clone()).await.unwrap().into_inner();
        assert_eq!(stored.id, id);
        assert!(ids.insert(id));
    }
}

async fn add_existing_id_is_already_exists_and_keeps_the_original(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    let err = client
        .add_order(order("101", &["other"], "Busan"))
        .await
        .unwrap_err();
    assert_status(&err, Code::AlreadyExists, "101");
    let kept = client
        .get_order("101".to_owned())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept, seed::order_101());
}

async fn add_invalid_order_is_invalid_argument_naming_the_field(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    let cases = [
        (order("200", &[], "Seoul"), "items"),
        (
            Order {
                price: -1.0,
                ..order("201", &["a"], "Seoul")
            },
            "price",
        ),
        (
            Order {
                price: f32::NAN,
                ..order("202", &["a"], "Seoul")
            },
            "price",
        ),
        (
            Order {
                description: "d".repeat(5000),
                ..order("203", &["a"], "Seoul")
            },
            "description",
        ),
        (order("204", &["a"; 1001], "Seoul"), "items"),
        (order(&"i".repeat(200), &["a"], "Seoul"), "id"),
    ];
    for (bad, field) in cases {
        let id = bad.id.clone();
        let err = client.add_order(bad).await.unwrap_err();
        assert_status(&err, Code::InvalidArgument, &format!("{field}:"));
        let lookup = client.get_order(id).await.unwrap_err();
        assert_eq!(
            lookup.code(),
            Code::NotFound,
            "a rejected order must not be stored"
        );
    }
}

// ---------- getOrder ----------

async fn get_unknown_and_empty_ids(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    let err = client.get_order("102".to_owned()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "Order : 102 Not Found.");
    let err = client.get_order(String::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// PostgreSQL text cannot hold U+0000: every backend refuses it alike, and
/// none answers INTERNAL for a NUL in a read.
async fn nul_characters_are_refused_alike_on_every_backend(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    for (bad, field) in [
        (order("n1", &["a\0b"], "Seoul"), "items[0]"),
        (order("n2", &["a"], "Se\0oul"), "destination"),
    ] {
        let err = client.add_order(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(field), "{err:?}");
        assert!(err.message().contains("NUL"), "{err:?}");
    }
    let err = client.get_order("10\u{0}1".to_owned()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = client.search_orders("it\0em".to_owned()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("NUL"), "{err:?}");
}

/// The seed's Python client sends `Order(id='101')` to getOrder. Send exactly
/// that message type over the wire and get order 101 back.
async fn seed_client_request_order_with_id_returns_order_101(backend: Backend) {
    let server = seeded_server!(backend);
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/ecommerce.OrderManagement/getOrder");
    let request = Order {
        id: "101".into(),
        ..Order::default()
    };
    let codec = tonic_prost::ProstCodec::<Order, Order>::default();
    let reply = grpc
        .unary(request.into_request(), path, codec)
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), seed::order_101());
}

// ---------- searchOrders ----------

async fn search_matches_items_case_insensitively_each_order_once_by_id(backend: Backend) {
    let orders = [
        order("c", &["Apple Watch", "apple pie"], "A"),
        order("a", &["APPLE"], "A"),
        order("b", &["Banana"], "A"),
        order("d", &["Pineapple"], "A"),
    ];
    let server = server_with!(backend, orders, ServiceConfig::default());
    let mut client = server.connect().await;
    assert_eq!(search_ids(&mut client, "aPpLe").await, ["a", "c", "d"]);
    assert_eq!(search_ids(&mut client, "banana").await, ["b"]);
    assert_eq!(search_ids(&mut client, "").await, ["a", "b", "c", "d"]);
}

async fn search_with_no_match_is_an_empty_ok_stream(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    assert_eq!(
        search_ids(&mut client, "no such item").await,
        Vec::<String>::new()
    );
}

async fn big_store(backend: Backend, n: usize) -> Option<CountingStore> {
    // ~1 KiB per order, so the result (n KiB) is far larger than the HTTP/2
    // flow-control window and the stream buffers together.
    let filler = "x".repeat(1000);
    let orders = (0..n).map(|i| Order {
        id: format!("{i:06}"),
        items: vec![format!("widget {filler}")],
        ..Order::default()
    });
    let examined = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&examined);
    let store = Hooked::new(backend.try_store(orders).await?).on_examine(move |n| {
        counter.fetch_add(n as usize, Ordering::SeqCst);
    });
    Some(CountingStore {
        store: Arc::new(store),
        examined,
    })
}

/// The test and the service hold the store; a running search task holds a
/// third reference until it ends.
async fn wait_for_search_tasks_to_end(store: &CountingStore) {
    for _ in 0..100 {
        if store.holders() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server's search task is still running");
}

async fn settle(store: &CountingStore) -> usize {
    // Wait until the count stops moving: the producer is parked or gone.
    let mut last = store.examined();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = store.examined();
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn search_streams_with_backpressure_instead_of_collecting_everything(backend: Backend) {
    let total = 20_000;
    let Some(store) = big_store(backend, total).await else {
        return;
    };
    let server = store.serve();
    let mut client = server.connect().await;
    let mut stream = client
        .search_orders("widget".to_owned())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().id, "000000");
    let examined_while_paused = settle(&store).await;
    // The count is seen at all (else the bound below would hold vacuously).
    assert!(
        examined_while_paused > 0,
        "the store counted no examined order"
    );
    assert!(
        examined_while_paused < total / 2,
        "the server examined {examined_while_paused} of {total} orders for a client that read one"
    );
    let mut received = 1;
    while let Some(order) = stream.message().await.unwrap() {
        assert_eq!(order.id, format!("{received:06}"));
        received += 1;
    }
    assert_eq!(received, total);
}

async fn cancelling_a_search_stops_the_servers_work(backend: Backend) {
    let total = 20_000;
    let Some(store) = big_store(backend, total).await else {
        return;
    };
    let server = store.serve();
    let mut client = server.connect().await;
    let mut stream = client
        .search_orders("widget".to_owned())
        .await
        .unwrap()
        .into_inner();
    for _ in 0..10 {
        stream.message().await.unwrap().unwrap();
    }
    // While streaming, the search task holds a reference to the store.
    assert_eq!(store.holders(), 3, "test + service + search task");
    drop(stream); // cancels the call (RST_STREAM)
    wait_for_search_tasks_to_end(&store).await;
    let after_cancel = settle(&store).await;
    // Now keep the connection busy with other calls: the search must not resume.
    for _ in 0..20 {
        client.get_order("000001".to_owned()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.examined(), after_cancel);
    assert!(
        after_cancel < total,
        "examined all {total} orders despite the cancel"
    );
}

// ---------- updateOrders ----------

async fn update_replaces_all_orders_and_lists_their_ids(backend: Backend) {
    let server = server_with!(
        backend,
        [
            order("1", &["a"], "X"),
            order("2", &["b"], "X"),
            order("3", &["c"], "X"),
        ],
        ServiceConfig::default(),
    );
    let mut client = server.connect().await;
    let changed = vec![order("1", &["A2"], "Y"), order("3", &["C2"], "Y")];
    let reply = update(&mut client, changed.clone()).await.unwrap();
    assert_eq!(reply, "Updated Order IDs : 1, 3");
    for o in changed {
        assert_eq!(
            client.get_order(o.id.clone()).await.unwrap().into_inner(),
            o
        );
    }
    assert_eq!(
        client
            .get_order("2".to_owned())
            .await
            .unwrap()
            .into_inner()
            .items,
        ["b"]
    );
}

async fn update_with_an_unknown_or_invalid_order_applies_none(backend: Backend) {
    let server = server_with!(
        backend,
        [order("1", &["a"], "X"), order("2", &["b"], "X")],
        ServiceConfig::default(),
    );
    let mut client = server.connect().await;

    let err = update(
        &mut client,
        vec![order("1", &["new"], "X"), order("404", &["n"], "X")],
    )
    .await
    .unwrap_err();
    assert_status(&err, Code::NotFound, "404");

    let err = update(
        &mut client,
        vec![order("1", &["new"], "X"), order("2", &[], "X")],
    )
    .await
    .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "order 2");
    assert_status(&err, Code::InvalidArgument, "items");

    let err = update(
        &mut client,
        vec![order("1", &["new"], "X"), order("1", &["again"], "X")],
    )
    .await
    .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "more than once");

    let err = update(&mut client, vec![order("", &["new"], "X")])
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "id");

    assert_eq!(
        client
            .get_order("1".to_owned())
            .await
            .unwrap()
            .into_inner()
            .items,
        ["a"]
    );
    assert_eq!(
        client
            .get_order("2".to_owned())
            .await
            .unwrap()
            .into_inner()
            .items,
        ["b"]
    );
}

/// An unknown id ends updateOrders as soon as its message arrives, while the
/// client's stream is still open; nothing is applied.
async fn update_reports_an_unknown_id_as_soon_as_it_arrives(backend: Backend) {
    let server = server_with!(backend, [order("1", &["a"], "X")], ServiceConfig::default(),);
    let mut client = server.connect().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(order("1", &["new"], "X")).await.unwrap();
    tx.send(order("404", &["n"], "X")).await.unwrap();
    // `tx` stays open: the answer must not wait for the end of the stream.
    let call = client.update_orders(tokio_stream::wrappers::ReceiverStream::new(rx));
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), call)
        .await
        .expect("NOT_FOUND before the client ended its stream")
        .unwrap_err();
    assert_status(&err, Code::NotFound, "404");
    drop(tx);
    let one = client.get_order("1".to_owned()).await.unwrap().into_inner();
    assert_eq!(one.items, ["a"]);
}

async fn update_beyond_the_bound_is_resource_exhausted_and_applies_none(backend: Backend) {
    let orders: Vec<Order> = (0..6)
        .map(|i| order(&i.to_string(), &["old"], "X"))
        .collect();
    let config = ServiceConfig {
        max_update_orders: 5,
        ..ServiceConfig::default()
    };
    let server = server_with!(backend, orders.clone(), config);
    let mut client = server.connect().await;
    let changed: Vec<Order> = orders
        .iter()
        .map(|o| Order {
            items: vec!["new".into()],
            ..o.clone()
        })
        .collect();
    let err = update(&mut client, changed.clone()).await.unwrap_err();
    assert_status(&err, Code::ResourceExhausted, "at most 5");
    assert_eq!(
        client
            .get_order("0".to_owned())
            .await
            .unwrap()
            .into_inner()
            .items,
        ["old"]
    );
    update(&mut client, changed[..5].to_vec()).await.unwrap();
}

async fn update_with_an_empty_stream_updates_nothing(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    assert_eq!(
        update(&mut client, vec![]).await.unwrap(),
        "Updated Order IDs : "
    );
    assert_eq!(
        client
            .get_order("101".to_owned())
            .await
            .unwrap()
            .into_inner(),
        seed::order_101()
    );
}

// ---------- deadlines ----------

/// The server itself ends calls whose client stream is still open at the
/// deadline with DEADLINE_EXCEEDED. Sent with a raw HTTP/2 client, because
/// tonic's client enforces grpc-timeout locally and might answer first.
async fn deadlines_end_open_streams_with_deadline_exceeded(backend: Backend) {
    let server = seeded_server!(backend);
    for path in [
        "/ecommerce.OrderManagement/processOrders",
        "/ecommerce.OrderManagement/updateOrders",
    ] {
        let request = raw::grpc_request(server.addr, path, &[("grpc-timeout", "300m")]);
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            raw::call(server.addr, request, &[], false),
        )
        .await
        .expect("the server ends the call at the deadline")
        .unwrap();
        assert_eq!(
            response.grpc_status(),
            Some(Code::DeadlineExceeded as i32),
            "{path}: {response:?}"
        );
    }
}

async fn a_search_still_streaming_at_its_deadline_ends_with_deadline_exceeded(backend: Backend) {
    let Some(store) = big_store(backend, 20_000).await else {
        return;
    };
    let server = store.serve();
    let mut client = server.connect().await;
    let mut request = "widget".to_owned().into_request();
    request.set_timeout(Duration::from_millis(300));
    let mut stream = client.search_orders(request).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // a slow reader
    let mut received = 1;
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    let status = end.expect("the stream must not end as if complete");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(received < 20_000);
    wait_for_search_tasks_to_end(&store).await;
}

// ---------- concurrency ----------

async fn concurrent_writers_lose_nothing_and_never_share_a_generated_id(backend: Backend) {
    let server = seeded_server!(backend);
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let mut client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let item = format!("w{writer}-{i}");
                let id = client
                    .add_order(order("", &[&item], "Seoul"))
                    .await
                    .unwrap()
                    .into_inner();
                ids.push((id, item));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), 200, "generated ids collided");

    // Concurrent updates of disjoint orders: every one lands.
    let mut tasks = Vec::new();
    for chunk in all.chunks(25) {
        let mut client = server.connect().await;
        let changed: Vec<Order> = chunk
            .iter()
            .map(|(id, item)| order(id, &[&format!("{item}-updated")], "Busan"))
            .collect();
        tasks.push(tokio::spawn(async move {
            update(&mut client, changed).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut client = server.connect().await;
    for (id, item) in &all {
        let stored = client.get_order(id.clone()).await.unwrap().into_inner();
        assert_eq!(stored.items, [format!("{item}-updated")]);
    }
    assert_eq!(search_ids(&mut client, "-updated").await.len(), 200);
}

for_each_backend!(
    add_then_get_returns_the_same_order,
    add_without_id_gets_a_fresh_unique_id,
    add_existing_id_is_already_exists_and_keeps_the_original,
    add_invalid_order_is_invalid_argument_naming_the_field,
    get_unknown_and_empty_ids,
    nul_characters_are_refused_alike_on_every_backend,
    seed_client_request_order_with_id_returns_order_101,
    search_matches_items_case_insensitively_each_order_once_by_id,
    search_with_no_match_is_an_empty_ok_stream,
    search_streams_with_backpressure_instead_of_collecting_everything,
    cancelling_a_search_stops_the_servers_work,
    update_replaces_all_orders_and_lists_their_ids,
    update_with_an_unknown_or_invalid_order_applies_none,
    update_reports_an_unknown_id_as_soon_as_it_arrives,
    update_beyond_the_bound_is_resource_exhausted_and_applies_none,
    update_with_an_empty_stream_updates_nothing,
    deadlines_end_open_streams_with_deadline_exceeded,
    a_search_still_streaming_at_its_deadline_ends_with_deadline_exceeded,
    concurrent_writers_lose_nothing_and_never_share_a_generated_id,
);
