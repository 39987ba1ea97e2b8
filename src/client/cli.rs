//! The client's command line: every argument, its help text and its
//! parser. What each command does is in `super` ([`super::main`]).

use clap::{Parser, Subcommand, ValueEnum};

use super::connection::ConnectionOptions;

/// Client for the ecommerce.OrderManagement gRPC service.
#[derive(Debug, Parser)]
#[command(
    name = "client",
    version,
    override_usage = "client [OPTIONS] <ID>\n       client [OPTIONS] <COMMAND> [ARGS]",
    after_help = "Exit codes: 0 success, 1 other error, 2 bad usage or input, 3 not found, \
                  4 invalid argument, 5 already exists or conflict, 6 server unavailable, \
                  7 deadline exceeded or cancelled, 8 not authenticated or permitted, \
                  9 resource exhausted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Order id to fetch: `client 101` is short for `client get 101`.
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Anything after the id: only to say what a mistyped command was
    /// meant to be (`client serach pixel`).
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,

    #[command(flatten)]
    pub globals: Globals,

    #[command(flatten)]
    pub connection: ConnectionOptions,
}

/// Options of every command, listed after each command's own.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Output and calls")]
pub struct Globals {
    /// How to print messages and errors: text (Python protobuf's text layout),
    /// json (one document: an object, or an array for a stream) or jsonl
    /// (one object per line, as they arrive). Under json and jsonl errors
    /// are JSON on stderr too.
    #[arg(long, value_enum, env = "ORDER_OUTPUT", default_value_t = Format::Text, global = true)]
    pub output: Format,

    /// Short for --output jsonl: one proto3 JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,

    /// Deadline of each call, streams included, and of connecting, in seconds.
    #[arg(long, env = "ORDER_TIMEOUT", default_value_t = 10.0, global = true)]
    pub timeout: f64,

    /// Request id to send as `x-request-id` (1 to 128 visible ASCII
    /// characters), to find the call in the server's log; without it the
    /// server makes one for a failed call, printed with the error.
    #[arg(long, env = "ORDER_REQUEST_ID", global = true)]
    pub request_id: Option<String>,
}

impl Globals {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Jsonl
        } else {
            self.output
        }
    }
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The protobuf text layout of Python protobuf's text_format.
    Text,
    /// One JSON document: an object, or an array for a stream.
    Json,
    /// One JSON object per line, as messages arrive.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch one order by id (getOrder).
    Get {
        /// The order's id.
        id: String,
    },
    /// Add an order and print its id (addOrder): from the options, or from
    /// a proto3 JSON order (`-` for standard input), as `--json get` prints it.
    #[command(allow_negative_numbers = true)]
    Add {
        /// A file holding one order in the proto3 JSON mapping, or `-` for
        /// standard input; instead of --item, --price and --destination.
        #[arg(value_name = "FILE", conflicts_with_all = ["items", "price", "destination", "description"])]
        file: Option<String>,
        /// An item of the order; repeat for several.
        #[arg(long = "item", value_name = "ITEM", required_unless_present = "file")]
        items: Vec<String>,
        /// The order's price: a finite number >= 0.
        #[arg(long, value_parser = parse_price, required_unless_present = "file")]
        price: Option<f32>,
        /// Where the order ships to.
        #[arg(long, required_unless_present = "file")]
        destination: Option<String>,
        /// Free text about the order.
        #[arg(long, default_value = "")]
        description: String,
        /// The new order's id; without it the server picks one (a UUIDv7).
        /// With FILE it replaces the file's id (`--id ""` lets the server pick).
        #[arg(long)]
        id: Option<String>,
    },
    /// Print every order with an item containing QUERY, case-insensitive, as they arrive (searchOrders).
    Search {
        /// Text to look for in the items.
        query: String,
    },
    /// Replace existing orders, all or none, from JSON: one order per line or an array (updateOrders).
    Update {
        /// A file of orders in the proto3 JSON mapping, or `-` for standard input.
        file: String,
    },
    /// Ship orders: print the combined shipments as the server sends them (processOrders).
    Process {
        /// The orders' ids, or `-` to read them from standard input, one per line.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Ask the server's health service (grpc.health.v1); exit 0 only if SERVING.
    Health {
        /// The service to ask about; empty for the server as a whole.
        #[arg(default_value = "")]
        service: String,
    },
    /// Print a shell completion script: `client completions bash > /etc/bash_completion.d/client`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output; `cargo xtask man` writes docs/man/client.1.
    #[command(hide = true)]
    Man,
}

/// The subcommands' names, for "did you mean" (hidden ones excluded).
pub const COMMANDS: &[&str] = &[
    "get",
    "add",
    "search",
    "update",
    "process",
    "health",
    "completions",
];

/// `--price`: an f32 as the user typed it, refused (naming what was typed)
/// when it is not a finite number an f32 can hold, rather than becoming `inf`.
pub fn parse_price(text: &str) -> Result<f32, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !value.is_finite() {
        return Err(format!("`{text}` is not a finite number"));
    }
    if value.abs() > f64::from(f32::MAX) {
        return Err(format!(
            "`{text}` is too large for a price (largest {:e})",
            f32::MAX
        ));
    }
    Ok(value as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_refused_as_typed() {
        assert_eq!(parse_price("1800").unwrap(), 1800.0);
        assert_eq!(parse_price("-1").unwrap(), -1.0);
        assert!(parse_price("1e40").unwrap_err().contains("`1e40`"));
        assert!(parse_price("inf").unwrap_err().contains("`inf`"));
        assert!(parse_price("NaN").unwrap_err().contains("`NaN`"));
        assert!(parse_price("abc").unwrap_err().contains("`abc`"));
    }
}
