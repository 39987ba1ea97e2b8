//! The OrderManagement RPC handlers: validate, ask the store, map outcomes to
//! gRPC statuses. Transport concerns (listening, shutdown) live in `server`.
//!
//! The store is async and owns its own ordering and blocking: writes are
//! applied in call order and never stall the runtime (see `crate::store`).
//! Streams are produced by a task feeding a channel bounded in bytes and
//! counted against `--max-buffered-bytes` (`search_pipe`, `shipment_pipe`):
//! the task waits while the client is slow (backpressure) and stops when the
//! client goes away (the channel closes).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt as _;
use tonic_types::{ErrorDetails, StatusExt as _};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::buffer_budget::Budget;
use crate::call::CallInfo;
use crate::call::deadline;
use crate::metrics::rpc::{self, Method};
use crate::pb::order_management_server::OrderManagement;
use crate::pb::{CombinedShipment, Order};
use crate::search_pipe::{self, PipeSender};
use crate::shipment_pipe::{self, ShipmentSender};
use crate::shipments::Batcher;
use crate::store::{OrderStore, StoreError};
use crate::validate::{self, Violation};

/// Tunables of the service, set from the server's command line.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// processOrders sends the shipments so far every `batch_size` ids.
    pub batch_size: usize,
    /// The most orders one updateOrders call may carry.
    pub max_update_orders: usize,
    /// The server's budget of bytes held for clients (`--max-buffered-bytes`),
    /// which searchOrders results waiting to be read count against; none
    /// outside a server.
    pub buffered: Option<Arc<Budget>>,
}

impl ServiceConfig {
    /// The defaults, also the server's command-line defaults.
    pub const DEFAULT: Self = Self {
        batch_size: 3,
        max_update_orders: 1_000,
        buffered: None,
    };
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Pages a search's pipe holds at most (it is bounded in bytes too).
const STREAM_BUFFER: usize = 32;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The service, over any store.
#[derive(Clone)]
pub struct OrderService {
    store: Arc<dyn OrderStore>,
    config: ServiceConfig,
}

impl OrderService {
    pub fn new(store: Arc<dyn OrderStore>) -> Self {
        Self::with_config(store, ServiceConfig::default())
    }

    pub fn with_config(store: Arc<dyn OrderStore>, config: ServiceConfig) -> Self {
        Self { store, config }
    }
}

#[tonic::async_trait]
impl OrderManagement for OrderService {
    async fn add_order(&self, request: Request<Order>) -> Result<Response<String>, Status> {
        let call = CallInfo::of(&request);
        let end = call.end().clone();
        let order = request.into_inner();
        call.set_order_id(&order.id);
        end.run(self.add(order, end.deadline(), &call))
            .await
            .map(Response::new)
    }

    async fn get_order(&self, request: Request<String>) -> Result<Response<Order>, Status> {
        let call = CallInfo::of(&request);
        let id = request.into_inner();
        call.set_order_id(&id);
        // A read blocked in the store (a locked PostgreSQL table) ends with
        // the call: DEADLINE_EXCEEDED, and dropping it cancels the query.
        call.end()
            .run(Box::pin(get(self.store.as_ref(), &id, &call)))
            .await
            .map(Response::new)
    }

    type searchOrdersStream = ResponseStream<Order>;

    async fn search_orders(
        &self,
        request: Request<String>,
    ) -> Result<Response<Self::searchOrdersStream>, Status> {
        let call = CallInfo::of(&request);
        let end = call.end().clone();
        let query = request.into_inner();
        if query.contains('\0') {
            return Err(Status::invalid_argument(
                "search query must not contain a NUL character (U+0000)",
            ));
        }
        let (tx, rx) = search_pipe::pipe(STREAM_BUFFER, self.config.buffered.clone());
        let raw = tx.raw();
        let producer = search(Arc::clone(&self.store), query, tx, Arc::clone(&call));
        spawn_producer(raw, producer, call);
        Ok(Response::new(Box::pin(end.bound(rx))))
    }

    async fn update_orders(
        &self,
        request: Request<Streaming<Order>>,
    ) -> Result<Response<String>, Status> {
        let call = CallInfo::of(&request);
        let end = call.end().clone();
        end.run(self.update(request.into_inner(), end.deadline(), &call))
            .await
            .map(Response::new)
    }

    type processOrdersStream = ResponseStream<CombinedShipment>;

