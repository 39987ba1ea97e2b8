//! The production server stack, in-process, on a loopback port.

use clap::Parser as _;
use order_management::client::{ConnectionOptions, Connector, OrderClient};
use order_management::server::{Config, Running, open_store};
use tokio::sync::oneshot;

pub struct InProcessServer {
    pub url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    /// Starts the server with these extra flags on a fresh data directory.
    pub async fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["server", "--data-dir", dir.path().to_str().unwrap()];
        argv.extend_from_slice(args);
        let config = Config::parse_from(argv);
        let store = open_store(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let running = Running::start(&config, store, listener).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(running.until(async {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop,
            task,
            _dir: dir,
        }
    }

    /// `n` clients, each on its own connection, without credentials.
    pub async fn clients(&self, n: usize) -> Vec<OrderClient> {
        let options = ConnectionOptions {
            server: self.url.clone(),
            ca_cert: None,
            cert: None,
            key: None,
            tls_domain: None,
            token_file: None,
            gzip: false,
            trace: false,
        };
        let connector = Connector::new(&options).unwrap();
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(connector.connect().await.unwrap());
        }
        clients
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
