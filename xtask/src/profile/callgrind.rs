//! Counting with callgrind: a server under `valgrind --tool=callgrind`,
//! h2load load between zeroing and dumping its counters, and the numbers
//! read back from the dump with `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::h2load::{self, H2load};
use crate::bench::process::{self, Proc, run, run_ok};
use crate::bench::servers;

/// A server to profile.
pub struct Subject {
    pub name: &'static str,
    pub binary: PathBuf,
    pub args: Vec<String>,
}

/// The getOrder load: its request body, the length of every answer, and
/// how many calls are counted.
pub struct Load {
    pub body: PathBuf,
    pub answer_bytes: u64,
    pub calls: u64,
}

/// One server's counts over the measured calls.
pub struct Counted {
    pub name: &'static str,
    pub per_call: f64,
    /// Instructions spent in the allocator (glibc malloc or mimalloc).
    pub allocator_per_call: f64,
    /// Our call log line, inclusive (ours only).
    pub call_log_per_call: Option<f64>,
    /// The costliest functions of our own code, inclusive, per call.
    pub ours_inclusive: Vec<(f64, String)>,
    pub dump: PathBuf,
}

/// valgrind's version; installs it with apt-get (as root) when missing.
pub fn setup_valgrind(work: &Path) -> Result<()> {
    let present = |work: &Path| {
        run(
            "valgrind-version",
            Command::new("valgrind").arg("--version"),
            Duration::from_secs(10),
            work,
        )
        .is_ok_and(|done| done.status.success())
    };
    if present(work) {
        return Ok(());
    }
    if !process::is_root() {
        bail!("valgrind is missing: install it with `sudo apt-get install valgrind`");
    }
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "valgrind"][..],
    ] {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_ok("apt-get", &mut cmd, Duration::from_secs(900), work)?;
    }
    if !present(work) {
        bail!("valgrind still missing after installing it");
    }
    Ok(())
}

/// Profiles `subject`: started under callgrind (dumping to `dump`), warmed
/// up with 2,000 calls, counters zeroed, `load.calls` calls, counters
/// dumped; then the dump is read.
pub fn count(subject: &Subject, dump: &Path, load: &Load, work: &Path) -> Result<Counted> {
    let stem = dump
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let log = work.join(format!("{stem}.log"));
    let mut cmd = servers::pinned("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", dump.display()))
        .arg(&subject.binary)
        .args(servers::LISTEN)
        .args(&subject.args);
    servers::as_shipped(&mut cmd);
    let (mut server, addr) = servers::launch(
        "callgrind-server",
        &mut cmd,
        &log,
        work,
        Duration::from_secs(300),
    )?;
    let url = format!("http://{addr}");
    let control = |what: &str| callgrind_control(what, &server, work);
    checked_calls(subject.name, &url, load, 2_000, work)?; // lazy initialisation, connection set-up paths
    control("--zero")?;
    checked_calls(subject.name, &url, load, load.calls, work)?;
    control("--dump")?;
    server.kill();
    read_dump(
        subject.name,
        PathBuf::from(format!("{}.1", dump.display())),
        load.calls,
        work,
    )
}

/// `n` getOrder calls with h2load, every answer a real order (an error
/// would be trailers-only, with no DATA).
fn checked_calls(name: &str, url: &str, load: &Load, n: u64, work: &Path) -> Result<()> {
    let mut cmd = h2load::get_order(url, &load.body, ["-n", &n.to_string()]);
    let done = run_ok("h2load", &mut cmd, Duration::from_secs(900), work)?;
    let result = H2load::parse(&done.stdout)?;
    if result.succeeded != n || result.data_bytes != n * load.answer_bytes {
        bail!(
            "{name}: {} of {n} calls succeeded with {} DATA bytes (expected {})",
            result.succeeded,
            result.data_bytes,
            n * load.answer_bytes
        );
    }
    Ok(())
}

/// `callgrind_control WHAT PID`: `--zero` or `--dump` the counters.
fn callgrind_control(what: &str, server: &Proc, work: &Path) -> Result<()> {
    let mut cmd = Command::new("callgrind_control");
    cmd.arg(what).arg(server.pid().to_string());
    run_ok(
        "callgrind-control",
        &mut cmd,
        Duration::from_secs(120),
        work,
    )
    .map(|_| ())
}

/// The counts of a dump over `calls` calls: in total, in the allocator, in
/// our call log line, and in our costliest functions.
fn read_dump(name: &'static str, dumped: PathBuf, calls: u64, work: &Path) -> Result<Counted> {
    let total = totals(&dumped)?;
    let exclusive = annotate(&dumped, false, work)?;
    if rows(&exclusive).next().is_none() {
        bail!(
            "cannot read callgrind_annotate's output (expected `N (P%)  file:function` rows):\n{}",
            process::tail(&exclusive, 20)
        );
    }
    let allocator: u64 = rows(&exclusive)
        .filter(|(_, name)| {
            name.contains("/malloc/malloc.c:")
                || name.contains("/malloc/arena.c:")
                || name.contains("libmimalloc-sys")
        })
        .map(|(n, _)| n)
        .sum();
    let inclusive = annotate(&dumped, true, work)?;
    let call_log = rows(&inclusive)
        .find(|(_, name)| name.contains("CallRecord::log ["))
        .map(|(n, _)| n as f64 / calls as f64);
    let ours_inclusive = our_functions(&inclusive, calls, 12);
    Ok(Counted {
        name,
        per_call: total as f64 / calls as f64,
        allocator_per_call: allocator as f64 / calls as f64,
        call_log_per_call: call_log,
        ours_inclusive,
        dump: dumped,
    })
}

