//! h2load (nghttp2), the load generator of the throughput runs: set up
//! (installed with apt-get when missing), the getOrder command shape, and
//! its text summary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::config::{CONNECTIONS, LOAD_CORE, STREAMS_PER_CONNECTION};
use super::process::{self, run};

/// h2load's version line; installs nghttp2-client with apt-get (as root)
/// when h2load is missing.
pub fn setup(work: &Path) -> Result<String> {
    let version = |work: &Path| -> Option<String> {
        let done = run(
            "h2load-version",
            Command::new("h2load").arg("--version"),
            Duration::from_secs(10),
            work,
        )
        .ok()?;
        done.status.success().then(|| {
            done.stdout
                .lines()
                .next()
                .unwrap_or("h2load")
                .trim()
                .to_owned()
        })
    };
    if let Some(v) = version(work) {
        return check_h2load_flags(work).map(|()| v);
    }
    if !process::is_root() {
        bail!("h2load is missing: install it with `sudo apt-get install nghttp2-client`");
    }
    process::apt_get_install("nghttp2-client", work)?;
    let v = version(work).context("h2load still missing after installing nghttp2-client")?;
    check_h2load_flags(work)?;
    Ok(v)
}

/// The options this benchmark relies on exist in the installed h2load.
fn check_h2load_flags(work: &Path) -> Result<()> {
    let done = run(
        "h2load-help",
        Command::new("h2load").arg("--help"),
        Duration::from_secs(10),
        work,
    )?;
    let help = format!("{}{}", done.stdout, done.stderr);
    for flag in [
        "--duration",
        "--data",
        "--header",
        "--max-concurrent-streams",
    ] {
        if !help.contains(flag) {
            bail!("this h2load has no {flag} option (need nghttp2 >= 1.38)");
        }
    }
    Ok(())
}

/// `taskset -c LOAD_CORE h2load -c 50 -m 10 LENGTH -d BODY` against
/// getOrder at `base_url`; `length` is `-D SECONDS` or `-n COUNT`.
///
/// No `--warm-up-time`: h2load (1.52) counts the warm-up's DATA bytes in
/// its traffic line but not its requests, which would break the DATA check;
/// a warm-up is a run of its own instead.
pub fn get_order(base_url: &str, body: &Path, length: [&str; 2]) -> Command {
    let url = format!("{base_url}/ecommerce.OrderManagement/getOrder");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", LOAD_CORE, "h2load"])
        .args(["-c", &CONNECTIONS.to_string()])
        .args(["-m", &STREAMS_PER_CONNECTION.to_string()])
        .args(length)
        .arg("-d")
        .arg(body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(url);
    cmd
}

/// What h2load reports about one run (the measurement period only: h2load
/// leaves the warm-up out of every number).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct H2load {
    pub seconds: f64,
    pub requests_per_second: f64,
    pub total: u64,
    pub started: u64,
    pub done: u64,
    /// HTTP 2xx: a gRPC error is a 200 too, hence the DATA check.
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
    /// DATA frame payload bytes received (gRPC messages with their 5-byte
    /// prefix; trailers count as headers).
    pub data_bytes: u64,
}

