//! The routes of the HTTP/JSON API, as `proto/order.proto`'s
//! `google.api.http` options declare them (a test checks that they agree),
//! each calling the same `OrderManagement` implementation the gRPC server
//! calls, so validation, the store and the errors are the same.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse as _, Response};
use http::{HeaderValue, StatusCode, header};
use tonic::{Code, Status};

use super::error::Failure;
use super::stream::{self, Framing};
use super::{Gateway, json};
use crate::call::CallInfo;
use crate::call::deadline::CallEnd;
use crate::pb::order_management_server::OrderManagement as _;

/// Every route of the API: (method, path template, gRPC method). The
/// OpenAPI document and the test against the proto's options read it.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/v1/orders", "addOrder"),
    ("GET", "/v1/orders/{value}", "getOrder"),
    ("GET", "/v1/orders", "searchOrders"),
    ("PATCH", "/v1/orders", "updateOrders"),
    ("PUT", "/v1/orders", "updateOrders"),
    ("POST", "/v1/shipments:process", "processOrders"),
];

/// The router of the API alone.
pub fn router() -> axum::Router<Gateway> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/v1/orders",
            get(search_orders)
                .post(add_order)
                .patch(update_orders)
                .put(update_orders)
                .fallback(|r: Request| wrong_method(r, "GET, POST, PATCH, PUT")),
        )
        .route(
            "/v1/orders/{value}",
            get(get_order).fallback(|r: Request| wrong_method(r, "GET")),
        )
        .route(
            "/v1/shipments:process",
            post(process_orders).fallback(|r: Request| wrong_method(r, "POST")),
        )
}

/// The call's info as the middleware filled it, or fresh info for a
/// gateway served without it.
pub fn call_info(request: &Request) -> Arc<CallInfo> {
    match request.extensions().get::<Arc<CallInfo>>() {
        Some(info) => Arc::clone(info),
        None => CallInfo::new(None, CallEnd::caller_only(request.headers())),
    }
}

/// `message` as a tonic request carrying the call's info.
fn grpc<T>(message: T, info: &Arc<CallInfo>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(Arc::clone(info));
    request
}

/// The response of a call: success noted for the log line, or the error.
fn finish(info: &CallInfo, result: Result<Response, Failure>) -> Response {
    match result {
        Ok(response) => {
            info.set_outcome(Code::Ok);
            response
        }
        Err(failure) => failure_response(info, &failure),
    }
}

pub fn failure_response(info: &CallInfo, failure: &Failure) -> Response {
    info.set_outcome(failure.status.code());
    failure
        .response(info.request_id())
        .map(axum::body::Body::from)
}

