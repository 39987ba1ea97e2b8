//! `cargo xtask gateway`: what getOrder costs over the HTTP/JSON API
//! against over gRPC, on the same server, side by side in one run.
//!
//! Our release server as shipped is pinned to one core, h2load to the
//! other; each round runs getOrder("101") three ways for `--seconds`:
//! gRPC (HTTP/2, the benchmark's request), `GET /v1/orders/101` over
//! HTTP/2 (h2c) and over HTTP/1.1 (`h2load --h1`, one request at a time per
//! connection: no pipelining). Every answer is checked by its bytes: the
//! gRPC frame of order 101, or the JSON body the server sends for it
//! (read once before the runs). With the server's core saturated, the
//! gateway's extra cost per call is 1/(JSON rate) - 1/(gRPC rate).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::binaries::bench_binaries;
use crate::bench::config::{CONNECTIONS, Kind, LOAD_CORE, ORDER_ID, STREAMS_PER_CONNECTION};
use crate::bench::h2load::{self, H2load};
use crate::bench::process::{self, run};
use crate::bench::servers::Servers;
use crate::bench::wire;

/// What the comparison is asked for.
pub struct GatewayOptions {
    pub rounds: usize,
    pub seconds: u64,
}

/// The three ways getOrder is asked.
#[derive(Clone, Copy)]
enum Way {
    Grpc,
    JsonH2,
    JsonH1,
}

impl Way {
    const ALL: [Way; 3] = [Way::Grpc, Way::JsonH2, Way::JsonH1];

    fn label(self) -> &'static str {
        match self {
            Way::Grpc => "gRPC (HTTP/2)",
            Way::JsonH2 => "HTTP/JSON over HTTP/2 (h2c)",
            Way::JsonH1 => "HTTP/JSON over HTTP/1.1",
        }
    }
}

pub fn run_gateway(root: &Path, options: &GatewayOptions) -> Result<()> {
    process::raise_open_files_limit();
    let work = process::run_dir("gateway")?;
    let work = work.path();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    h2load::setup(work)?;
    let binaries = bench_binaries(root, work, false)?;
    let servers = Servers::ours_only(root, work, binaries.server);
    let server = servers.start(Kind::Ours, None)?;
    let grpc_body = wire::write_request_body(work)?;
    let bytes = [
        wire::order_101_frame_len(root)?,
        json_body_len(server.addr)?,
    ];
    let url = server.url();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Way::ALL.len()];
    for round in 0..options.rounds {
        for (i, way) in Way::ALL.into_iter().enumerate() {
            println!(
                "round {}/{}: {} ...",
                round + 1,
                options.rounds,
                way.label()
            );
            let expected = if matches!(way, Way::Grpc) {
                bytes[0]
            } else {
                bytes[1]
            };
            // A checked warm-up of a fixed count, then the timed run.
            let warm = load(way, &url, &grpc_body, ["-n", "2000"], work)?;
            if !warm.exactly_orders(2000, expected) {
                bail!(
                    "{}: not every answer was order {ORDER_ID}: {warm:?}",
                    way.label()
                );
            }
            let timed = load(
                way,
                &url,
                &grpc_body,
                ["-D", &options.seconds.to_string()],
                work,
            )?;
            if !timed.orders_for_every_answer(expected) {
                bail!(
                    "{}: not every answer was order {ORDER_ID}: {timed:?}",
                    way.label()
                );
            }
            rates[i].push(timed.requests_per_second);
        }
    }
    drop(server);
    println!(
        "\n{}",
        report(
            &rates,
            options,
            loadavg
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        )
    );
    Ok(())
}

/// One h2load run of getOrder the way `way` asks it.
fn load(way: Way, url: &str, grpc_body: &Path, length: [&str; 2], work: &Path) -> Result<H2load> {
    let mut cmd = match way {
        Way::Grpc => h2load::get_order(url, grpc_body, length),
        Way::JsonH2 | Way::JsonH1 => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", LOAD_CORE, "h2load"])
                .args(["-c", &CONNECTIONS.to_string()])
                .args(length);
            if matches!(way, Way::JsonH1) {
                cmd.args(["--h1", "-m", "1"]);
            } else {
                cmd.args(["-m", &STREAMS_PER_CONNECTION.to_string()]);
            }
            cmd.args(["-H", "accept: application/json"])
                .arg(format!("{url}/v1/orders/{ORDER_ID}"));
            cmd
        }
    };
    let line = process::render(&cmd);
    let done = run("h2load", &mut cmd, Duration::from_secs(600), work)?;
    if !done.status.success() {
        bail!("`{line}` failed ({}):\n{}", done.status, done.tail());
    }
    H2load::parse(&done.stdout)
}

/// The length of the JSON body of `GET /v1/orders/101`, by one plain
/// HTTP/1.1 request.
fn json_body_len(addr: SocketAddr) -> Result<u64> {
    let mut tcp = TcpStream::connect(addr).context("connect to the server")?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        tcp,
        "GET /v1/orders/{ORDER_ID} HTTP/1.1\r\nhost: {addr}\r\naccept: application/json\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("no end of headers in the answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET /v1/orders/{ORDER_ID} answered:\n{head}");
    }
    if !body.contains(&format!("\"id\":\"{ORDER_ID}\"")) {
        bail!("GET /v1/orders/{ORDER_ID} is not order {ORDER_ID}: {body}");
    }
    Ok(body.len() as u64)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(rates: &[Vec<f64>], options: &GatewayOptions, loadavg: String) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "getOrder(\"{ORDER_ID}\") three ways, {} rounds of {} s (median req/s; h2load -c \
         {CONNECTIONS}, -m {STREAMS_PER_CONNECTION} on HTTP/2, -m 1 on HTTP/1.1; server pinned \
         to one core; load average {loadavg} at the start):\n",
        options.rounds, options.seconds
    );
    out.push_str(
        "| way | req/s | vs gRPC | extra µs of server core per call |\n|---|--:|--:|--:|\n",
    );
    let grpc = median(&rates[0]);
    for (i, way) in Way::ALL.into_iter().enumerate() {
        let r = median(&rates[i]);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2}x | {:+.1} |",
            way.label(),
            r,
            r / grpc,
            (1.0 / r - 1.0 / grpc) * 1e6
        );
    }
    out
}
