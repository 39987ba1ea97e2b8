//! The OrderManagement RPC handlers: validate, ask the store, map outcomes to
//! gRPC statuses. Transport concerns (listening, shutdown) live in `server`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::pb::Order;
use crate::pb::order_management_server::OrderManagement;
use crate::store::{OrderStore, StoreError};

/// The service, over any store.
#[derive(Clone)]
pub struct OrderService {
    store: Arc<dyn OrderStore>,
}

impl OrderService {
    pub fn new(store: Arc<dyn OrderStore>) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl OrderManagement for OrderService {
    async fn get_order(&self, request: Request<String>) -> Result<Response<Order>, Status> {
        let id = request.into_inner();
        let result = get_order(self.store.as_ref(), &id);
        match &result {
            Ok(_) => tracing::info!(method = "getOrder", order_id = %id, outcome = "OK"),
            Err(status) => tracing::info!(
                method = "getOrder",
                order_id = %id,
                outcome = ?status.code(),
                error = status.message()
            ),
        }
        result.map(Response::new)
    }
}

fn get_order(store: &dyn OrderStore, id: &str) -> Result<Order, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("order id must not be empty"));
    }
    store
        .get(id)
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("Order : {id} Not Found.")))
}

fn internal(err: StoreError) -> Status {
    tracing::error!(error = %err, "store failure");
    Status::internal("the order store failed; see the server log")
}
