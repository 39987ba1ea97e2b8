//! CPU accounting over one load generator run: the server's (every process
//! under it, for PostgreSQL's backends), the load generator's, and every
//! other process's on the machine, as shares of a core.

use std::time::Instant;

use anyhow::Result;

use super::process;
use super::results::Usage;

/// Counters at the start of a run.
pub struct Meter {
    server_pid: u32,
    clk_tck: f64,
    server: u64,
    reaped: u64,
    machine: u64,
    at: Instant,
}

impl Meter {
    /// Starts counting for the server (or process tree) at `server_pid`.
    pub fn start(server_pid: u32, clk_tck: f64) -> Result<Self> {
        Ok(Self {
            server_pid,
            clk_tck,
            server: process::tree_cpu_ticks(server_pid)?,
            reaped: process::reaped_children_ticks(clk_tck),
            machine: process::system_busy_ticks()?,
            at: Instant::now(),
        })
    }

    /// The shares since [`Meter::start`]. The load generator must have
    /// ended (and been waited for) by now: its CPU is read from this
    /// process's reaped children.
    pub fn stop(self) -> Result<Usage> {
        let server = process::tree_cpu_ticks(self.server_pid)?.saturating_sub(self.server);
        let client = process::reaped_children_ticks(self.clk_tck).saturating_sub(self.reaped);
        let machine = process::system_busy_ticks()?.saturating_sub(self.machine);
        let seconds = self.at.elapsed().as_secs_f64().max(1e-9);
        let cores = |t: u64| t as f64 / self.clk_tck / seconds;
        Ok(Usage {
            seconds,
            server_ticks: server,
            clk_tck: self.clk_tck,
            server_cores: cores(server),
            client_cores: cores(client),
            others_cores: cores(machine.saturating_sub(server + client)),
        })
    }
}
