//! Facts about the machine the numbers depend on (cores, CPU, kernel,
//! memory, toolchains, how busy it is), and the clock.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::process::{self, run, run_ok};

/// What the numbers depend on, as bench-results.json's `machine` has it.
///
/// Fields in alphabetical order: the file has always listed its keys
/// sorted (it was a `serde_json::Value`), and the same order keeps diffs
/// between two runs small.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub h2load: String,
    pub kernel: String,
    pub loadavg_at_end: String,
    pub loadavg_at_start: String,
    pub memory_gib: f64,
    pub node: Option<String>,
    pub nproc: String,
    pub postgres: Option<String>,
    pub python: Option<String>,
    pub rustc: String,
    pub tonic: Option<String>,
}

/// Versions of the load generator and the peers, found while setting them up.
pub struct Tools {
    pub h2load: String,
    pub python: Option<String>,
    pub node: Option<String>,
    pub postgres: Option<String>,
}

/// The machine now (the load average at the end of the run included).
pub fn probe(root: &Path, work: &Path, tools: Tools, loadavg_at_start: String) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let output = |program: &str, arg: &str| {
        run(
            "version",
            Command::new(program).arg(arg),
            Duration::from_secs(30),
            work,
        )
        .map(|d| d.stdout.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
    };
    Machine {
        nproc: output("nproc", "--all"),
        cpu,
        memory_gib: (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        rustc: output("rustc", "--version"),
        tonic: lock_version(root, "tonic"),
        h2load: tools.h2load,
        loadavg_at_start,
        loadavg_at_end: loadavg(),
        python: tools.python,
        node: tools.node,
        postgres: tools.postgres,
    }
}

/// `date -u`, to the minute.
pub fn date(work: &Path) -> String {
    run_ok(
        "date",
        Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
        Duration::from_secs(10),
        work,
    )
    .map(|d| d.stdout.trim().to_owned())
    .unwrap_or_else(|_| "unknown".into())
}

/// `getconf CLK_TCK`: the unit of /proc/PID/stat's utime and stime.
pub fn clock_ticks(work: &Path) -> Result<f64> {
    let done = run_ok(
        "getconf",
        Command::new("getconf").arg("CLK_TCK"),
        Duration::from_secs(10),
        work,
    )?;
    done.stdout
        .trim()
        .parse()
        .context("getconf CLK_TCK printed no number")
}

/// How many cores the machine keeps busy over one second (this process
/// sleeps meanwhile, and has no child running).
pub fn busy_cores(clk_tck: f64) -> Result<f64> {
    let before = process::system_busy_ticks()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let ticks = process::system_busy_ticks()? - before;
    Ok(ticks as f64 / clk_tck / started.elapsed().as_secs_f64())
}

/// The first three fields of /proc/loadavg (1, 5, 15 minutes).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A package's version in Cargo.lock.
pub fn lock_version(root: &Path, name: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    lines.find(|l| *l == format!("name = \"{name}\""))?;
    lines
        .next()?
        .strip_prefix("version = \"")
        .map(|v| v.trim_end_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_from_the_lock_file() {
        let root = crate::project_root();
        assert!(lock_version(&root, "tonic").unwrap().starts_with("0.14"));
        assert_eq!(lock_version(&root, "no-such-package"), None);
    }
}
