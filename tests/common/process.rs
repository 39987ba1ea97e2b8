//! The real server binary as a child process, for tests of what only a
//! process shows: signals, exit codes, restarts, crashes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed (and reaped) on drop if still running.
pub struct ServerProcess {
    child: Child,
    log: BufReader<ChildStderr>,
    pub url: String,
    /// What the server logged up to and including "listening on".
    pub startup: String,
}

impl ServerProcess {
    /// Starts `server --listen 127.0.0.1:0 ARGS` and waits for its
    /// "listening on ADDR" log line. `Err` holds the log if it exited first.
    pub fn start(args: &[&str]) -> Result<Self, (ExitStatus, String)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("ORDER_LISTEN")
            .env_remove("ORDER_DATA_DIR")
            .env_remove("ORDER_IN_MEMORY")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let log = BufReader::new(child.stderr.take().unwrap());
        // From here on, Drop kills and reaps the child whatever happens.
        let mut server = Self {
            child,
            log,
            url: String::new(),
            startup: String::new(),
        };
        loop {
            let mut line = String::new();
            if server.log.read_line(&mut line).expect("read server log") == 0 {
                let status = server.child.wait().unwrap();
                return Err((status, std::mem::take(&mut server.startup)));
            }
            server.startup.push_str(&line);
            if let Some(addr) = line.trim_end().split("listening on ").nth(1) {
                server.url = format!("http://{addr}");
                return Ok(server);
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or clean up, like a power cut for the process.
    pub fn kill9(mut self) {
        self.signal("KILL");
        self.wait_exit();
    }

    /// Everything the server logs after startup, once it has exited.
    pub fn rest_of_log(&mut self) -> String {
        let mut rest = String::new();
        self.log.read_to_string(&mut rest).unwrap();
        rest
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
