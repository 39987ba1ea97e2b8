//! gRPC-Web and CORS, in front of the call layer: one tower layer.
//!
//! - **gRPC-Web** (`application/grpc-web`, `application/grpc-web-text`):
//!   translated to gRPC by tonic-web before the call layer, so such a call
//!   is an ordinary gRPC call to the middleware (auth, limits, log line, its
//!   trailers) and tonic-web turns the response back. Other requests are
//!   passed on untouched: tonic-web's own service would answer plain
//!   HTTP/1.1 requests (the JSON API, the console) with 400.
//! - **CORS** (`--cors-allow-origin`): a preflight from an allowed origin is
//!   answered here, without a token (browsers send none with it); other
//!   responses to an allowed origin get `Access-Control-Allow-Origin` and the
//!   headers a gRPC-Web or JSON client reads. With no origin configured,
//!   only same-origin pages (the console) can call from a browser.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Either;
use tonic::body::Body;
use tower::{Layer, Service};

/// Which origins may call from a browser.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// From the `--cors-allow-origin` values: origins, or `*` for any.
    pub fn new(origins: &[String]) -> Result<Self, String> {
        let mut cors = Self::default();
        for origin in origins {
            if origin == "*" {
                cors.any = true;
            } else {
                let value = HeaderValue::from_str(origin.trim_end_matches('/'))
                    .map_err(|_| format!("--cors-allow-origin: not an origin: {origin:?}"))?;
                cors.origins.push(value);
            }
        }
        Ok(cors)
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`.
    fn allow(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if !self.any && self.origins.is_empty() {
            return None; // no lookup: CORS is off, as by default
        }
        let origin = headers.get(header::ORIGIN)?;
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins.contains(origin).then(|| origin.clone())
    }
}

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, OPTIONS";
const ALLOW_HEADERS: &str = "authorization, content-type, x-request-id, x-grpc-web, \
     x-user-agent, grpc-timeout, request-timeout, grpc-accept-encoding";
const EXPOSE_HEADERS: &str = "grpc-status, grpc-message, grpc-status-details-bin, \
     x-request-id, location";

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct WebLayer {
    cors: Arc<Cors>,
}

impl WebLayer {
    pub fn new(cors: Cors) -> Self {
        Self {
            cors: Arc::new(cors),
        }
    }
}

impl<S> Layer<S> for WebLayer {
    type Service = WebService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebService {
            inner,
            cors: Arc::clone(&self.cors),
        }
    }
}

#[derive(Clone)]
pub struct WebService<S> {
    inner: S,
    cors: Arc<Cors>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// The plain path's response: the inner body, unboxed.
type Plain<B> = fn(Response<B>) -> Response<Either<B, Body>>;

/// The inner service's error.
type ErrorOf<S, ReqB> = <S as Service<Request<ReqB>>>::Error;

// Generic over the request's body, which passes through unboxed; tonic-web
// alone needs the inner service to take tonic's boxed body as well.
impl<S, B, ReqB> Service<Request<ReqB>> for WebService<S>
where
    S: Service<Request<ReqB>, Response = Response<B>>
        + Service<Request<Body>, Response = Response<B>, Error = ErrorOf<S, ReqB>>
        + Clone
        + Send
        + 'static,
    <S as Service<Request<ReqB>>>::Future: Send + 'static,
    <S as Service<Request<Body>>>::Future: Send + 'static,
    ErrorOf<S, ReqB>: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + std::fmt::Display,
    ReqB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ReqB::Error: Into<tonic::codegen::StdError> + std::fmt::Display,
{
    type Response = Response<Either<B, Body>>;
    type Error = ErrorOf<S, ReqB>;
    // A gRPC or JSON call without an `Origin` costs no allocation here; the
    // rest (gRPC-Web, CORS) is boxed.
    type Future = futures_util::future::Either<
        futures_util::future::MapOk<<S as Service<Request<ReqB>>>::Future, Plain<B>>,
        BoxFuture<Result<Self::Response, Self::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request<ReqB>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        use futures_util::TryFutureExt as _;
        use futures_util::future::Either as Path;
        let allow = self.cors.allow(request.headers());
        let grpc_web = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
        if allow.is_none() && !grpc_web {
            let plain: Plain<B> = |response| response.map(Either::Left);
            return Path::Left(inner.call(request).map_ok(plain));
        }
        if let Some(origin) = &allow
            && request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let response = preflight(origin.clone());
            return Path::Right(Box::pin(async move { Ok(response) }));
        }
        Path::Right(Box::pin(async move {
            let mut response = if grpc_web {
                let mut web = tonic_web::GrpcWebLayer::new().layer(inner);
                web.call(request).await?.map(Either::Right)
            } else {
                inner.call(request).await?.map(Either::Left)
            };
            if let Some(origin) = allow {
                let headers = response.headers_mut();
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                );
                headers.append(header::VARY, HeaderValue::from_static("origin"));
            }
            Ok(response)
        }))
    }
}

fn preflight<B>(origin: HeaderValue) -> Response<Either<B, Body>> {
    let mut response = Response::new(Either::Right(Body::empty()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    response
}
