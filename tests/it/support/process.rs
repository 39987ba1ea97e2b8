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
        Self::start_with_env(args, &[])
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

impl ServerProcess {
    /// Like [`ServerProcess::start`], with extra environment variables, and
    /// reading the listening address from text or JSON (`--log-format json`)
    /// log lines alike.
    pub fn start_with_env(
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, (ExitStatus, String)> {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_server")), args, env)
    }

    /// Like [`ServerProcess::start`], with the process's file-descriptor
    /// limit (soft and hard) set to `nofile`, as `ulimit -n` would.
    pub fn start_with_fd_limit(args: &[&str], nofile: u64) -> Result<Self, (ExitStatus, String)> {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Self::spawn(command, args, &[])
    }

    fn spawn(
        mut command: Command,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, (ExitStatus, String)> {
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("ORDER_") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the server binary");
        let log = BufReader::new(child.stderr.take().unwrap());
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
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                    .collect();
                server.url = format!("http://{addr}");
                return Ok(server);
            }
        }
    }

    /// The address the server listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .parse()
            .expect("a socket address")
    }

    /// The `https://` URL of a server started with `--tls-cert`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