/// `callgrind_annotate` of a dump, inclusive or exclusive counts, every
/// function listed (`--threshold=100`).
fn annotate(dumped: &Path, inclusive: bool, work: &Path) -> Result<String> {
    let mut cmd = Command::new("callgrind_annotate");
    cmd.arg(format!(
        "--inclusive={}",
        if inclusive { "yes" } else { "no" }
    ))
    .args(["--auto=no", "--threshold=100"])
    .arg(dumped);
    Ok(run_ok(
        "callgrind-annotate",
        &mut cmd,
        Duration::from_secs(300),
        work,
    )?
    .stdout)
}

/// The first `max` functions of our crate in an inclusive annotation, per
/// call. A function's own row names its object file (`[.../server]`); rows
/// without one are code inlined from elsewhere. Ours: our crate's functions
/// in our files (`src/...`, relative or not), not the standard library's or
/// a dependency's code instantiated for our types.
fn our_functions(inclusive: &str, calls: u64, max: usize) -> Vec<(f64, String)> {
    rows(inclusive)
        .filter_map(|(n, name)| {
            let (file_function, _object) = name.split_once(" [")?;
            let (file, function) = file_function.split_once(".rs:")?;
            let ours = !file.starts_with("/rustc/")
                && !file.contains("/.cargo/")
                && function.contains("order_management::");
            ours.then(|| (n as f64 / calls as f64, function.to_owned()))
        })
        .take(max)
        .collect()
}

/// The `totals:` (or `summary:`) line of a callgrind dump.
fn totals(dump: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(dump).with_context(|| format!("cannot read {}", dump.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no totals in {}", dump.display()))
}

/// `(instructions, file:function)` rows of `callgrind_annotate` output:
/// `1,234,567 (12.34%)  file:function [object]`.
fn rows(annotated: &str) -> impl Iterator<Item = (u64, &str)> {
    annotated.lines().filter_map(|line| {
        let line = line.trim_start();
        let (count, rest) = line.split_once(' ')?;
        let n: u64 = count.replace(',', "").parse().ok()?;
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('(')?.split_once(')')?.1.trim_start();
        Some((n, rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrind_annotate_rows() {
        let text = "--------\nIr  file:function\n--------\n\
                    1,252,589,625 (100.0%)  PROGRAM TOTALS\n\
                    \n    24,703,556 ( 1.50%)  h2-0.4.20/src/hpack/table.rs:h2::hpack::table::Table::index [/x/server]\n";
        let rows: Vec<_> = rows(text).collect();
        assert_eq!(
            rows,
            [
                (1_252_589_625, "PROGRAM TOTALS"),
                (
                    24_703_556,
                    "h2-0.4.20/src/hpack/table.rs:h2::hpack::table::Table::index [/x/server]"
                )
            ]
        );
    }

    #[test]
    fn picks_our_own_functions() {
        let text = "\
  6,940,670 ( 5.82%)  src/middleware/call_body.rs:order_management::middleware::call_body::CallRecord::finish [/w/target/profile/release/server]
  3,774,625 ( 3.17%)  /w/src/service.rs:<order_management::service::OrderService as X>::get_order::{{closure}}
  2,214,000 ( 1.86%)  /rustc/abc/library/core/src/ptr/mod.rs:<order_management::log_format::TextFields as Y>::record_str [/w/target/profile/release/server]
  2,000,000 ( 1.80%)  /root/.cargo/registry/src/index/tonic-0.14.9/src/server/grpc.rs:<order_management::pb::S<T> as Z>::call::{{closure}} [/w/server]
  1,000,000 ( 0.90%)  /w/src/../generated/ecommerce.rs:<order_management::pb::Order as core::clone::Clone>::clone [/w/server]
    500,000 ( 0.50%)  h2-0.4.20/src/hpack/table.rs:h2::hpack::table::Table::index [/w/server]
";
        let found = our_functions(text, 1000, 5);
        assert_eq!(
            found,
            [
                (
                    6940.67,
                    "order_management::middleware::call_body::CallRecord::finish".to_owned()
                ),
                (
                    1000.0,
                    "<order_management::pb::Order as core::clone::Clone>::clone".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn reads_the_totals_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cg.out.1");
        std::fs::write(&path, "version: 1\nevents: Ir\nsummary: 839\ntotals: 839\n").unwrap();
        assert_eq!(totals(&path).unwrap(), 839);
        std::fs::write(&path, "events: Ir\n").unwrap();
        assert!(totals(&path).is_err());
    }
}
