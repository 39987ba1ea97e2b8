//! The orders console served at `/` (`crate::gateway`): one page of plain
//! HTML, CSS and JavaScript, embedded in the binary, that uses the public
//! HTTP/JSON API (no private endpoint, no build step).

pub const INDEX_HTML: &str = include_str!("index.html");
pub const CONSOLE_JS: &str = include_str!("console.js");
pub const CONSOLE_CSS: &str = include_str!("console.css");
