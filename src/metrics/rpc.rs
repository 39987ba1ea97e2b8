//! Per-method call metrics under grpc-go's names (go-grpc-middleware's
//! `providers/prometheus`): `grpc_server_started_total`,
//! `grpc_server_handled_total` (with `grpc_code`),
//! `grpc_server_handling_seconds`, `grpc_server_msg_received_total`,
//! `grpc_server_msg_sent_total`, labelled `grpc_type`, `grpc_service`,
//! `grpc_method`.
//!
//! Every method the server serves has its handles resolved once, when the
//! metrics are installed; a call finds its method by matching its path
//! against the known ones (no map, no allocation) and then only adds to
//! atomics. Paths the server does not serve share one `unknown` method,
//! so a scanner cannot grow the label sets.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tonic::Code;

use super::histogram::Histogram;

/// How a method's messages flow, as grpc-go's `grpc_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ClientStream => "client_stream",
            Kind::ServerStream => "server_stream",
            Kind::BidiStream => "bidi_stream",
        }
    }
}

/// A method the server serves: its service, name and kind.
pub struct MethodDef {
    pub service: &'static str,
    pub method: &'static str,
    /// `service/method`, a trace span's name.
    pub span_name: &'static str,
    pub kind: Kind,
}

macro_rules! method {
    ($service:literal, $name:literal, $kind:expr) => {
        MethodDef {
            service: $service,
            method: $name,
            span_name: concat!($service, "/", $name),
            kind: $kind,
        }
    };
}

/// Index of each OrderManagement method in [`METHODS`], for the handlers.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    AddOrder = 0,
    GetOrder = 1,
    SearchOrders = 2,
    UpdateOrders = 3,
    ProcessOrders = 4,
}

/// Every method served, then `unknown` (the last) for any other path.
pub const METHODS: [MethodDef; 10] = [
    method!("ecommerce.OrderManagement", "addOrder", Kind::Unary),
    method!("ecommerce.OrderManagement", "getOrder", Kind::Unary),
    method!(
        "ecommerce.OrderManagement",
        "searchOrders",
        Kind::ServerStream
    ),
    method!(
        "ecommerce.OrderManagement",
        "updateOrders",
        Kind::ClientStream
    ),
    method!(
        "ecommerce.OrderManagement",
        "processOrders",
        Kind::BidiStream
    ),
    method!("grpc.health.v1.Health", "Check", Kind::Unary),
    method!("grpc.health.v1.Health", "Watch", Kind::ServerStream),
    method!(
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        Kind::BidiStream
    ),
    method!(
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        Kind::BidiStream
    ),
    method!("unknown", "unknown", Kind::Unary),
];

/// The index in [`METHODS`] of the method at `path`: a few string compares.
fn method_index(path: &str) -> usize {
    match path {
        "/ecommerce.OrderManagement/addOrder" => 0,
        "/ecommerce.OrderManagement/getOrder" => 1,
        "/ecommerce.OrderManagement/searchOrders" => 2,
        "/ecommerce.OrderManagement/updateOrders" => 3,
        "/ecommerce.OrderManagement/processOrders" => 4,
        "/grpc.health.v1.Health/Check" => 5,
        "/grpc.health.v1.Health/Watch" => 6,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo" => 7,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => 8,
        _ => 9,
    }
}

/// The method at `path` (`unknown` for a path the server does not serve).
pub fn method_def(path: &str) -> &'static MethodDef {
    &METHODS[method_index(path)]
}

/// The name of a status code as grpc-go's `codes.Code.String()` writes it
/// (`OK`, `Canceled`...), so dashboards made for grpc-go work unchanged.
pub fn grpc_code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        // The other fifteen are spelled alike.
        other => crate::log::call_line::code_name(other),
    }
}

type MethodLabels = [(&'static str, &'static str); 3];
type HandledLabels = [(&'static str, &'static str); 4];

/// One method's handles.
pub struct MethodMetrics {
    def: &'static MethodDef,
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: Histogram,
    /// By code, created on first use: a method shows only the codes it
    /// has answered with.
    handled: [OnceLock<Counter>; 17],
}

/// The per-method metrics and their families.
pub struct RpcMetrics {
    methods: Vec<MethodMetrics>,
    handled: Family<HandledLabels, Counter>,
    /// Calls that ended with DEADLINE_EXCEEDED, any method.
    pub deadline_exceeded: Counter,
}

fn labels(def: &MethodDef) -> MethodLabels {
    [
        ("grpc_type", def.kind.label()),
        ("grpc_service", def.service),
        ("grpc_method", def.method),
    ]
}

