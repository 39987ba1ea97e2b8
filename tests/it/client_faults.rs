//! The client CLI under server faults: it retries nothing (a write that
//! failed with UNAVAILABLE may or may not have been applied, so resending it
//! is the caller's decision), and says clearly what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{run_client, stderr};
use order_management::pb::order_management_server::{OrderManagement, OrderManagementServer};
use order_management::{CombinedShipment, Order};
use tonic::{Request, Response, Status, Streaming};

/// A server whose every RPC fails with UNAVAILABLE, counting the calls.
#[derive(Clone, Default)]
struct Unavailable {
    calls: Arc<AtomicUsize>,
}

impl Unavailable {
    fn fail<T>(&self) -> Result<T, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(Status::unavailable("backend restarting"))
    }
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl OrderManagement for Unavailable {
    async fn add_order(&self, _: Request<Order>) -> Result<Response<String>, Status> {
        self.fail()
    }
    async fn get_order(&self, _: Request<String>) -> Result<Response<Order>, Status> {
        self.fail()
    }
    type searchOrdersStream = Stream<Order>;
    async fn search_orders(
        &self,
        _: Request<String>,
    ) -> Result<Response<Self::searchOrdersStream>, Status> {
        self.fail()
    }
    async fn update_orders(
        &self,
        _: Request<Streaming<Order>>,
    ) -> Result<Response<String>, Status> {
        self.fail()
    }
    type processOrdersStream = Stream<CombinedShipment>;
    async fn process_orders(
        &self,
        _: Request<Streaming<String>>,
    ) -> Result<Response<Self::processOrdersStream>, Status> {
        self.fail()
    }
}

fn start(service: Unavailable) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(OrderManagementServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
    });
    url
}

#[test]
fn unavailable_is_reported_once_and_never_retried() {
    let service = Unavailable::default();
    let calls = Arc::clone(&service.calls);
    let url = start(service);
    let cases: [&[&str]; 4] = [
        &[
            "add",
            "--item",
            "x",
            "--price",
            "1",
            "--destination",
            "Seoul",
        ],
        &["get", "101"],
        &["search", "x"],
        &["process", "101"],
    ];
    for (i, args) in cases.iter().enumerate() {
        let out = run_client(&url, args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "client: Unavailable: backend restarting\n",
            "{args:?}"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            i + 1,
            "{args:?} was sent more than once"
        );
    }
}
