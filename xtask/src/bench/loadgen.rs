//! The load generator that checks every answer (the correctness pass, the
//! latency runs, the streaming RPCs): which package builds it, how it is
//! run, and its one-line JSON report.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use super::config::LOAD_CORE;

/// A binary of the workspace that runs `bench` (and `soak`) load.
#[derive(Debug, Clone, Copy)]
pub struct LoadGenerator {
    /// The workspace package that builds it (`cargo build -p`).
    pub package: &'static str,
    /// Its binary, in `target/release/`.
    pub binary: &'static str,
}

/// The workspace's main package: `cargo build --bins` from the root builds
/// its binaries without naming it.
pub const MAIN_PACKAGE: &str = "order-management";

/// The one place that names the load generator the benchmark builds and
/// runs: `loadgen bench`, in a workspace package of its own. Its command
/// line is `BINARY --server URL --json bench ARGS` (see
/// [`LoadGenerator::bench`]).
pub const LOAD_GENERATOR: LoadGenerator = LOADGEN;

const LOADGEN: LoadGenerator = LoadGenerator {
    package: "loadgen",
    binary: "loadgen",
};

impl LoadGenerator {
    /// Its path after a release build into `target`.
    pub fn path(&self, target: &Path) -> PathBuf {
        target.join("release").join(self.binary)
    }

    /// `BINARY bench`, as reports and progress lines name the tool.
    pub fn bench_name(&self) -> String {
        format!("{} bench", self.binary)
    }

    /// `taskset -c LOAD_CORE BINARY --server URL --json bench ARGS`: one
    /// run against `url`, printing one JSON report line ([`ClientBench`]).
    pub fn bench(&self, binary: &Path, url: &str, args: &[String]) -> Command {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", LOAD_CORE])
            .arg(binary)
            .args(["--server", url, "--json", "bench"])
            .args(args);
        cmd
    }
}

/// Owned arguments from string literals.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The load generator's `--json bench` report (src/bench.rs `BenchReport`).
#[derive(Debug, Clone, Default)]
pub struct ClientBench {
    pub calls: u64,
    pub ok: u64,
    pub wrong: u64,
    /// Failed calls by status code.
    pub errors: u64,
    pub messages: u64,
    pub calls_per_second: f64,
    pub messages_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Percentiles of the calls answered OK alone.
    pub ok_p50_us: u64,
    pub ok_p99_us: u64,
    /// The line as printed, kept for bench-results.json.
    pub raw: Value,
}

impl ClientBench {
    pub fn parse(out: &str) -> Result<Self> {
        let line = out
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("{} printed no JSON report", LOAD_GENERATOR.bench_name()))?;
        let raw: Value = serde_json::from_str(line)
            .with_context(|| format!("{}'s JSON", LOAD_GENERATOR.bench_name()))?;
        let u = |k: &str| {
            raw[k]
                .as_u64()
                .with_context(|| format!("no {k} in the report"))
        };
        let f = |k: &str| {
            raw[k]
                .as_f64()
                .with_context(|| format!("no {k} in the report"))
        };
        let errors = raw["errors"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        Ok(Self {
            calls: u("calls")?,
            ok: u("ok")?,
            wrong: u("wrong")?,
            errors,
            messages: u("messages")?,
            calls_per_second: f("calls_per_second")?,
            messages_per_second: f("messages_per_second")?,
            p50_us: u("p50_us")?,
            p99_us: u("p99_us")?,
            ok_p50_us: u("ok_p50_us")?,
            ok_p99_us: u("ok_p99_us")?,
            raw,
        })
    }

    /// Failed calls whose status code is not `code` (as the report names
    /// codes: `ResourceExhausted`).
    pub fn errors_other_than(&self, code: &str) -> u64 {
        self.raw["errors"].as_object().map_or(0, |m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != code)
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
    }

    /// Every call answered, and answered right.
    pub fn all_ok(&self) -> bool {
        self.ok > 0 && self.wrong == 0 && self.errors == 0 && self.ok == self.calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_bench() {
        let line = r#"{"rpc":"get","connections":1,"concurrency":1,"seconds":1.5,"calls":10,"ok":9,"errors":{"NotFound":1},"messages":9,"calls_per_second":6.0,"messages_per_second":6.0,"p50_us":80,"p90_us":90,"p99_us":120,"max_us":130,"ok_p50_us":79,"ok_p99_us":119,"wrong":0}"#;
        let r = ClientBench::parse(line).unwrap();
        assert_eq!((r.ok, r.errors, r.p99_us, r.ok_p99_us), (9, 1, 120, 119));
        assert!(!r.all_ok());
        assert_eq!(r.errors_other_than("NotFound"), 0);
        assert_eq!(r.errors_other_than("ResourceExhausted"), 1);
    }

    #[test]
    fn runs_the_bench_subcommand_on_the_load_core() {
        let cmd = LOAD_GENERATOR.bench(
            Path::new("/t/release/x"),
            "http://127.0.0.1:1",
            &args(&["--rpc", "get"]),
        );
        let words: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            words,
            [
                "-c",
                LOAD_CORE,
                "/t/release/x",
                "--server",
                "http://127.0.0.1:1",
                "--json",
                "bench",
                "--rpc",
                "get"
            ]
        );
    }
}