fn json_response(status: StatusCode, json: String) -> Response {
    let mut response = (status, format!("{json}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn get_order(
    State(gateway): State<Gateway>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Response {
    let info = call_info(&request);
    let result = async {
        let Path(id) = path.map_err(|e| Status::invalid_argument(e.body_text()))?;
        let order = gateway.service.get_order(grpc(id, &info)).await?;
        let json = crate::format::to_json("ecommerce.Order", order.get_ref());
        Ok(json_response(StatusCode::OK, json))
    };
    finish(&info, result.await)
}

async fn add_order(State(gateway): State<Gateway>, request: Request) -> Response {
    let info = call_info(&request);
    let result = async {
        let (parts, body) = request.into_parts();
        let max = gateway.limits.max_request_bytes;
        let value = json::read(&parts.headers, body, max, "--max-request-bytes").await?;
        let order = json::order(value)?;
        let id = gateway
            .service
            .add_order(grpc(order, &info))
            .await?
            .into_inner();
        let mut response = json_response(
            StatusCode::CREATED,
            serde_json::json!({ "id": id }).to_string(),
        );
        let location = format!("/v1/orders/{}", percent_encode(&id));
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    };
    finish(&info, result.await)
}

async fn search_orders(
    State(gateway): State<Gateway>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let info = call_info(&request);
    let framing = Framing::of(request.headers());
    let result = async {
        let Query(query) = query.map_err(|e| Status::invalid_argument(e.body_text()))?;
        if let Some(unknown) = query.keys().find(|k| !matches!(k.as_str(), "q" | "value")) {
            return Err(Status::invalid_argument(format!(
                "unknown query parameter {unknown:?}: searchOrders takes `q` (or `value`)"
            ))
            .into());
        }
        let text = query.get("q").or(query.get("value")).cloned();
        let text = text.unwrap_or_default();
        let orders = gateway
            .service
            .search_orders(grpc(text, &info))
            .await?
            .into_inner();
        stream::respond(orders, "ecommerce.Order", framing, Arc::clone(&info)).await
    };
    match result.await {
        Ok(response) => response,
        Err(failure) => failure_response(&info, &failure),
    }
}

async fn update_orders(State(gateway): State<Gateway>, request: Request) -> Response {
    let info = call_info(&request);
    let result = async {
        let (parts, body) = request.into_parts();
        let max = gateway.limits.max_update_bytes;
        let value = json::read(&parts.headers, body, max, "--max-update-bytes").await?;
        let orders = json::orders(value)?;
        let message = gateway
            .service
            .update_orders(grpc(json::streaming(&orders), &info))
            .await?
            .into_inner();
        let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        let body = serde_json::json!({ "message": message, "updated": ids });
        Ok(json_response(StatusCode::OK, body.to_string()))
    };
    finish(&info, result.await)
}

async fn process_orders(State(gateway): State<Gateway>, request: Request) -> Response {
    let info = call_info(&request);
    let framing = Framing::of(request.headers());
    let result = async {
        let (parts, body) = request.into_parts();
        let max = gateway.limits.max_request_bytes;
        let value = json::read(&parts.headers, body, max, "--max-request-bytes").await?;
        let ids = json::ids(value)?;
        let shipments = gateway
            .service
            .process_orders(grpc(json::streaming(&ids), &info))
            .await?
            .into_inner();
        stream::respond(
            shipments,
            "ecommerce.CombinedShipment",
            framing,
            Arc::clone(&info),
        )
        .await
    };
    match result.await {
        Ok(response) => response,
        Err(failure) => failure_response(&info, &failure),
    }
}

/// 405 with the methods the path takes.
async fn wrong_method(request: Request, allow: &'static str) -> Response {
    let info = call_info(&request);
    let failure = Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Status::unimplemented(format!(
            "{} {} is not part of the API; this path takes {allow}",
            request.method(),
            request.uri().path()
        )),
    );
    let mut response = failure_response(&info, &failure);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// An order id as one path segment.
fn percent_encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DescriptorPool, Value};

    use super::ROUTES;

    /// The routes served are the ones `proto/order.proto` declares.
    #[test]
    fn routes_match_the_google_api_http_options() {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let http = pool.get_extension_by_name("google.api.http").unwrap();
        let service = pool.get_service_by_name(crate::pb::SERVICE_NAME).unwrap();
        let mut declared = Vec::new();
        for method in service.methods() {
            let options = method.options();
            let rule = options.get_extension(&http);
            let Value::Message(rule) = rule.as_ref() else {
                panic!("{} has no http rule", method.name());
            };
            let mut rules = vec![rule.clone()];
            if let Some(Value::List(more)) =
                rule.get_field_by_name("additional_bindings").as_deref()
            {
                rules.extend(more.iter().filter_map(|v| v.as_message().cloned()));
            }
            for rule in rules {
                for verb in ["get", "put", "post", "delete", "patch"] {
                    if rule.has_field_by_name(verb) {
                        let path = rule.get_field_by_name(verb).unwrap();
                        let path = path.as_str().unwrap().to_owned();
                        declared.push((verb.to_uppercase(), path, method.name().to_owned()));
                    }
                }
            }
        }
        let mut served: Vec<(String, String, String)> = ROUTES
            .iter()
            .map(|(v, p, m)| ((*v).to_owned(), (*p).to_owned(), (*m).to_owned()))
            .collect();
        declared.sort();
        served.sort();
        assert_eq!(declared, served);
    }
}
