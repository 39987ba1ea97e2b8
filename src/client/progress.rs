//! Progress of long commands on a terminal: `update` counts the orders sent,
//! `search` and `process` the messages received while their output goes to
//! a file or a pipe. Drawn on stderr only when stderr is a terminal, so
//! scripts and logs never see it, and cleared before the command's result.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A counter on stderr, or nothing when it would not be seen by a person
/// (stderr not a terminal) or would mix with the output itself (`stdout`
/// on the same terminal, for streams: the results are the progress).
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// `what` follows the count: "orders sent", "orders found".
    pub fn new(what: &'static str, output_is_the_progress: bool) -> Self {
        let stderr = std::io::stderr().is_terminal();
        let stdout = std::io::stdout().is_terminal();
        if !stderr || (output_is_the_progress && stdout) {
            return Self(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} {msg} ({elapsed})")
                .expect("a valid template"),
        );
        bar.set_message(what);
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    pub fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Clears the line: what follows on the terminal is the result.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
