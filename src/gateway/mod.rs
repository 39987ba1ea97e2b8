//! The service without a gRPC stack, on the gRPC port:
//!
//! - the HTTP/JSON API ([`routes`]): the `google.api.http` mapping declared
//!   in `proto/order.proto`, in the proto3 JSON mapping, errors as JSON with
//!   grpc-gateway's HTTP statuses ([`error`]), streams as NDJSON or SSE
//!   ([`stream`]), bodies read by [`json`];
//! - gRPC-Web and CORS ([`web`]), translated to gRPC before the call layer;
//! - the orders console (`crate::console`) at `/`, and `/openapi.json`.
//!
//! axum is tonic's own router, so these routes and the gRPC services are one
//! `tonic::service::Routes` behind the one call layer (`crate::middleware`):
//! the same auth, admission, deadlines, request ids, log line and body
//! budget for every request. The handlers call the same `OrderService` as
//! gRPC calls do.

pub mod error;
pub mod json;
pub mod routes;
pub mod stream;
pub mod web;

use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use http::{HeaderValue, Method, StatusCode, header};
use tonic::Status;

use crate::service::OrderService;

/// The body limits, from the server's flags.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A JSON body of addOrder or processOrders (`--max-request-bytes`).
    pub max_request_bytes: usize,
    /// A JSON body of updateOrders (`--max-update-bytes`).
    pub max_update_bytes: usize,
}

/// What every handler shares.
#[derive(Clone)]
pub struct Gateway {
    service: OrderService,
    limits: Limits,
}

/// The OpenAPI 3 document of the API, written by `cargo xtask codegen`.
pub const OPENAPI: &str = include_str!("../../generated/openapi.json");

/// Paths served to anyone, without a token or an admission slot: static
/// files that hold no orders.
const PUBLIC: &[&str] = &["/", "/openapi.json", "/console.js", "/console.css"];

/// Whether `path` is served without a token or a slot.
pub fn is_public(path: &str) -> bool {
    PUBLIC.contains(&path)
}

/// Whether a request of the API writes (takes a write slot).
pub fn is_write(method: &Method, path: &str) -> bool {
    path == "/v1/orders" && matches!(*method, Method::POST | Method::PATCH | Method::PUT)
}

/// The API, the console and the OpenAPI document, for `tonic::service::Routes`.
/// Any other path: `UNIMPLEMENTED` for gRPC (as tonic answers), 404 otherwise.
pub fn router(service: OrderService, limits: Limits) -> axum::Router {
    use axum::routing::get;
    routes::router()
        .route(
            "/",
            get(|| async { asset(crate::console::INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console.js",
            get(|| async { asset(crate::console::CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console.css",
            get(|| async { asset(crate::console::CONSOLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/openapi.json",
            get(|| async { asset(OPENAPI, "application/json") }),
        )
        .fallback(not_found)
        .with_state(Gateway { service, limits })
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn not_found(request: Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let (parts, ()) = Status::unimplemented("").into_http::<()>().into_parts();
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    let info = routes::call_info(&request);
    let failure = error::Failure::new(
        StatusCode::NOT_FOUND,
        Status::not_found(format!(
            "no such path: {} {}; the API is under /v1/ (see /openapi.json)",
            request.method(),
            request.uri().path()
        )),
    );
    routes::failure_response(&info, &failure)
}
