//! The server's logs: one line per call and the server's own events, as
//! text or JSON lines on stderr.
//!
//! - [`format`]: the line formats (our own `FormatEvent`, text and JSON);
//! - [`writer`]: a buffer written to stderr in batches by a thread;
//! - [`call_line`]: the one line each call logs when it ends.

pub mod call_line;
pub mod format;
pub mod writer;

use std::io::IsTerminal as _;

use clap::ValueEnum;
use tracing_subscriber::fmt::format::JsonFields;

pub use self::call_line::{CALL_LOG_TARGET, CallRecord};
use self::format::LineFormat;
pub use self::writer::Flusher;
use self::writer::LogWriter;

/// The log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text, `name=value` pairs after the message.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs to stderr in `format`; the level comes from `RUST_LOG` (default
/// `info`). Lines are written by a background thread, in batches: a call
/// pays for formatting its line, not for a write to stderr. Nothing is
/// dropped: if stderr cannot keep up, callers wait. Keep the returned
/// [`Flusher`] until the process ends: dropping it writes what is left.
pub fn init(format: LogFormat) -> Result<Flusher, String> {
    let (writer, flusher) = LogWriter::start(std::io::stderr())
        .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.event_format(LineFormat::text()).init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(LineFormat::json())
            .init(),
    }
    Ok(flusher)
}
