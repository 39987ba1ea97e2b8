//! The line formats' tests: shapes, escaping, spans, JSON types, dates.
use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// Everything the subscriber writes, kept.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn text_lines(emit: impl FnOnce()) -> String {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(false)
        .with_max_level(Level::TRACE)
        .event_format(LineFormat::text())
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    out.text()
}

fn json_lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_max_level(Level::TRACE)
        .fmt_fields(JsonFields::new())
        .event_format(LineFormat::json())
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    out.text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The timestamp, checked for shape; the rest of the line returned.
fn after_timestamp(line: &str) -> &str {
    let (stamp, rest) = line.split_at(27);
    let b = stamp.as_bytes();
    for (i, c) in b.iter().enumerate() {
        let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 26);
        assert_eq!(c.is_ascii_digit(), want_digit, "{stamp:?} at {i}");
    }
    assert_eq!([b[4], b[7], b[10], b[13], b[16], b[19], b[26]], *b"--T::.Z");
    rest
}

#[test]
fn text_lines_look_like_tracing_subscribers() {
    let out = text_lines(|| {
        tracing::info!(
            target: "order_management::call",
            status = ?tonic::Code::NotFound,
            duration_us = 52u64,
            method = %"/ecommerce.OrderManagement/getOrder",
            order_id = "102",
            missing = Option::<&str>::None,
            spaced = "a b",
            equals = "a=b",
            empty = "",
            "call ended"
        );
        tracing::warn!(r#type = -3i64, ok = true, "second");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        after_timestamp(lines[0]),
        "  INFO order_management::call: call ended status=NotFound duration_us=52 \
         method=/ecommerce.OrderManagement/getOrder order_id=102 spaced=\"a b\" \
         equals=\"a=b\" empty=\"\""
    );
    assert_eq!(
        after_timestamp(lines[1]),
        "  WARN order_management::log::format::tests: second type=-3 ok=true"
    );
}

#[test]
fn text_values_cannot_break_the_line_or_forge_fields() {
    let out = text_lines(|| {
        tracing::error!(
            order_id = "a\"b\\c\nstatus=Ok \u{1b}[31m é",
            "message with\na newline and \u{1b}[2J"
        );
    });
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(
        after_timestamp(out.trim_end()),
        " ERROR order_management::log::format::tests: message with\\na newline and \\u{1b}[2J \
         order_id=\"a\\\"b\\\\c\\nstatus=Ok \\u{1b}[31m é\""
    );
}

#[test]
fn display_and_debug_values_cannot_forge_fields_either() {
    let out = text_lines(|| {
        tracing::info!(
            error = %"x status=Ok order_id=999",
            debugged = ?"q",
            plain = %42,
            "m \u{2028} \u{202E}rtl"
        );
    });
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.trim_end().ends_with(
            "m \\u{2028} \\u{202e}rtl error=\"x status=Ok order_id=999\" \
             debugged=\"\\\"q\\\"\" plain=42"
        ),
        "{out}"
    );
}

#[test]
fn text_spans_come_before_the_target() {
    let out = text_lines(|| {
        let span = tracing::info_span!("conn", peer = "p1");
        let _entered = span.enter();
        let inner = tracing::info_span!("stream", id = 3u64);
        let _inner = inner.enter();
        tracing::debug!("inside");
    });
    assert_eq!(
        after_timestamp(out.trim_end()),
        " DEBUG conn{peer=\"p1\"}:stream{id=3}: order_management::log::format::tests: inside"
    );
}

#[test]
fn errors_are_written_with_their_sources() {
    let inner = io::Error::other("disk on fire");
    let outer = io::Error::other(Wrapped(inner));
    let out = text_lines(|| {
        tracing::error!(
            error = &outer as &(dyn std::error::Error + 'static),
            "store failure"
        );
    });
    assert!(
        out.trim_end()
            .ends_with("store failure error=\"wrapped: disk on fire\""),
        "{out}"
    );
}

#[derive(Debug)]
struct Wrapped(io::Error);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn json_lines_are_objects_with_typed_fields() {
    let lines = json_lines(|| {
        tracing::info!(
            target: "order_management::call",
            status = ?tonic::Code::Ok,
            duration_us = 7u64,
            delta = -2i64,
            ratio = 0.5f64,
            inf = f64::INFINITY,
            ok = false,
            order_id = "q\"\\\n\u{1}é",
            "call ended"
        );
    });
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    let stamp = line["timestamp"].as_str().unwrap();
    assert_eq!(after_timestamp(stamp), "");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "order_management::call");
    assert_eq!(
        line["fields"],
        serde_json::json!({
            "message": "call ended",
            "status": "Ok",
            "duration_us": 7,
            "delta": -2,
            "ratio": 0.5,
            "inf": "inf",
            "ok": false,
            "order_id": "q\"\\\n\u{1}é",
        })
    );
    assert!(line.get("span").is_none());
}

#[test]
fn json_lines_carry_the_current_span() {
    let lines = json_lines(|| {
        let span = tracing::info_span!("conn", peer = "p1", n = 2u64);
        let _entered = span.enter();
        tracing::info!("inside");
        let empty = tracing::info_span!("bare");
        let _inner = empty.enter();
        tracing::info!("deeper");
    });
    assert_eq!(
        lines[0]["span"],
        serde_json::json!({"name": "conn", "peer": "p1", "n": 2})
    );
    assert_eq!(lines[1]["span"], serde_json::json!({"name": "bare"}));
}

#[test]
fn dates_are_utc_calendar_dates() {
    let date = |seconds| {
        let mut out = String::new();
        write_date_time(&mut out, seconds).unwrap();
        out
    };
    assert_eq!(date(0), "1970-01-01T00:00:00");
    // `date -u -d @1764343394 +%FT%T`
    assert_eq!(date(1_764_343_394), "2025-11-28T15:23:14");
    // A leap day.
    assert_eq!(date(1_709_210_096), "2024-02-29T12:34:56");
}

#[test]
fn timestamps_are_now() {
    let mut out = String::new();
    write_timestamp(&mut out).unwrap();
    let mut expected = String::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    write_date_time(&mut expected, now.as_secs()).unwrap();
    assert_eq!(after_timestamp(&out), "");
    // The same second, unless the clock ticked over in between.
    let second = &out[..19];
    let mut before = String::new();
    write_date_time(&mut before, now.as_secs() - 1).unwrap();
    assert!(
        second == expected || second == before,
        "{out} vs {expected}"
    );
}

/// The call line is written without tracing's dispatch ([`event_line`]):
/// it must be the very line the subscriber writes for the same event, in
/// text (with and without colour) and in JSON, escaping included.
#[test]
fn event_line_writes_what_the_subscriber_writes_for_the_same_event() {
    let tricky = "a b=\"c\"\n\u{1b}[31m\u{2028}é";
    let emit = || {
        tracing::info!(
            target: "order_management::call",
            status = "NotFound",
            duration_us = 52u64,
            method = "/ecommerce.OrderManagement/getOrder",
            peer = "127.0.0.1:4242",
            order_id = tricky,
            "call ended"
        );
        tracing::info!(
            target: "order_management::call",
            status = "none",
            duration_us = 0u64,
            method = "",
            "call ended without a status"
        );
    };
    let direct = |json: bool, ansi: bool| -> String {
        let mut out = String::new();
        let head =
            |message| EventHead::new(json, ansi, &Level::INFO, "order_management::call", message);
        event_line(&mut out, &head("call ended"), |line| {
            line.str("status", "NotFound");
            line.u64("duration_us", 52);
            line.str("method", "/ecommerce.OrderManagement/getOrder");
            line.str("peer", "127.0.0.1:4242");
            line.str("order_id", tricky);
        })
        .unwrap();
        event_line(&mut out, &head("call ended without a status"), |line| {
            line.str("status", "none");
            line.u64("duration_us", 0);
            line.str("method", "");
        })
        .unwrap();
        out
    };
    // Text, plain and coloured: the same bytes after the timestamp.
    for ansi in [false, true] {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(ansi)
            .event_format(LineFormat::text())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let through_tracing = out.text();
        let written = direct(false, ansi);
        let ours: Vec<&str> = written.lines().map(after_timestamp).collect();
        let theirs: Vec<&str> = through_tracing.lines().map(after_timestamp).collect();
        assert_eq!(ours.len(), 2, "{written}");
        assert_eq!(ours, theirs, "ansi: {ansi}");
    }
    // JSON: the same objects, but for the timestamp.
    let without_stamp = |line: &str| {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value["timestamp"].as_str().is_some(), "{line}");
        value["timestamp"] = serde_json::Value::Null;
        value
    };
    let through_tracing = json_lines(emit);
    let written = direct(true, false);
    let ours: Vec<serde_json::Value> = written.lines().map(without_stamp).collect();
    let theirs: Vec<serde_json::Value> = through_tracing
        .into_iter()
        .map(|mut v| {
            v["timestamp"] = serde_json::Value::Null;
            v
        })
        .collect();
    assert_eq!(ours.len(), 2, "{written}");
    assert_eq!(ours, theirs);
}
