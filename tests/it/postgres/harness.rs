//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory, listening only on a Unix socket in that directory (no TCP,
//! no network, no Docker), stopped with `pg_ctl stop -m fast` on drop.
//!
//! ```ignore
//! let Some(pg) = Postgres::start() else { return }; // skipped: printed why
//! let url = pg.create_database("t").await;          // postgres://postgres@%2Ftmp%2F..%2Fsock/t
//! ```
//!
//! Finding PostgreSQL: `$PG_BIN` (a directory holding `initdb`, `pg_ctl`,
//! `postgres`), else the newest `/usr/lib/postgresql/*/bin` (Debian,
//! Ubuntu), else `PATH`. Not found: with `CI=true` the test fails (CI
//! must install it: `apt-get install -y postgresql`); otherwise it prints
//! loudly that it was skipped and how to enable it, and passes.
//!
//! As root (CI, these machines) the server runs as the `postgres` user
//! (`runuser -u postgres --`), which owns the temporary directory:
//! PostgreSQL refuses to run as root.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// The TCP port if any, and the socket's name (`.s.PGSQL.<port>`).
    port: u16,
}

impl Postgres {
    /// A fresh server tuned for tests (no fsync: a crash of the machine
    /// may lose data, a stop or a crash of the server does not), or `None`
    /// (after saying why, loudly) when PostgreSQL is not installed and
    /// `CI` is not set.
    pub fn start() -> Option<Self> {
        Self::start_with(false, Listen::Socket)
    }

    /// A fresh server with PostgreSQL's durable defaults (fsync at each
    /// commit), for measurements.
    pub fn start_durable() -> Option<Self> {
        Self::start_with(true, Listen::Socket)
    }

    /// A fresh server that also listens on plain TCP `127.0.0.1:port`.
    pub fn start_tcp(port: u16) -> Option<Self> {
        Self::start_with(false, Listen::Tcp(port))
    }

    /// A fresh server that also listens on TCP `127.0.0.1:port`, accepting
    /// only TLS connections there, with this certificate and key (PEM).
    /// Its socket stays the way for [`Postgres::connect`].
    pub fn start_tls(port: u16, cert_pem: &str, key_pem: &str) -> Option<Self> {
        Self::start_with(false, Listen::Tls(port, cert_pem, key_pem))
    }

    fn start_with(durable: bool, listen: Listen<'_>) -> Option<Self> {
        let Some(bin) = find_bin() else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but no PostgreSQL server was found (initdb, pg_ctl, postgres): \
                 install it (`apt-get install -y postgresql`) or set PG_BIN to its bin directory"
            );
            eprintln!(
                "\n\
                 ************************************************************************\n\
                 * SKIPPED: a PostgreSQL store test: no PostgreSQL server found.         *\n\
                 * Install one to run it: `sudo apt-get install -y postgresql`           *\n\
                 * (or set PG_BIN=/path/to/postgresql/bin). CI=true makes this a failure.*\n\
                 ************************************************************************\n"
            );
            return None;
        };
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let pg = Self {
            dir,
            bin,
            as_postgres,
            port: match listen {
                Listen::Socket => 5432,
                Listen::Tcp(port) | Listen::Tls(port, _, _) => port,
            },
        };
        let data = pg.data_dir();
        run(pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg("--no-sync"));
        let mut conf = format!(
            "unix_socket_directories = '{}'\n\
             shared_buffers = 32MB\n\
             max_connections = 100\n",
            pg.socket_dir().display()
        );
        if !durable {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let mut written = vec!["postgresql.auto.conf"];
        match listen {
            Listen::Socket => conf.push_str("listen_addresses = ''\n"),
            Listen::Tcp(port) => {
                conf.push_str(&format!("listen_addresses = '127.0.0.1'\nport = {port}\n"));
            }
            Listen::Tls(port, cert, key) => {
                conf.push_str(&format!(
                    "listen_addresses = '127.0.0.1'\nport = {port}\nssl = on\n\
                     ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                ));
                std::fs::write(data.join("server.crt"), cert).unwrap();
                std::fs::write(data.join("server.key"), key).unwrap();
                std::fs::set_permissions(
                    data.join("server.key"),
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                std::fs::write(
                    data.join("pg_hba.conf"),
                    "local all all trust\n\
                     hostssl all all 127.0.0.1/32 trust\n\
                     hostnossl all all 127.0.0.1/32 reject\n",
                )
                .unwrap();
                written.extend(["server.crt", "server.key", "pg_hba.conf"]);
            }
        }
        std::fs::write(data.join("postgresql.auto.conf"), conf).unwrap();
        if pg.as_postgres {
            for file in written {
                run(Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(data.join(file)));
            }
        }
        pg.start_again();
        Some(pg)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's socket (`.s.PGSQL.5432`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// A URL for database `db` over the Unix socket, as user `postgres`.
    pub fn url(&self, db: &str) -> String {
        let host = self.socket_dir().display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{host}:{}/{db}", self.port)
    }

    /// The URL for `db` with the socket in the `host` parameter (the other
    /// form tokio-postgres accepts).
    pub fn url_with_host_param(&self, db: &str) -> String {
        format!(
            "postgres://postgres@/{db}?host={}",
            self.socket_dir().display()
        )
    }

    /// A free TCP port on 127.0.0.1 (for [`Postgres::start_tls`]).
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    /// Creates database `name` (UTF8) and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = self.connect("postgres").await;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"
            ))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
        self.url(name)
    }

    /// A plain client on database `db` (its connection task spawned).
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {db}: {e:?}"));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// `pg_ctl stop -m fast`: open connections are terminated.
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"]));
    }

    /// Starts the (stopped) server again, waiting until it accepts
    /// connections.
    pub fn start_again(&self) {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"]));
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// Where a test server listens besides its Unix socket.
#[derive(Clone, Copy)]
enum Listen<'a> {
    Socket,
    Tcp(u16),
    /// TLS only on TCP: port, certificate PEM, key PEM.
    Tls(u16, &'a str, &'a str),
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|t| dir.join(t).is_file())
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return has_server(&dir).then_some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has_server(d))
}
