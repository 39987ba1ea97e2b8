//! The server's log line formats, text and JSON, as a tracing-subscriber
//! [`FormatEvent`].
//!
//! Why our own: every call writes one line, and tracing-subscriber's own
//! formatters spent about 13,000 instructions on it (a third of what the rest
//! of a getOrder call costs): every field goes through `fmt::Debug` and the
//! timestamp is formatted from scratch each time. This one writes strings and
//! numbers directly, escapes only when a value needs it, and formats the
//! date once per second. The output keeps tracing-subscriber's shapes:
//!
//! ```text
//! 2026-11-28T15:43:14.981211Z  INFO order_management::call: call ended status=Ok duration_us=52 method=/ecommerce.OrderManagement/getOrder order_id=101
//! {"timestamp":"2026-11-28T15:43:14.981211Z","level":"INFO","target":"order_management::call","fields":{"message":"call ended","status":"Ok","duration_us":52}}
//! ```
//!
//! Text: `name=value` pairs after the message, logfmt style: a value that is
//! one plain token is written as is (`order_id=101`), any other (string,
//! `%` or `?` alike) is quoted and escaped as `{:?}` would (`order_id="a b"`);
//! control characters in messages are escaped too, so an event is always one
//! line and no value can pass for another field. JSON: one object per line; strings,
//! numbers and booleans keep their JSON types, other values are their `Debug`
//! text. Spans (only other crates open any, at debug level) are written as
//! tracing-subscriber does: `name{fields}:` before the target in text, and
//! the innermost one as `"span"` in JSON.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Text or JSON lines; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct LineFormat {
    json: bool,
}

impl LineFormat {
    /// Pair with tracing-subscriber's default field formatter.
    pub fn text() -> Self {
        Self { json: false }
    }

    /// Pair with [`JsonFields`], so that span fields are stored as JSON.
    pub fn json() -> Self {
        Self { json: true }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is put together in a String of ours, then handed over in
        // one piece: `Writer` is a `dyn fmt::Write`, and a dynamic call per
        // piece (a line has ~40) costs more than the copy.
        let ansi = writer.has_ansi_escapes();
        with_line(
            |line| {
                if self.json {
                    json_line(ctx, line, event)
                } else {
                    text_line(ctx, line, event, ansi)
                }
            },
            |line| writer.write_str(line),
        )
    }
}

/// Builds a line with `build` in this thread's buffer, then hands it to
/// `write`: one allocation per thread, not one per line.
pub(super) fn with_line<T>(
    build: impl FnOnce(&mut String) -> fmt::Result,
    write: impl FnOnce(&str) -> Result<T, fmt::Error>,
) -> Result<T, fmt::Error> {
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            build(&mut line)?;
            let written = write(&line);
            if line.capacity() > 64 * 1024 {
                *line = String::new(); // one huge event does not pin its memory
            }
            written
        }
        // A value's Debug impl that logs: this thread's line is in use.
        Err(_) => {
            let mut line = String::new();
            build(&mut line)?;
            write(&line)
        }
    })
}

/// The fields of a line [`event_line`] writes, in the order given.
pub struct LineFields<'a>(Fields<'a>);

impl LineFields<'_> {
    /// A string field.
    pub fn str(&mut self, name: &str, value: &str) {
        self.0.string(name, value);
    }

    pub fn u64(&mut self, name: &str, value: u64) {
        self.0.u64(name, value);
    }
}

/// What [`event_line`] writes after the timestamp and before the fields
/// `fill` gives: the level, the target and the message, formatted once for
/// every line of one kind (a line of the call log, say), not once per line.
pub struct EventHead {
    json: bool,
    text: String,
}

impl EventHead {
    /// The head of an event of `level` and `target` with `message`, in the
    /// text (`ansi`: coloured) or the JSON format.
    pub fn new(json: bool, ansi: bool, level: &Level, target: &str, message: &str) -> Self {
        let mut text = String::new();
        let mut head = || -> fmt::Result {
            if json {
                text.push_str("\",\"level\":\"");
                text.push_str(level.as_str());
                text.push_str("\",\"target\":");
                json_string(&mut text, target)?;
                text.push_str(",\"fields\":{");
            } else {
                level_part(&mut text, level, ansi)?;
                text_target(&mut text, target)?;
            }
            let mut fields = Fields::new(&mut text, json);
            fields.string("message", message);
            fields.result
        };
        // Writing to a String cannot fail.
        let _ = head();
        Self { json, text }
    }
}

