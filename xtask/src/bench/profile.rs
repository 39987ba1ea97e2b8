//! `cargo xtask profile`: what one getOrder costs each server, in
//! instructions, counted by callgrind.
//!
//! Instruction counts do not depend on what else the machine is doing, so
//! unlike requests/s they compare servers exactly, run to run (the same
//! binaries and load give the same counts within a fraction of a percent).
//! Each server runs under `valgrind --tool=callgrind`, pinned like in the
//! benchmark; after a warm-up the counters are zeroed, h2load sends `calls`
//! getOrder calls (every answer checked by its DATA bytes), and the counters
//! are dumped: instructions / calls is what one call costs the whole server
//! process (every thread, the kernel's share excluded). The dumps stay in
//! `target/profile/` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::load::H2load;
use super::process::{self, Proc, Stderr, run, run_ok};
use super::{CONNECTIONS, LOAD_CORE, ORDER_ID, SERVER_CORE, STREAMS_PER_CONNECTION};

/// What the profile is asked for.
pub struct ProfileOptions {
    pub calls: u64,
    /// Also write PROFILE.md at the repo root.
    pub write_report: bool,
}

struct Subject {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
}

/// One server's counts over the measured calls.
struct Counted {
    name: &'static str,
    per_call: f64,
    /// Instructions spent in the allocator (glibc malloc or mimalloc).
    allocator_per_call: f64,
    /// Our call log line, inclusive (ours only).
    call_log_per_call: Option<f64>,
    /// The costliest functions of our own code, inclusive, per call.
    ours_inclusive: Vec<(f64, String)>,
    dump: PathBuf,
}

pub fn run_profile(root: &Path, options: &ProfileOptions) -> Result<()> {
    process::handle_interrupts()?;
    let out = root.join("target/profile");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let work = tempfile::Builder::new()
        .prefix("order-profile.")
        .tempdir()
        .context("cannot create a temp dir")?;
    process::remove_on_interrupt(work.path());
    let work = work.path();

    super::setup_h2load(work)?;
    setup_valgrind(work)?;
    println!("building the server and bare_server with line tables into target/profile ...");
    build(root, work, &out)?;
    let body = work.join("get-order-101.bin");
    std::fs::write(&body, super::grpc_frame(&ORDER_ID.to_owned()))?;
    let answer_bytes = super::order_101_frame_len(root)?;

    let release = out.join("release");
    let data = work.join("ours-data");
    let subjects = [
        Subject {
            name: "ours (durable store, info logs)",
            binary: release.join("server"),
            args: vec!["--data-dir".into(), data.display().to_string()],
        },
        Subject {
            name: "bare tonic (multi-thread)",
            binary: release.join("examples/bare_server"),
            args: vec![],
        },
        Subject {
            name: "bare tonic (current-thread)",
            binary: release.join("examples/bare_server"),
            args: vec!["--current-thread".into()],
        },
    ];
    let mut counted = Vec::new();
    for (i, subject) in subjects.iter().enumerate() {
        println!("profiling {} ({} calls) ...", subject.name, options.calls);
        let dump = out.join(format!("callgrind.{i}.out"));
        counted.push(count(
            subject,
            &dump,
            &body,
            answer_bytes,
            options.calls,
            work,
        )?);
    }

    let report = render(&counted, options.calls, root);
    print!("\n{report}");
    if options.write_report {
        let md = root.join("PROFILE.md");
        let date = super::date(work);
        let text = format!(
            "# Profile\n\nWritten by `cargo xtask profile --write-report` on {date}; run \
             `cargo xtask profile` to count again (about 10 minutes: callgrind runs each server \
             ~50x slower). Requests/s and the other targets are in [BENCHMARKS.md](BENCHMARKS.md).\n\n{report}"
        );
        std::fs::write(&md, text).with_context(|| format!("cannot write {}", md.display()))?;
        println!("wrote {}", md.display());
    }
    Ok(())
}