impl H2load {
    pub fn parse(out: &str) -> Result<Self> {
        let mut r = Self::default();
        let mut seen = (false, false, false);
        for line in out.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("finished in ") {
                // finished in 10.00s, 105234.50 req/s, 11.04MB/s
                let mut parts = rest.split(", ");
                r.seconds = duration(parts.next().unwrap_or(""))?;
                r.requests_per_second =
                    number(parts.next().unwrap_or("").trim_end_matches(" req/s"))?;
                seen.0 = true;
            } else if let Some(rest) = line.strip_prefix("requests: ") {
                // requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout
                for part in rest.split(", ") {
                    let (n, what) = part.split_once(' ').context("bad requests line")?;
                    let n: u64 = n.parse().context("bad requests line")?;
                    match what {
                        "total" => r.total = n,
                        "started" => r.started = n,
                        "done" => r.done = n,
                        "succeeded" => r.succeeded = n,
                        "failed" => r.failed = n,
                        "errored" => r.errored = n,
                        "timeout" => r.timeout = n,
                        _ => {}
                    }
                }
                seen.1 = true;
            } else if let Some(rest) = line.strip_prefix("traffic: ") {
                // traffic: 66.76MB (70003340) total, 4.01MB (4205348) headers (space savings 95.42%), 61.03MB (64000000) data
                let data = rest
                    .split(", ")
                    .find(|p| p.ends_with(" data"))
                    .context("no data bytes in the traffic line")?;
                let inside = data
                    .split_once('(')
                    .and_then(|(_, r)| r.split_once(')'))
                    .context("bad traffic line")?
                    .0;
                r.data_bytes = inside.parse().context("bad traffic line")?;
                seen.2 = true;
            }
        }
        if seen != (true, true, true) {
            bail!("h2load printed no summary:\n{}", process::tail(out, 20));
        }
        Ok(r)
    }

    fn clean(&self) -> bool {
        self.succeeded > 0 && self.failed == 0 && self.errored == 0 && self.timeout == 0
    }

    /// A fixed-count run (`-n`): every one of `count` requests answered
    /// with one whole order. Exact: nothing is in flight when it ends, and
    /// an error (trailers-only) carries no DATA.
    pub fn exactly_orders(&self, count: u64, message_bytes: u64) -> bool {
        self.clean() && self.succeeded == count && self.data_bytes == count * message_bytes
    }

    /// A timed run (`-D`): DATA holds a whole order for every answer, plus
    /// at most one each for the streams still in flight at the deadline
    /// (started - done; a server that writes DATA and trailers separately,
    /// like grpc-js, has some whose DATA arrived but not their trailers).
    pub fn orders_for_every_answer(&self, message_bytes: u64) -> bool {
        let in_flight = self.started.saturating_sub(self.done);
        self.clean()
            && self.data_bytes.is_multiple_of(message_bytes)
            && self.data_bytes / message_bytes >= self.succeeded
            && self.data_bytes / message_bytes - self.succeeded <= in_flight
    }

    /// Answers whose DATA arrived but which h2load did not count as done.
    pub fn tail_answers(&self, message_bytes: u64) -> i64 {
        (self.data_bytes / message_bytes) as i64 - self.succeeded as i64
    }
}

/// h2load's durations: `10.00s`, `493.63ms`, `812us`.
fn duration(s: &str) -> Result<f64> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        Ok(number(ms)? / 1e3)
    } else if let Some(us) = s.strip_suffix("us") {
        Ok(number(us)? / 1e6)
    } else {
        number(s.strip_suffix('s').unwrap_or(s))
    }
}

fn number(s: &str) -> Result<f64> {
    s.trim()
        .parse()
        .with_context(|| format!("not a number: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2LOAD: &str = "\
starting benchmark...
spawning thread #0: 50 total client(s). Timing-based test with 1s warm-up time and 3s main duration
Warm-up phase is over for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 3.00s, 101234.33 req/s, 8.12MB/s
requests: 303703 total, 304203 started, 303703 done, 303703 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 303703 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 24.37MB (25554010) total, 2.10MB (2206443) headers (space savings 96.05%), 19.98MB (20955507) data
                     min         max         mean         sd        +/- sd
time for request:      171us     20.08ms      4.89ms      1.21ms    78.00%
";

    #[test]
    fn parses_h2load() {
        let r = H2load::parse(H2LOAD).unwrap();
        assert_eq!(r.succeeded, 303_703);
        assert_eq!(r.data_bytes, 20_955_507);
        assert!((r.requests_per_second - 101_234.33).abs() < 1e-6);
        assert!((r.seconds - 3.0).abs() < 1e-9);
        assert!(r.orders_for_every_answer(69));
        assert!(!r.orders_for_every_answer(70));
        assert!(r.exactly_orders(303_703, 69));
        assert!(!r.exactly_orders(303_704, 69));
        // 303,703 done, 500 in flight: DATA of 470 of those may have arrived.
        let tail = H2load {
            data_bytes: (303_703 + 470) * 69,
            ..r.clone()
        };
        assert!(tail.orders_for_every_answer(69));
        assert_eq!(tail.tail_answers(69), 470);
        let beyond = H2load {
            data_bytes: (303_703 + 501) * 69,
            ..r.clone()
        };
        assert!(!beyond.orders_for_every_answer(69));
        // One error among the answers: one order short.
        let error = H2load {
            data_bytes: (303_703 - 1) * 69,
            ..r.clone()
        };
        assert!(!error.orders_for_every_answer(69));
        let counted = H2load {
            started: 20_000,
            done: 20_000,
            succeeded: 20_000,
            data_bytes: 20_000 * 69,
            ..r
        };
        assert!(counted.exactly_orders(20_000, 69));
        assert!(H2load::parse("connect error\n").is_err());
        let short = H2LOAD.replace("finished in 3.00s", "finished in 493.63ms");
        assert!((H2load::parse(&short).unwrap().seconds - 0.49363).abs() < 1e-9);
    }
}
