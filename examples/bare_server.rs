//! The "bare tonic" benchmark baseline: the generated `OrderManagement`
//! server with tonic's defaults and nothing else (no store, no layers, no
//! logging, no health or reflection), so a benchmark can show what the real
//! server's extras cost.
//!
//! getOrder answers the seed's order `101` (a clone of it) and NOT_FOUND
//! (`Order : <id> Not Found.`) for any other id; the other four RPCs answer
//! UNIMPLEMENTED.
//!
//! ```sh
//! cargo run --release --example bare_server -- [--listen ADDR] [--current-thread]
//! ```
//!
//! `--listen` defaults to `127.0.0.1:50061`; port 0 picks a free port.
//! `--current-thread` runs on tokio's current-thread runtime instead of the
//! multi-thread one. Prints `listening on ADDR` (with the actual port) on
//! stderr once bound; nothing per call.

use std::net::SocketAddr;
use std::process::ExitCode;

use order_management::pb::order_management_server::{OrderManagement, OrderManagementServer};
use order_management::pb::{CombinedShipment, Order};
use order_management::seed;
use tokio_stream::Stream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

type ResponseStream<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct Bare {
    order_101: Order,
}

#[tonic::async_trait]
impl OrderManagement for Bare {
    async fn get_order(&self, request: Request<String>) -> Result<Response<Order>, Status> {
        let id = request.into_inner();
        if id == self.order_101.id {
            Ok(Response::new(self.order_101.clone()))
        } else {
            Err(Status::not_found(format!("Order : {id} Not Found.")))
        }
    }

    async fn add_order(&self, _: Request<Order>) -> Result<Response<String>, Status> {
        Err(Status::unimplemented("addOrder"))
    }

    type searchOrdersStream = ResponseStream<Order>;

    async fn search_orders(
        &self,
        _: Request<String>,
    ) -> Result<Response<Self::searchOrdersStream>, Status> {
        Err(Status::unimplemented("searchOrders"))
    }

    async fn update_orders(
        &self,
        _: Request<Streaming<Order>>,
    ) -> Result<Response<String>, Status> {
        Err(Status::unimplemented("updateOrders"))
    }

    type processOrdersStream = ResponseStream<CombinedShipment>;

    async fn process_orders(
        &self,
        _: Request<Streaming<String>>,
    ) -> Result<Response<Self::processOrdersStream>, Status> {
        Err(Status::unimplemented("processOrders"))
    }
}

async fn serve(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    // What `Server::serve(addr)` does with the builder's defaults (TCP_NODELAY
    // on, no TCP keepalive), split in two so we can print the bound port.
    let incoming = TcpIncoming::bind(listen)?.with_nodelay(Some(true));
    eprintln!("listening on {}", incoming.local_addr()?);
    let service = Bare {
        order_101: seed::order_101(),
    };
    Server::builder()
        .add_service(OrderManagementServer::new(service))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

#[tokio::main]
async fn multi_thread(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    serve(listen).await
}

#[tokio::main(flavor = "current_thread")]
async fn current_thread(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    serve(listen).await
}

const USAGE: &str = "usage: bare_server [--listen ADDR] [--current-thread]";

fn main() -> ExitCode {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 50061).into();
    let mut current = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--current-thread" => {
                current = true;
                continue;
            }
            "--listen" => args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => arg.strip_prefix("--listen=").map(str::to_owned),
        };
        match value.map(|v| v.parse()) {
            Some(Ok(addr)) => listen = addr,
            _ => {
                eprintln!("bare_server: bad argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let result = if current {
        current_thread(listen)
    } else {
        multi_thread(listen)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare_server: {e}");
            ExitCode::FAILURE
        }
    }
}
