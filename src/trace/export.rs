//! The span queue between calls and the OTLP exporter: a call that ends a
//! span only tries to put it on a bounded queue; when the queue is full
//! (the collector is slow or down) the span is dropped and counted
//! (`order_management_trace_spans_dropped_total`). One thread, with a
//! small runtime of its own for tonic, takes spans off the queue and
//! exports them in batches. So exporting never slows or fails a call.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};

/// Spans waiting to be exported at most; beyond, new spans are dropped.
const QUEUE: usize = 4096;
/// Spans per export request at most.
const BATCH: usize = 512;
/// A span waits at most this long before it is exported.
const EVERY: Duration = Duration::from_secs(2);
/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

enum Message {
    Span(Box<SpanData>),
    Resource(Resource),
    /// Export everything queued so far, then answer.
    Flush(SyncSender<()>),
}

/// The `SpanProcessor` that feeds the queue.
#[derive(Debug)]
pub struct QueueProcessor {
    queue: SyncSender<Message>,
}

impl QueueProcessor {
    /// Starts the export thread, exporting over OTLP/gRPC to `endpoint`.
    pub fn start(endpoint: &str) -> Result<Self, String> {
        let (queue, spans) = sync_channel(QUEUE);
        let (built, ready) = sync_channel(1);
        let endpoint = endpoint.to_owned();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || run(&endpoint, spans, &built))
            .map_err(|e| format!("cannot start the span export thread: {e}"))?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self { queue }),
            Ok(Err(why)) => Err(why),
            Err(_) => Err("the span export thread stopped at start".to_owned()),
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let full = matches!(
            self.queue.try_send(Message::Span(Box::new(span))),
            Err(TrySendError::Full(_))
        );
        if full && let Some(metrics) = crate::metrics::get() {
            metrics.calls.spans_dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let (done, wait) = sync_channel(1);
        self.queue
            .send(Message::Flush(done))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        wait.recv_timeout(EXPORT_TIMEOUT + EVERY)
            .map_err(|_| OTelSdkError::Timeout(EXPORT_TIMEOUT))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.queue.try_send(Message::Resource(resource.clone()));
    }
}

/// The export thread: builds the exporter, then batches and exports.
fn run(endpoint: &str, spans: Receiver<Message>, built: &SyncSender<Result<(), String>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = built.send(Err(format!("cannot start the span export runtime: {e}")));
            return;
        }
    };
    // tonic's lazy channel needs a runtime to be built in.
    let exporter = runtime.block_on(async {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
    });
    let mut exporter = match exporter {
        Ok(exporter) => {
            let _ = built.send(Ok(()));
            exporter
        }
        Err(e) => {
            let _ = built.send(Err(format!("cannot export spans to {endpoint}: {e}")));
            return;
        }
    };
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut oldest = Instant::now();
    let mut failing = false;
    loop {
        let wait = match batch.is_empty() {
            true => EVERY,
            false => EVERY.saturating_sub(oldest.elapsed()),
        };
        let (flush, stop) = match spans.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                batch.push(*span);
                (None, false)
            }
            Ok(Message::Resource(resource)) => {
                exporter.set_resource(&resource);
                (None, false)
            }
            Ok(Message::Flush(done)) => (Some(done), false),
            Err(RecvTimeoutError::Timeout) => (None, false),
            Err(RecvTimeoutError::Disconnected) => (None, true),
        };
        let due = batch.len() >= BATCH || oldest.elapsed() >= EVERY || flush.is_some() || stop;
        if due && !batch.is_empty() {
            let outcome = runtime.block_on(exporter.export(std::mem::take(&mut batch)));
            match outcome {
                Err(e) if !failing => {
                    tracing::warn!("cannot export spans to {endpoint} (dropping them): {e}");
                    failing = true;
                }
                Ok(()) if failing => {
                    tracing::info!("exporting spans to {endpoint} again");
                    failing = false;
                }
                _ => {}
            }
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
        if stop {
            return;
        }
    }
}
