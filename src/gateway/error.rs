//! How a failed call looks over HTTP/JSON: the HTTP status grpc-gateway
//! gives each gRPC code, and a JSON body with the code, its name, the
//! message, the details (`google.rpc.BadRequest` field violations, in the
//! proto3 JSON form of `google.protobuf.Any`) and the request id to quote.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The HTTP status for a gRPC code, as grpc-gateway's
/// `runtime.HTTPStatusFromCode` maps it.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // nginx's "client closed request", grpc-gateway's choice too.
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A code's name as the gRPC spec writes it: `NOT_FOUND`.
pub fn code_name(code: Code) -> String {
    let camel = crate::log::call_line::code_name(code);
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The JSON error object: `{code, status, message, details, request_id}`.
pub fn json(status: &Status, request_id: &str) -> serde_json::Value {
    let mut details = Vec::new();
    if let Some(bad) = status.get_details_bad_request() {
        let violations: Vec<serde_json::Value> = bad
            .field_violations
            .iter()
            .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
            .collect();
        details.push(serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }));
    }
    serde_json::json!({
        "code": status.code() as i32,
        "status": code_name(status.code()),
        "message": status.message(),
        "details": details,
        "request_id": request_id,
    })
}

/// A whole error response: `http` (or the code's HTTP status) and the JSON.
pub fn response_with(http: StatusCode, status: &Status, request_id: &str) -> http::Response<Bytes> {
    let mut body = serde_json::to_vec(&json(status, request_id)).expect("JSON always serializes");
    body.push(b'\n');
    let mut response = http::Response::new(Bytes::from(body));
    *response.status_mut() = http;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status.code() == Code::Unauthenticated {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The error response for `status`, with the HTTP status of its code.
pub fn response(status: &Status, request_id: &str) -> http::Response<Bytes> {
    response_with(http_status(status.code()), status, request_id)
}

/// A failed HTTP/JSON call: a gRPC status, and the HTTP status when it is
/// more precise than the code's (413 for a body too large, 415, 405, 404).
#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    pub http: StatusCode,
}

impl Failure {
    pub fn new(http: StatusCode, status: Status) -> Self {
        Self { status, http }
    }

    pub fn response(&self, request_id: &str) -> http::Response<Bytes> {
        response_with(self.http, &self.status, request_id)
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Self {
            http: http_status(status.code()),
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_as_grpc_gateway_maps_them() {
        for (code, http) in [
            (Code::NotFound, 404),
            (Code::InvalidArgument, 400),
            (Code::AlreadyExists, 409),
            (Code::Unauthenticated, 401),
            (Code::ResourceExhausted, 429),
            (Code::DeadlineExceeded, 504),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
            (Code::Cancelled, 499),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::Ok), "OK");
    }
}
