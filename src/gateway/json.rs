//! Request bodies of the HTTP/JSON API: read within the size limit, parsed
//! in the proto3 JSON mapping (`crate::format`, the one `client --json`
//! uses: unknown fields and wrong types are refused, naming the field), and
//! turned into the messages the gRPC handlers take.

use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;
use prost::Message;
use tonic::Status;

use super::error::Failure;
use crate::pb::Order;

/// Reads a JSON body of at most `max` bytes.
pub async fn read(
    headers: &HeaderMap,
    body: axum::body::Body,
    max: usize,
    flag: &str,
) -> Result<serde_json::Value, Failure> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let essence = kind.to_str().unwrap_or("").split(';').next().unwrap_or("");
        if !essence.trim().eq_ignore_ascii_case("application/json") {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Status::invalid_argument(format!(
                    "content-type must be application/json, got {:?}",
                    String::from_utf8_lossy(kind.as_bytes())
                )),
            ));
        }
    }
    let too_large = || {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Status::out_of_range(format!(
                "the request body is larger than {max} bytes ({flag})"
            )),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err(body_error(e.as_ref()).into()),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Status::invalid_argument("the request body is empty; send JSON").into());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Status::invalid_argument(format!("the request body is not valid JSON: {e}")).into()
    })
}

/// What went wrong while reading a body: the middleware's own status (the
/// message timeout, the buffered-bytes budget) if that is it.
fn body_error(e: &(dyn std::error::Error + 'static)) -> Status {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(status) = e.downcast_ref::<Status>() {
            return status.clone();
        }
        source = e.source();
    }
    Status::invalid_argument(format!("cannot read the request body: {e}"))
}

/// One order from its proto3 JSON. A value of the wrong type is named by
/// its field (prost-reflect's message says only what it expected).
pub fn order(json: serde_json::Value) -> Result<Order, Status> {
    let fields = match &json {
        serde_json::Value::Object(fields) => fields.clone(),
        _ => serde_json::Map::new(),
    };
    crate::format::from_json::<Order>("ecommerce.Order", json).map_err(|whole| {
        let field = fields.into_iter().find_map(|(name, value)| {
            let alone = serde_json::Value::Object([(name.clone(), value)].into_iter().collect());
            crate::format::from_json::<Order>("ecommerce.Order", alone)
                .err()
                .map(|_| name)
        });
        match field {
            Some(name) if !whole.contains(&format!("`{name}`")) => {
                Status::invalid_argument(format!("{whole} (field `{name}`)"))
            }
            _ => Status::invalid_argument(whole),
        }
    })
}

/// A JSON array of orders (updateOrders).
pub fn orders(json: serde_json::Value) -> Result<Vec<Order>, Status> {
    let serde_json::Value::Array(list) = json else {
        return Err(Status::invalid_argument(
            "the request body must be a JSON array of orders",
        ));
    };
    list.into_iter()
        .enumerate()
        .map(|(i, o)| {
            order(o).map_err(|e| Status::invalid_argument(format!("[{i}]: {}", e.message())))
        })
        .collect()
}

/// A JSON array of order ids (processOrders).
pub fn ids(json: serde_json::Value) -> Result<Vec<String>, Status> {
    let serde_json::Value::Array(list) = json else {
        return Err(Status::invalid_argument(
            "the request body must be a JSON array of order ids (strings)",
        ));
    };
    list.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            serde_json::Value::String(id) => Ok(id),
            other => Err(Status::invalid_argument(format!(
                "[{i}]: an order id must be a string, got {other}"
            ))),
        })
        .collect()
}

/// `messages` as the request stream of a client-streaming handler: the
/// same gRPC frames a gRPC client would send, so the handler (and its
/// limits) cannot tell the difference.
pub fn streaming<M>(messages: &[M]) -> tonic::Streaming<M>
where
    M: Message + Default + Send + 'static,
{
    let mut buf = BytesMut::new();
    for m in messages {
        buf.put_u8(0);
        buf.put_u32(m.encoded_len() as u32);
        m.encode(&mut buf).expect("BytesMut grows as needed");
    }
    let body = http_body_util::Full::new(Bytes::from(buf));
    tonic::Streaming::new_request(tonic_prost::ProstDecoder::<M>::default(), body, None, None)
}