    async fn process_orders(
        &self,
        request: Request<Streaming<String>>,
    ) -> Result<Response<Self::processOrdersStream>, Status> {
        let call = CallInfo::of(&request);
        let end = call.end().clone();
        let (tx, rx) = shipment_pipe::pipe(self.config.buffered.clone());
        let raw = tx.raw();
        let producer = process(
            Arc::clone(&self.store),
            self.config.batch_size,
            request.into_inner(),
            tx,
            Arc::clone(&call),
        );
        spawn_producer(raw, producer, call);
        Ok(Response::new(Box::pin(end.bound(rx))))
    }
}

/// Runs a stream's producer as its own task. A panic in it must not look
/// like a normal end of the stream: the client gets `INTERNAL` instead.
fn spawn_producer<T: Send + 'static>(
    tx: mpsc::Sender<Result<T, Status>>,
    producer: impl Future<Output = ()> + Send + 'static,
    call: Arc<CallInfo>,
) {
    tokio::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(producer).catch_unwind().await {
            crate::metrics::panicked();
            let what = crate::call::panic_message(panic.as_ref());
            tracing::error!(
                panic = what,
                request_id = call.request_id(),
                "a response stream's producer panicked"
            );
            let _ = tx
                .send(Err(Status::internal("internal error while streaming")))
                .await;
        }
    });
}

impl OrderService {
    async fn add(
        &self,
        mut order: Order,
        deadline: Option<Instant>,
        call: &CallInfo,
    ) -> Result<String, Status> {
        let violations = validate::order(&order, validate::Id::Optional);
        if !violations.is_empty() {
            return Err(invalid_order(&order.id, &violations));
        }
        let generate = order.id.is_empty();
        // A fresh id collides only if someone stored that exact id by hand; try again then.
        for _ in 0..3 {
            if generate {
                order.id = new_id();
            }
            let id = order.id.clone();
            let span = crate::trace::store_span(call, "store.insert");
            let inserted = self.store.insert(order.clone(), deadline).await;
            drop(span);
            match inserted {
                Ok(()) => return Ok(id),
                Err(StoreError::AlreadyExists(_)) if generate => continue,
                Err(StoreError::AlreadyExists(id)) => {
                    return Err(Status::already_exists(format!("order {id} already exists")));
                }
                Err(StoreError::DeadlineExceeded) => return Err(deadline::exceeded()),
                Err(e) => return Err(internal(e, call)),
            }
        }
        Err(Status::internal("could not generate an unused order id"))
    }

    async fn update(
        &self,
        mut inbound: Streaming<Order>,
        deadline: Option<Instant>,
        call: &CallInfo,
    ) -> Result<String, Status> {
        let max = self.config.max_update_orders;
        let mut orders = Vec::new();
        let mut ids = HashSet::new();
        while let Some(order) = inbound.message().await? {
            rpc::stream_received(Method::UpdateOrders);
            if orders.len() == max {
                return Err(Status::resource_exhausted(format!(
                    "at most {max} orders per updateOrders call; none was updated"
                )));
            }
            let violations = validate::order(&order, validate::Id::Required);
            if !violations.is_empty() {
                return Err(invalid_order(&order.id, &violations));
            }
            if !ids.insert(order.id.clone()) {
                return Err(Status::invalid_argument(format!(
                    "order {} appears more than once in this call; none was updated",
                    order.id
                )));
            }
            // Fail fast: an unknown id ends the call as soon as it arrives,
            // not after the client sent the rest. (The store checks again
            // when it applies the call, all or nothing.)
            if self
                .store
                .get(&order.id)
                .await
                .map_err(|e| internal(e, call))?
                .is_none()
            {
                return Err(update_not_found(&order.id));
            }
            orders.push(order);
        }
        let updated: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
        let span = crate::trace::store_span(call, "store.update_all");
        let updated_all = self.store.update_all(orders, deadline).await;
        drop(span);
        match updated_all {
            Ok(()) => Ok(format!("Updated Order IDs : {}", updated.join(", "))),
            Err(StoreError::NotFound(id)) => Err(update_not_found(&id)),
            Err(StoreError::DeadlineExceeded) => Err(deadline::exceeded()),
            Err(e) => Err(internal(e, call)),
        }
    }
}

async fn get(store: &dyn OrderStore, id: &str, call: &CallInfo) -> Result<Order, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("order id must not be empty"));
    }
    if id.contains('\0') {
        // Ids with control characters are refused when added, so this one
        // cannot exist (and PostgreSQL could not even be asked for it).
        return Err(not_found(id));
    }
    let span = crate::trace::store_span(call, "store.get");
    let found = store.get(id).await;
    drop(span);
    found
        .map_err(|e| internal(e, call))?
        .ok_or_else(|| not_found(id))
}

