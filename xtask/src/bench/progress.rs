//! Progress lines: elapsed time, step k of n, what is happening.

use std::time::Instant;

pub struct Progress {
    started: Instant,
    step: usize,
    /// Steps expected; refined once the peers are known.
    pub total: usize,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            started: Instant::now(),
            step: 0,
            total,
        }
    }

    fn stamp(&self) -> String {
        let s = self.started.elapsed().as_secs();
        format!("[{:2}:{:02}]", s / 60, s % 60)
    }

    /// The next step starts.
    pub fn step(&mut self, what: &str) {
        self.step += 1;
        println!(
            "{} ({}/{}) {what}",
            self.stamp(),
            self.step,
            self.total.max(self.step)
        );
    }

    /// A result or remark within the current step.
    pub fn note(&self, what: &str) {
        println!("{}     {what}", self.stamp());
    }
}