impl RpcMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let started = Family::<MethodLabels, Counter>::default();
        let received = Family::<MethodLabels, Counter>::default();
        let sent = Family::<MethodLabels, Counter>::default();
        let handling = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            Histogram::seconds,
        );
        let handled = Family::<HandledLabels, Counter>::default();
        let methods: Vec<MethodMetrics> = METHODS
            .iter()
            .map(|def| {
                let l = labels(def);
                MethodMetrics {
                    def,
                    started: started.get_or_create_owned(&l),
                    received: received.get_or_create_owned(&l),
                    sent: sent.get_or_create_owned(&l),
                    handling: handling.get_or_create_owned(&l),
                    handled: Default::default(),
                }
            })
            .collect();
        // OK shows from the start (a dashboard's main series); other codes
        // appear when first answered.
        for m in &methods {
            let [t, s, n] = labels(m.def);
            let ok = handled.get_or_create_owned(&[t, s, n, ("grpc_code", "OK")]);
            let _ = m.handled[Code::Ok as usize].set(ok);
        }
        let deadline_exceeded = Counter::default();
        registry.register(
            "grpc_server_started",
            "Calls started on the server, by method",
            started,
        );
        registry.register(
            "grpc_server_handled",
            "Calls completed on the server, by method and status code",
            handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a call's headers to its status, by method",
            handling,
        );
        registry.register(
            "grpc_server_msg_received",
            "Request messages received, by method (OrderManagement streams message by message, unary calls one each)",
            received,
        );
        registry.register(
            "grpc_server_msg_sent",
            "Response messages sent, by method (OrderManagement streams message by message, unary calls one each when OK)",
            sent,
        );
        registry.register(
            "order_management_deadline_exceeded",
            "Calls that ended with DEADLINE_EXCEEDED (the caller's deadline, --max-call-seconds or --request-message-timeout)",
            deadline_exceeded.clone(),
        );
        Self {
            methods,
            handled,
            deadline_exceeded,
        }
    }

    fn method(&self, index: usize) -> &MethodMetrics {
        &self.methods[index]
    }
}

/// One call's metrics: started when the call arrives, finished with its status.
pub struct CallMeter {
    method: &'static MethodMetrics,
}

impl CallMeter {
    /// Counts a call to `path` as started; `None` when metrics are off.
    pub fn start(path: &str) -> Option<Self> {
        let method = super::get()?.rpc.method(method_index(path));
        method.started.inc();
        Some(Self { method })
    }

    /// The call got past auth and admission to its handler: a unary
    /// call's one request message is received.
    pub fn admitted(&self) {
        if self.method.def.kind == Kind::Unary {
            self.method.received.inc();
        }
    }

    /// The call ended with `code` (`None`: without a status) after `elapsed`.
    pub fn finish(self, code: Option<Code>, elapsed: Duration) {
        let method = self.method;
        let code = code.unwrap_or(Code::Unknown);
        method.handling.record_duration(elapsed);
        method.handled[code as usize]
            .get_or_init(|| {
                let [t, s, m] = labels(method.def);
                let metrics = super::get().expect("a meter exists only with metrics on");
                metrics.rpc.handled.get_or_create_owned(&[
                    t,
                    s,
                    m,
                    ("grpc_code", grpc_code_label(code)),
                ])
            })
            .inc();
        match code {
            Code::Ok if method.def.kind == Kind::Unary => {
                method.sent.inc();
            }
            Code::DeadlineExceeded => {
                if let Some(metrics) = super::get() {
                    metrics.rpc.deadline_exceeded.inc();
                }
            }
            _ => {}
        }
    }
}

/// A streaming OrderManagement handler received one message.
pub fn stream_received(method: Method) {
    if let Some(metrics) = super::get() {
        metrics.rpc.method(method as usize).received.inc();
    }
}

/// A streaming OrderManagement handler sent one message.
pub fn stream_sent(method: Method) {
    if let Some(metrics) = super::get() {
        metrics.rpc.method(method as usize).sent.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_found_by_its_path() {
        for (i, def) in METHODS.iter().enumerate().take(METHODS.len() - 1) {
            let path = format!("/{}/{}", def.service, def.method);
            assert_eq!(method_index(&path), i, "{path}");
        }
        assert_eq!(method_index("/x.Y/z"), METHODS.len() - 1);
    }

    #[test]
    fn code_labels_are_grpc_gos() {
        assert_eq!(grpc_code_label(Code::Ok), "OK");
        assert_eq!(grpc_code_label(Code::Cancelled), "Canceled");
        assert_eq!(grpc_code_label(Code::from_i32(16)), "Unauthenticated");
    }
}