/// The line [`LineFormat`] writes for an event with `head` and the fields
/// `fill` gives after the message, outside any span: for the per-call line,
/// which is written without tracing's dispatch
/// (`crate::log::write_call_line`). A test checks that both write the same
/// line.
pub fn event_line(
    w: &mut String,
    head: &EventHead,
    fill: impl FnOnce(&mut LineFields<'_>),
) -> fmt::Result {
    if head.json {
        w.push_str("{\"timestamp\":\"");
        write_timestamp(w)?;
    } else {
        write_timestamp(w)?;
    }
    w.push_str(&head.text);
    let mut fields = Fields::new(w, head.json);
    fields.first = false; // the message, in the head
    let mut fields = LineFields(fields);
    fill(&mut fields);
    let LineFields(fields) = fields;
    fields.result?;
    if head.json {
        fields.w.write_str("}}\n")
    } else {
        fields.w.write_str("\n")
    }
}

/// Timestamp and level, as the text line starts.
fn text_prefix(w: &mut String, level: &Level, ansi: bool) -> fmt::Result {
    write_timestamp(w)?;
    level_part(w, level, ansi)
}

/// The level with the spaces around it (and its colour, with `ansi`).
fn level_part(w: &mut String, level: &Level, ansi: bool) -> fmt::Result {
    if ansi {
        write!(
            w,
            " \x1b[{}m{}\x1b[0m ",
            level_color(level),
            level_text(level)
        )
    } else {
        w.write_str(level_spaced(level))
    }
}

fn text_target(w: &mut String, target: &str) -> fmt::Result {
    w.write_str(target)?;
    w.write_str(":")
}

/// The JSON line up to its fields' first value.
fn json_prefix(w: &mut String, level: &Level, target: &str) -> fmt::Result {
    w.write_str("{\"timestamp\":\"")?;
    write_timestamp(w)?;
    w.write_str("\",\"level\":\"")?;
    w.write_str(level.as_str())?;
    w.write_str("\",\"target\":")?;
    json_string(w, target)?;
    w.write_str(",\"fields\":{")
}

fn text_line<S, N>(
    ctx: &FmtContext<'_, S, N>,
    w: &mut String,
    event: &Event<'_>,
    ansi: bool,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    text_prefix(w, meta.level(), ansi)?;
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            w.write_str(span.name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                write!(w, "{{{fields}}}")?;
            }
            w.write_str(":")?;
        }
        w.write_str(" ")?;
    }
    text_target(w, meta.target())?;
    let mut visitor = Fields::new(w, false);
    event.record(&mut visitor);
    visitor.result?;
    w.write_str("\n")
}

fn json_line<S, N>(ctx: &FmtContext<'_, S, N>, w: &mut String, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    json_prefix(w, meta.level(), meta.target())?;
    let mut visitor = Fields::new(w, true);
    event.record(&mut visitor);
    visitor.result?;
    w.write_str("}")?;
    if let Some(span) = ctx.lookup_current() {
        w.write_str(",\"span\":{\"name\":")?;
        json_string(w, span.name())?;
        let extensions = span.extensions();
        // With `JsonFields`, a span's stored fields are a JSON object.
        if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() {
            let inner = fields.trim().trim_start_matches('{').trim_end_matches('}');
            if !inner.is_empty() {
                w.write_str(",")?;
                w.write_str(inner)?;
            }
        }
        w.write_str("}")?;
    }
    w.write_str("}\n")
}

fn level_text(level: &Level) -> &'static str {
    // Right-aligned to five, as tracing-subscriber does.
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// [`level_text`] with the spaces around it, in one piece.
fn level_spaced(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

fn level_color(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "35",
        Level::DEBUG => "34",
        Level::INFO => "32",
        Level::WARN => "33",
        Level::ERROR => "31",
    }
}

/// `2026-11-28T15:43:14.981211Z` (UTC, microseconds), as tracing-subscriber's
/// default timer writes it. The part up to the second is formatted once per
/// second and per thread.
fn write_timestamp(w: &mut impl fmt::Write) -> fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != seconds {
            *cached = seconds;
            prefix.clear();
            write_date_time(prefix, seconds)?;
        }
        w.write_str(prefix)
    })?;
    let micros = since_epoch.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    w.write_str(".")?;
    w.write_str(&"000000"[digits.len()..])?;
    w.write_str(digits)?;
    w.write_str("Z")
}

