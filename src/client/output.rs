//! The client's input and output: orders read from JSON files, ids from
//! standard input, messages written to stdout as the Python seed's text
//! layout or as proto3 JSON; completion scripts and the man page.

use std::io::{self, Read, Write};

use tonic::Streaming;

use super::cli::{Cli, Format};
use super::failure::Failure;
use super::progress::Progress;
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

/// Exactly one order in the proto3 JSON mapping (`add FILE`, `add -`):
/// what `--json get` prints.
pub fn read_one_order(file: &str) -> Result<Order, Failure> {
    let mut orders = read_orders(file)?;
    match orders.len() {
        1 => Ok(orders.remove(0)),
        n => Err(Failure::usage(format!(
            "{file}: add takes exactly one order, found {n}"
        ))),
    }
}

/// Order ids from standard input, one per line (`process -`); blank lines
/// and surrounding spaces are ignored.
pub fn read_ids() -> Result<Vec<String>, Failure> {
    let mut text = String::new();
    io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(Failure::usage("standard input holds no order ids"));
    }
    Ok(ids)
}

/// `client completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "client", &mut script);
    write_stdout(&String::from_utf8_lossy(&script))
}

/// `client man`: the man page, roff, on stdout (`cargo xtask man`).
pub fn man_page() -> Result<(), Failure> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| Failure::other(format!("cannot render the man page: {e}")))?;
    write_stdout(&String::from_utf8_lossy(&page))
}

/// Writes messages to stdout: text blocks separated by a blank line, one
/// JSON object per line (jsonl), or one JSON document (json: a stream's
/// messages are gathered into an array, printed when it ends).
pub struct Output {
    format: Format,
    written: usize,
    /// Under json, a stream's messages until [`Output::finish`].
    array: Option<Vec<String>>,
}

impl Output {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            written: 0,
            array: None,
        }
    }

    /// The messages that follow are a stream (search, process).
    pub fn start_stream(&mut self) {
        if self.format == Format::Json {
            self.array = Some(Vec::new());
        }
    }

    pub fn emit<M: prost::Message>(&mut self, full_name: &str, message: &M) -> Result<(), Failure> {
        let text = match self.format {
            Format::Json | Format::Jsonl => format::to_json(full_name, message),
            Format::Text if self.written == 0 => format::text(full_name, message),
            Format::Text => format!("\n{}", format::text(full_name, message)),
        };
        self.written += 1;
        match (&mut self.array, self.format) {
            (Some(array), _) => {
                array.push(text);
                Ok(())
            }
            (None, Format::Text) => write_stdout(&text),
            (None, _) => write_stdout(&format!("{text}\n")),
        }
    }

    /// A StringValue reply: the bare string, or a JSON string under JSON.
    pub fn emit_string(&mut self, value: &str) -> Result<(), Failure> {
        let text = match self.format {
            Format::Text => value.to_owned(),
            Format::Json | Format::Jsonl => serde_json::Value::from(value).to_string(),
        };
        write_stdout(&format!("{text}\n"))
    }

    /// Prints each message of a response stream as it arrives, counting
    /// them on a terminal's stderr when the output goes elsewhere.
    pub async fn emit_all<M: prost::Message + Default>(
        &mut self,
        full_name: &str,
        mut stream: Streaming<M>,
    ) -> Result<(), Failure> {
        let progress = Progress::new("messages received", true);
        if self.written > 0 {
            progress.inc();
        }
        while let Some(message) = stream.message().await? {
            progress.inc();
            self.emit(full_name, &message)?;
        }
        Ok(())
    }

    /// The end of a stream: under json, its array.
    pub fn finish(&mut self) -> Result<(), Failure> {
        match self.array.take() {
            Some(array) => write_stdout(&format!("[{}]\n", array.join(","))),
            None => Ok(()),
        }
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
