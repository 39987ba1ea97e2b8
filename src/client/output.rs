//! The client's input and output: orders read from JSON files, messages
//! written to stdout as the Python seed's text layout or as proto3 JSON.

use std::io::{self, Read, Write};

use tonic::Streaming;

use super::failure::Failure;
use crate::format;
use crate::pb::Order;

/// Orders in the proto3 JSON mapping: a JSON array, or one object per line.
pub fn read_orders(file: &str) -> Result<Vec<Order>, Failure> {
    let mut text = String::new();
    let read = if file == "-" {
        io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text).map(drop))
    };
    read.map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?;
    parse_orders(&text).map_err(|e| Failure::usage(format!("{file}: {e}")))
}

/// Parses orders from JSON text: an array of orders, or one order per line
/// (blank lines ignored). Errors name the element or line.
pub fn parse_orders(text: &str) -> Result<Vec<Order>, String> {
    let parse = |value: serde_json::Value| format::from_json::<Order>("ecommerce.Order", value);
    if text.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON array of orders: {e}"))?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse(v).map_err(|e| format!("element {i}: {e}")))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let value = serde_json::from_str(line)
                    .map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
                parse(value).map_err(|e| format!("line {}: {e}", i + 1))
            })
            .collect()
    }
}

/// Writes messages to stdout as text blocks separated by a blank line, or
/// as one JSON document per line.
pub struct Output {
    json: bool,
    written: usize,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json, written: 0 }
    }

    pub fn emit<M: prost::Message>(&mut self, full_name: &str, message: &M) -> Result<(), Failure> {
        let text = if self.json {
            format!("{}\n", format::to_json(full_name, message))
        } else if self.written == 0 {
            format::text(full_name, message)
        } else {
            format!("\n{}", format::text(full_name, message))
        };
        self.written += 1;
        write_stdout(&text)
    }

    /// A StringValue reply: the bare string, or a JSON string with `--json`.
    pub fn emit_string(&mut self, value: &str) -> Result<(), Failure> {
        let text = if self.json {
            serde_json::Value::from(value).to_string()
        } else {
            value.to_owned()
        };
        write_stdout(&format!("{text}\n"))
    }

    /// Prints each message of a response stream as it arrives.
    pub async fn emit_all<M: prost::Message + Default>(
        &mut self,
        full_name: &str,
        mut stream: Streaming<M>,
    ) -> Result<(), Failure> {
        while let Some(message) = stream.message().await? {
            self.emit(full_name, &message)?;
        }
        Ok(())
    }
}

/// Writes to stdout; a closed pipe ends the process quietly.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        // `client search x | head -1`: the reader has what it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Failure::other(format!("cannot write to stdout: {e}"))),
    }
}