/// `YYYY-MM-DDTHH:MM:SS` for a Unix time in seconds.
fn write_date_time(w: &mut impl fmt::Write, unix_seconds: u64) -> fmt::Result {
    let at = i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Field names as written: `r#type` is `type`.
fn name(field: &Field) -> &str {
    let name = field.name();
    name.strip_prefix("r#").unwrap_or(name)
}

/// A string value, logfmt style: as is when it is one plain token (visible
/// ASCII, no `"`, `=` or `\\`), else quoted and escaped as `{:?}` does, so
/// a value can never end the line or pass for another field.
fn text_quoted(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if !value.is_empty() && value.bytes().all(|b| PLAIN[b as usize]) {
        w.write_str(value)
    } else {
        write!(w, "{value:?}")
    }
}

/// The bytes of a plain token: visible ASCII but `"`, `=` and `\\` (a table:
/// one load a byte, where the comparisons cost several).
static PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        plain[b] = !matches!(b as u8, b'"' | b'=' | b'\\');
        b += 1;
    }
    plain
};

/// Text written as is, except control characters (`\n`, ESC...), Unicode
/// line separators and bidi overrides, which are escaped: one event is one
/// line, and a value can neither drive a terminal nor reorder what it shows.
fn text_message(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    // Printable ASCII, the usual case, needs no char-by-char look.
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return w.write_str(value);
    }
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    let mut rest = value;
    while let Some(at) = rest.find(unsafe_char) {
        w.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().expect("found above");
        write!(w, "{}", c.escape_debug())?;
        rest = &rest[at + c.len_utf8()..];
    }
    w.write_str(rest)
}

/// The event's fields, in either format: ` name=value` after the message
/// (text; the message first, bare) or `"name":value`, comma-separated (JSON).
struct Fields<'a> {
    w: &'a mut String,
    json: bool,
    result: fmt::Result,
    first: bool,
    /// Reused for values that must be formatted before they are escaped.
    scratch: String,
}

impl<'a> Fields<'a> {
    fn new(w: &'a mut String, json: bool) -> Self {
        Self {
            w,
            json,
            result: Ok(()),
            first: true,
            scratch: String::new(),
        }
    }

    /// The field's name (as written: see [`name`]), then `value` writes
    /// its value.
    fn field(&mut self, name: &str, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::replace(&mut self.first, false);
        self.result = (|| {
            if self.json {
                if !first {
                    self.w.write_str(",")?;
                }
                json_string(self.w, name)?;
                self.w.write_str(":")?;
            } else {
                self.w.write_str(" ")?;
                if name != "message" {
                    self.w.write_str(name)?;
                    self.w.write_str("=")?;
                }
            }
            value(self.w)
        })();
    }

    /// A string value: a JSON string; in text, the message as is and any
    /// other field quoted unless it is one plain token.
    fn string(&mut self, name: &str, value: &str) {
        if self.json {
            self.field(name, |w| json_string(w, value));
        } else if name == "message" {
            self.field(name, |w| text_message(w, value));
        } else {
            self.field(name, |w| text_quoted(w, value));
        }
    }

    fn u64(&mut self, name: &str, value: u64) {
        self.field(name, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    /// A value that must be formatted first, then written as a string is
    /// (a `%` or `?` value is as untrusted as a string).
    fn formatted(&mut self, field: &Field, fill: impl FnOnce(&mut String)) {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        fill(&mut text);
        self.string(name(field), &text);
        self.scratch = text;
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(name(field), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.u64(name(field), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(name(field), |w| {
            w.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.json && value.is_finite() {
            self.field(name(field), |w| write!(w, "{value}"));
        } else {
            // Text as `{:?}` writes it; JSON has no NaN or infinities: a string.
            self.formatted(field, |text| {
                let _ = write!(text, "{value:?}");
            });
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(name(field), |w| {
            w.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.formatted(field, |text| error_chain(text, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.formatted(field, |text| {
            let _ = write!(text, "{value:?}");
        });
    }
}

/// An error and its sources: `outer: cause: root cause`.
fn error_chain(text: &mut String, error: &(dyn std::error::Error + 'static)) {
    let _ = write!(text, "{error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control
/// characters escaped, everything else (UTF-8 included) as is.
fn json_string(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    w.write_str("\"")?;
    let mut rest = value;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        w.write_str(&rest[..at])?;
        let c = rest.as_bytes()[at];
        match c {
            b'"' => w.write_str("\\\"")?,
            b'\\' => w.write_str("\\\\")?,
            b'\n' => w.write_str("\\n")?,
            b'\r' => w.write_str("\\r")?,
            b'\t' => w.write_str("\\t")?,
            _ => write!(w, "\\u{c:04x}")?,
        }
        rest = &rest[at + 1..];
    }
    w.write_str(rest)?;
    w.write_str("\"")
}

#[cfg(test)]
mod tests;
