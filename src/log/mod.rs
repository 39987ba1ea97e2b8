//! The server's logs: one line per call and the server's own events, as
//! text or JSON lines on stderr.
//!
//! - [`format`]: the line formats (our own `FormatEvent`, text and JSON);
//! - [`writer`]: a buffer written to stderr in batches by a thread;
//! - [`call_line`]: the one line each call logs when it ends.

pub mod call_line;
pub mod format;
pub mod writer;

use std::io::{IsTerminal as _, Write as _};
use std::sync::OnceLock;

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
    let ansi = std::io::stderr().is_terminal();
    let direct_writer = writer.clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.event_format(LineFormat::text()).init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(LineFormat::json())
            .init(),
    }
    // Asked of the subscriber just installed.
    let call_lines = tracing::enabled!(target: CALL_LOG_TARGET, tracing::Level::INFO);
    let json = format == LogFormat::Json;
    let head = |message| {
        format::EventHead::new(json, ansi, &tracing::Level::INFO, CALL_LOG_TARGET, message)
    };
    let _ = DIRECT.set(Direct {
        writer: direct_writer,
        ended: head("call ended"),
        ended_without_status: head("call ended without a status"),
        call_lines,
    });
    Ok(flusher)
}

/// Where [`init`] sends lines, for the call lines written without
/// tracing's dispatch ([`write_call_line`]).
struct Direct {
    writer: LogWriter,
    /// The lines' heads, by message: "call ended", and "call ended without
    /// a status".
    ended: format::EventHead,
    ended_without_status: format::EventHead,
    /// Whether `RUST_LOG` lets call lines through: asked once, since the
    /// filter is fixed when the server starts.
    call_lines: bool,
}

static DIRECT: OnceLock<Direct> = OnceLock::new();

/// Writes a call line (an INFO event of [`CALL_LOG_TARGET`], "call ended"
/// or, without `status`, "call ended without a status", with the fields
/// `fill` gives after the message) straight to [`init`]'s output, as its subscriber would have
/// written the same event outside any span, and returns true; false if
/// [`init`] has not run (tests, the library used under another
/// subscriber): the caller then logs through tracing.
///
/// Why: the per-call line is the one event every call logs, and tracing's
/// dispatch (the subscriber stack, the filter, the field visitor) was a
/// fifth of its cost. `RUST_LOG` still decides whether it is written: its
/// answer for the call lines is asked once, by [`init`].
pub(crate) fn write_call_line(
    status: bool,
    fill: impl FnOnce(&mut format::LineFields<'_>),
) -> bool {
    use tracing_subscriber::fmt::MakeWriter as _;
    let Some(direct) = DIRECT.get() else {
        return false;
    };
    if !direct.call_lines {
        return true;
    }
    let head = match status {
        true => &direct.ended,
        false => &direct.ended_without_status,
    };
    let _ = format::with_line(
        |line| format::event_line(line, head, fill),
        |line| {
            direct
                .writer
                .make_writer()
                .write_all(line.as_bytes())
                .map_err(|_| std::fmt::Error)
        },
    );
    true
}
