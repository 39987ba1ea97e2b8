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
//!
//! A command of its own that shares leaf helpers with the benchmark (the
//! builds, the server lifecycle, h2load, the request); [`callgrind`] runs
//! and reads callgrind.

mod callgrind;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::bench::config::{
    CONNECTIONS, ORDER_ID, REPORT_DIR, SERVER_CORE, STREAMS_PER_CONNECTION,
};
use crate::bench::numbers::thousands;
use crate::bench::{binaries, h2load, machine, process, wire};
use callgrind::{Counted, Load, Subject};

/// What the profile is asked for.
pub struct ProfileOptions {
    pub calls: u64,
    /// Also write PROFILE.md into docs/bench/.
    pub write_report: bool,
}

pub fn run_profile(root: &Path, options: &ProfileOptions) -> Result<()> {
    let out = root.join("target/profile");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let work = process::run_dir("profile")?;
    let work = work.path();

    h2load::setup(work)?;
    callgrind::setup_valgrind(work)?;
    println!("building the server and bare_server with line tables into target/profile ...");
    build_with_line_tables(root, work, &out)?;
    let load = Load {
        body: wire::write_request_body(work)?,
        answer_bytes: wire::order_101_frame_len(root)?,
        calls: options.calls,
    };
    let mut counted = Vec::new();
    for (i, subject) in subjects(&out.join("release"), work).iter().enumerate() {
        println!("profiling {} ({} calls) ...", subject.name, options.calls);
        let dump = out.join(format!("callgrind.{i}.out"));
        counted.push(callgrind::count(subject, &dump, &load, work)?);
    }

    let report = render(&counted, options.calls, root);
    print!("\n{report}");
    if options.write_report {
        write_report(root, work, &report)?;
    }
    Ok(())
}

/// The servers profiled, from the line-table build in `release`: ours as
/// shipped with metrics on (the first, what the others are compared with),
/// ours without metrics, ours tracing 1% of calls, and bare tonic.
fn subjects(release: &Path, work: &Path) -> Vec<Subject> {
    let ours = |i: usize, name: &'static str, extra: &[&str]| {
        let data = work.join(format!("ours-data-{i}"));
        let mut args = vec!["--data-dir".into(), data.display().to_string()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Subject {
            name,
            binary: release.join("server"),
            args,
        }
    };
    // No collector listens there: spans are exported (and fail) off the
    // call path, as when a collector is down.
    let tracing = [
        "--admin-listen",
        "127.0.0.1:0",
        "--otlp-endpoint",
        "http://127.0.0.1:9",
        "--trace-sample-ratio",
        "0.01",
    ];
    vec![
        ours(
            0,
            "ours (durable store, info logs, metrics on)",
            &["--admin-listen", "127.0.0.1:0"],
        ),
        ours(1, "ours (durable store, info logs, metrics off)", &[]),
        ours(2, "ours (metrics on, tracing 1% of calls)", &tracing),
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
    ]
}

/// PROFILE.md in docs/bench/, next to BENCHMARKS.md.
fn write_report(root: &Path, work: &Path, report: &str) -> Result<()> {
    let dir = root.join(REPORT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = dir.join("PROFILE.md");
    let date = machine::date(work);
    let text = format!(
        "# Profile\n\nWritten by `cargo xtask profile --write-report` on {date}; run \
         `cargo xtask profile` to count again (about 10 minutes: callgrind runs each server \
         ~50x slower). Requests/s and the other targets are in [BENCHMARKS.md](BENCHMARKS.md).\n\n{report}"
    );
    std::fs::write(&md, text).with_context(|| format!("cannot write {}", md.display()))?;
    println!("wrote {}", md.display());
    Ok(())
}

/// Release builds with line tables (so callgrind can name functions), in a
/// target dir of their own so `target/release` stays as shipped.
fn build_with_line_tables(root: &Path, work: &Path, target: &Path) -> Result<()> {
    binaries::cargo_build(
        root,
        work,
        &["--bin", "server", "--example", "bare_server"],
        &[
            ("CARGO_TARGET_DIR", target.as_os_str()),
            ("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only".as_ref()),
        ],
    )
}

/// The table (instructions per call, ours vs each server, the allocator's
/// share) and our costliest functions, as markdown.
fn render(counted: &[Counted], calls: u64, root: &Path) -> String {
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
