//! Distributed tracing (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): every call is a server span named
//! `ecommerce.OrderManagement/getOrder` (OpenTelemetry's RPC conventions:
//! `rpc.system=grpc`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`),
//! a child of the caller's W3C `traceparent` when it sends one, with a
//! child span per store operation (`store.get`, `store.insert`,
//! `store.update_all`, `store.search`). Spans go to an OTLP/gRPC collector
//! in batches ([`export`]): a full queue drops spans (counted), never
//! slows a call.
//!
//! The OpenTelemetry API is used directly, not through `tracing` spans: a
//! `tracing` span per call was the largest cost of a call once (see
//! `src/call/mod.rs`). Off (no endpoint), a call pays one atomic load.

pub mod export;

use std::sync::OnceLock;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span};
use tonic::Code;

use crate::call::CallInfo;
use crate::metrics::rpc::method_def;

struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// The share of calls without a caller's trace that are recorded.
    ratio: f64,
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

/// Starts exporting spans to `endpoint` (e.g. `http://localhost:4317`),
/// sampling `ratio` of the traces that start here (a caller's sampled
/// `traceparent` is always followed). For the whole process.
pub fn init(endpoint: &str, ratio: f64) -> Result<(), String> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!(
            "--trace-sample-ratio must be between 0 and 1, got {ratio}"
        ));
    }
    let processor = export::QueueProcessor::start(endpoint)?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("order-management")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        // Root spans are sampled before they are built (`start_call`): an
        // unsampled call then costs no span at all.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("order-management");
    let tracing = Tracing {
        provider,
        tracer,
        propagator: TraceContextPropagator::new(),
        ratio,
    };
    TRACING
        .set(tracing)
        .map_err(|_| "tracing is already on".to_owned())?;
    tracing::info!("exporting trace spans over OTLP/gRPC to {endpoint} (sampling {ratio})");
    Ok(())
}

/// Exports the spans still queued (at exit).
pub fn flush() {
    if let Some(tracing) = TRACING.get() {
        let _ = tracing.provider.force_flush();
    }
}

/// The request's headers, as the W3C propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Whether to record a new trace: true for `ratio` of the calls, by a
/// per-thread xorshift generator (no lock, no system call).
fn sampled(ratio: f64) -> bool {
    use std::cell::Cell;
    use std::hash::{BuildHasher as _, Hasher as _};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
        );
    }
    if ratio >= 1.0 {
        return true;
    }
    let x = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    ((x >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

/// A call's server span, ended with the call's status.
pub struct CallSpan {
    span: Span,
}

/// Starts the server span of a call to `path`, as a child of the caller's
/// `traceparent` if any; `None` while tracing is off. The call's
/// [`CallInfo`] keeps the span's context for child spans and the log line.
pub fn start_call(headers: &HeaderMap, path: &str, info: &CallInfo) -> Option<CallSpan> {
    let tracing = TRACING.get()?;
    let parent = match headers.contains_key(TRACEPARENT) {
        true => tracing.propagator.extract(&Headers(headers)),
        // A new trace: sampled here, before any span is built (building
        // an unsampled span cost ~1,500 instructions a call).
        false if sampled(tracing.ratio) => Context::new(),
        false => return None,
    };
    let def = method_def(path);
    let span = tracing
        .tracer
        .span_builder(def.span_name)
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", def.service),
            KeyValue::new("rpc.method", def.method),
        ])
        .start_with_context(&tracing.tracer, &parent);
    let context = span.span_context();
    let remote_parent = parent.span().span_context().is_valid();
    if context.is_sampled() || remote_parent {
        info.set_trace(context.clone());
    }
    Some(CallSpan { span })
}

impl CallSpan {
    /// Ends the span with the call's status (`None`: no status, as UNKNOWN).
    pub fn finish(mut self, code: Option<Code>) {
        let code = code.unwrap_or(Code::Unknown);
        self.span
            .set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
        // The conventions' server errors: the server's fault, not the caller's.
        if matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ) {
            self.span
                .set_status(Status::error(crate::log::call_line::code_name(code)));
        }
        self.span.end();
    }
}

/// A child span of the call's for one store operation, ended when dropped;
/// `None` when the call is not traced (or not sampled).
pub fn store_span(call: &CallInfo, name: &'static str) -> Option<Span> {
    let tracing = TRACING.get()?;
    let parent = call.trace().filter(|c| c.is_sampled())?;
    let parent = Context::new().with_remote_span_context(parent.clone());
    Some(
        tracing
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(&tracing.tracer, &parent),
    )
}

/// A trace id as 32 lowercase hex digits, on the stack (for the log line).
pub struct TraceIdText([u8; 32]);

impl TraceIdText {
    pub fn new(context: &SpanContext) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0; 32];
        for (i, byte) in context.trace_id().to_bytes().into_iter().enumerate() {
            text[2 * i] = HEX[usize::from(byte >> 4)];
            text[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sampling_keeps_about_the_ratio() {
        assert!((0..1000).all(|_| super::sampled(1.0)));
        assert!((0..1000).all(|_| !super::sampled(0.0)));
        let kept = (0..100_000).filter(|_| super::sampled(0.1)).count();
        assert!((9_000..11_000).contains(&kept), "{kept}");
    }
}