fn render(counted: &[Counted], calls: u64, root: &Path) -> String {
    use std::fmt::Write as _;
    let thousands = super::report::thousands;
    let shown = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "getOrder(\"{ORDER_ID}\"): instructions per call counted by callgrind over {} calls \
         (h2load -c {CONNECTIONS} -m {STREAMS_PER_CONNECTION}, after a warm-up of 2,000; server \
         pinned to core {SERVER_CORE}, every thread of it counted, the kernel's work not).\n",
        thousands(calls as f64)
    );
    s.push_str("| server | instructions per call | ours vs this server | in the allocator | callgrind dump |\n");
    s.push_str("|---|--:|--:|--:|---|\n");
    let ours = counted[0].per_call;
    for c in counted {
        let _ = writeln!(
            s,
            "| {} | {} | {:+.1}% | {} | `{}` |",
            c.name,
            thousands(c.per_call),
            (ours / c.per_call - 1.0) * 100.0,
            thousands(c.allocator_per_call),
            shown(&c.dump)
        );
    }
    if let Some(log) = counted[0].call_log_per_call {
        let _ = writeln!(
            s,
            "\nOurs: the per-call log line (`CallRecord::log`, inclusive: fields, formatting, \
             hand-off to the writer thread) is {} instructions of each call.",
            thousands(log)
        );
    }
    if !counted[0].ours_inclusive.is_empty() {
        s.push_str(
            "\nOur own code's costliest functions in our server, inclusive (what they call \
             included, so the rows overlap), per call:\n\n| instructions | function |\n|--:|---|\n",
        );
        for (n, name) in &counted[0].ours_inclusive {
            let _ = writeln!(s, "| {} | `{}` |", thousands(*n), name);
        }
    }
    let _ = writeln!(
        s,
        "\nWhere the rest goes: `callgrind_annotate --inclusive=yes {}`.",
        shown(&counted[0].dump)
    );
    s
}

/// valgrind's version; installs it with apt-get (as root) when missing.
fn setup_valgrind(work: &Path) -> Result<()> {
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

/// Release builds with line tables (so callgrind can name functions), in a
/// target dir of their own so `target/release` stays as shipped.
fn build(root: &Path, work: &Path, target: &Path) -> Result<()> {
    super::cargo_build(
        root,
        work,
        &["--bin", "server", "--example", "bare_server"],
        &[
            ("CARGO_TARGET_DIR", target.as_os_str()),
            ("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only".as_ref()),
        ],
    )
}

fn count(
    subject: &Subject,
    dump: &Path,
    body: &Path,
    answer_bytes: u64,
    calls: u64,
    work: &Path,
) -> Result<Counted> {
    let stem = dump
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let log = work.join(format!("{stem}.log"));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", SERVER_CORE, "valgrind", "--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", dump.display()))
        .arg(&subject.binary)
        .args(["--listen", "127.0.0.1:0"])
        .args(&subject.args)
        .env_remove("RUST_LOG");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORDER_") {
            cmd.env_remove(key);
        }
    }
    let mut server = Proc::spawn(
        "callgrind-server",
        &mut cmd,
        Duration::from_secs(1800),
        work,
        Stderr::To(log.clone()),
    )?;
    let addr = process::wait_listening(&mut server, &log, Duration::from_secs(300))?;
    let url = format!("http://{addr}/ecommerce.OrderManagement/getOrder");
    let h2load = |n: u64| -> Result<()> {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", LOAD_CORE, "h2load"])
            .args(["-c", &CONNECTIONS.to_string()])
            .args(["-m", &STREAMS_PER_CONNECTION.to_string()])
            .args(["-n", &n.to_string()])
            .arg("-d")
            .arg(body)
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg(&url);
        let done = run_ok("h2load", &mut cmd, Duration::from_secs(900), work)?;
        let result = H2load::parse(&done.stdout)?;
        // Every answer a real order (an error would be trailers-only).
        if result.succeeded != n || result.data_bytes != n * answer_bytes {
            bail!(
                "{}: {} of {n} calls succeeded with {} DATA bytes (expected {})",
                subject.name,
                result.succeeded,
                result.data_bytes,
                n * answer_bytes
            );
        }
        Ok(())
    };
    let control = |what: &str| -> Result<()> {
        let mut cmd = Command::new("callgrind_control");
        cmd.arg(what).arg(server.pid().to_string());
        run_ok(
            "callgrind-control",
            &mut cmd,
            Duration::from_secs(120),
            work,
        )
        .map(|_| ())
    };
    h2load(2_000)?; // lazy initialisation, connection set-up paths
    control("--zero")?;
    h2load(calls)?;
    control("--dump")?;
    server.kill();

    let dumped = PathBuf::from(format!("{}.1", dump.display()));
    let total = totals(&dumped)?;
    let annotate = |inclusive: bool| -> Result<String> {
        let mut cmd = Command::new("callgrind_annotate");
        cmd.arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .args(["--auto=no", "--threshold=100"])
        .arg(&dumped);
        Ok(run_ok(
            "callgrind-annotate",
            &mut cmd,
            Duration::from_secs(300),
            work,
        )?
        .stdout)
    };
    let exclusive = annotate(false)?;
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
    let inclusive = annotate(true)?;
    let call_log = rows(&inclusive)
        .find(|(_, name)| name.contains("CallRecord::log ["))
        .map(|(n, _)| n as f64 / calls as f64);
    let ours_inclusive = our_functions(&inclusive, calls, 12);
    Ok(Counted {
        name: subject.name,
        per_call: total as f64 / calls as f64,
        allocator_per_call: allocator as f64 / calls as f64,
        call_log_per_call: call_log,
        ours_inclusive,
        dump: dumped,
    })
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