/// Streams every order with an item containing `query` (case-insensitive),
/// in id order, a bounded step at a time, until done or the client leaves.
async fn search(store: Arc<dyn OrderStore>, query: String, tx: PipeSender, call: Arc<CallInfo>) {
    let mut after: Option<String> = None;
    // Bounded in bytes, not only in candidates (see `search_pipe`).
    let mut step = search_pipe::FIRST_STEP;
    loop {
        // Room in the server's budget first: while stalled streams fill it,
        // the search waits here rather than adding a page to them.
        let Ok(reserved) = tx.reserve().await else {
            return; // the client is gone
        };
        let span = crate::trace::store_span(&call, "store.search");
        let page = store.search(&query, after.as_deref(), step).await;
        drop(span);
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send_error(internal(e, &call)).await;
                return;
            }
        };
        let bytes = page.orders.iter().map(search_pipe::held_bytes).sum();
        step = search_pipe::next_step(step, page.examined, bytes);
        crate::metrics::store::searched(page.examined, page.orders.len());
        let sent = page.orders.len();
        if tx.send_page(page.orders, reserved).await.is_err() {
            return; // the client is gone
        }
        for _ in 0..sent {
            rpc::stream_sent(Method::SearchOrders);
        }
        match page.next {
            Some(next) if !tx.is_closed() => after = Some(next),
            Some(_) => return,
            None => break,
        }
        // A step that matched nothing never waits on the channel: yield anyway.
        tokio::task::yield_now().await;
    }
}

/// Reads order ids as they come and sends the shipments of each full batch,
/// then the rest when the client's stream ends.
async fn process(
    store: Arc<dyn OrderStore>,
    batch_size: usize,
    mut inbound: Streaming<String>,
    tx: ShipmentSender,
    call: Arc<CallInfo>,
) {
    let mut batcher = Batcher::new(batch_size);
    let outcome: Result<(), Status> = async {
        loop {
            let next = tokio::select! {
                // The response side is gone (client cancelled or deadline): stop.
                () = tx.closed() => return Ok(()),
                next = inbound.message() => next?,
            };
            let Some(id) = next else { break };
            rpc::stream_received(Method::ProcessOrders);
            // Read only while the budget has room; counted from then on.
            tx.room().await.map_err(|()| gone())?;
            let order = get(store.as_ref(), &id, &call).await?;
            tx.hold(&order);
            if let Some(batch) = batcher.add(order) {
                send_all(&tx, batch).await?;
            }
        }
        send_all(&tx, batcher.finish()).await
    }
    .await;
    if let Err(status) = outcome {
        let _ = tx.send_error(status).await;
    }
}

async fn send_all(tx: &ShipmentSender, shipments: Vec<CombinedShipment>) -> Result<(), Status> {
    for shipment in shipments {
        tx.send(shipment).await.map_err(|()| gone())?;
        rpc::stream_sent(Method::ProcessOrders);
    }
    Ok(())
}

/// A stream's end when its client has gone: no one will read it.
fn gone() -> Status {
    Status::cancelled("the client went away")
}

/// A fresh order id: a UUIDv7, unique and roughly ordered by creation time.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn update_not_found(id: &str) -> Status {
    Status::not_found(format!(
        "Order : {id} Not Found. None of the orders in this call was updated."
    ))
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("Order : {id} Not Found."))
}

/// `INVALID_ARGUMENT` naming every bad field, in the message for people and
/// as `google.rpc.BadRequest` field violations for programs.
fn invalid_order(id: &str, violations: &[Violation]) -> Status {
    let what = if id.is_empty() {
        "invalid order".to_owned()
    } else {
        format!("invalid order {id}")
    };
    let details: Vec<String> = violations.iter().map(Violation::to_string).collect();
    let mut bad_request = ErrorDetails::new();
    for v in violations {
        bad_request.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{what}: {}", details.join("; ")),
        bad_request,
    )
}

fn internal(err: StoreError, call: &CallInfo) -> Status {
    let request_id = call.request_id();
    if let StoreError::Unavailable(why) = &err {
        // A database store that cannot be reached: the client may retry.
        tracing::warn!(error = %err, request_id, "store unavailable");
        return Status::unavailable(format!("the order store is unavailable: {why}"));
    }
    if let StoreError::Exhausted(why) = &err {
        // A full disk: nothing was written; the client may retry later.
        tracing::warn!(error = %err, request_id, "store out of space");
        return Status::resource_exhausted(format!("the order store is out of space: {why}"));
    }
    tracing::error!(error = %err, request_id, "store failure");
    Status::internal("the order store failed; see the server log")
}
