//! Configuration: every server flag has its `ORDER_*` environment variable,
//! shown by `--help`, and the variables take effect.

use crate::support::process::ServerProcess;
use clap::CommandFactory as _;
use order_management::CombinedShipment;
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::server::Config;

use super::harness::{binary, connect, drain, ids, order};

const FLAGS: &[(&str, &str)] = &[
    ("listen", "ORDER_LISTEN"),
    ("otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ("trace-sample-ratio", "ORDER_TRACE_SAMPLE_RATIO"),
    ("admin-listen", "ORDER_ADMIN_LISTEN"),
    ("data-dir", "ORDER_DATA_DIR"),
    ("in-memory", "ORDER_IN_MEMORY"),
    ("no-seed", "ORDER_NO_SEED"),
    ("batch-size", "ORDER_BATCH_SIZE"),
    ("max-update-orders", "ORDER_MAX_UPDATE_ORDERS"),
    ("log-format", "ORDER_LOG_FORMAT"),
    ("shutdown-grace", "ORDER_SHUTDOWN_GRACE"),
    ("threads", "ORDER_THREADS"),
    ("tls-cert", "ORDER_TLS_CERT"),
    ("tls-key", "ORDER_TLS_KEY"),
    ("client-ca", "ORDER_CLIENT_CA"),
    ("cors-allow-origin", "ORDER_CORS_ALLOW_ORIGIN"),
    ("auth-token-file", "ORDER_AUTH_TOKEN_FILE"),
    ("max-request-bytes", "ORDER_MAX_REQUEST_BYTES"),
    ("max-response-bytes", "ORDER_MAX_RESPONSE_BYTES"),
    ("max-concurrent-streams", "ORDER_MAX_CONCURRENT_STREAMS"),
    ("max-concurrent-calls", "ORDER_MAX_CONCURRENT_CALLS"),
    ("max-header-list-bytes", "ORDER_MAX_HEADER_LIST_BYTES"),
    ("keepalive-interval", "ORDER_KEEPALIVE_INTERVAL"),
    ("keepalive-timeout", "ORDER_KEEPALIVE_TIMEOUT"),
    ("tcp-keepalive", "ORDER_TCP_KEEPALIVE"),
    ("max-call-seconds", "ORDER_MAX_CALL_SECONDS"),
    ("max-calls-per-ip", "ORDER_MAX_CALLS_PER_IP"),
    ("max-concurrent-writes", "ORDER_MAX_CONCURRENT_WRITES"),
    ("max-queued-writes", "ORDER_MAX_QUEUED_WRITES"),
    ("max-health-watches", "ORDER_MAX_HEALTH_WATCHES"),
    ("request-message-timeout", "ORDER_REQUEST_MESSAGE_TIMEOUT"),
    ("max-buffered-bytes", "ORDER_MAX_BUFFERED_BYTES"),
    ("max-update-bytes", "ORDER_MAX_UPDATE_BYTES"),
    ("page-cache-mb", "ORDER_PAGE_CACHE_MB"),
    ("database-url", "ORDER_DATABASE_URL"),
    ("database-pool-size", "ORDER_DATABASE_POOL_SIZE"),
    ("order-cache-mb", "ORDER_ORDER_CACHE_MB"),
    ("checkpoint-seconds", "ORDER_CHECKPOINT_SECONDS"),
    ("max-connections", "ORDER_MAX_CONNECTIONS"),
    ("max-connections-per-ip", "ORDER_MAX_CONNECTIONS_PER_IP"),
    ("handshake-timeout", "ORDER_HANDSHAKE_TIMEOUT"),
    ("idle-timeout", "ORDER_IDLE_TIMEOUT"),
    ("max-send-buffer-bytes", "ORDER_MAX_SEND_BUFFER_BYTES"),
    ("write-stall-timeout", "ORDER_WRITE_STALL_TIMEOUT"),
    ("max-connection-age", "ORDER_MAX_CONNECTION_AGE"),
    ("max-connection-age-grace", "ORDER_MAX_CONNECTION_AGE_GRACE"),
];

#[test]
fn server_help_lists_every_flag_with_its_env_var() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command.arg("--help");
    for (name, _) in std::env::vars() {
        if name.starts_with("ORDER_") {
            command.env_remove(name);
        }
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();

    // Each flag's entry runs from its `--flag` line to the next entry.
    let entries: Vec<usize> = help
        .match_indices('\n')
        .map(|(i, _)| i)
        .filter(|&i| help[i + 1..].starts_with("      --") || help[i + 1..].starts_with("  -"))
        .collect();
    for (flag, env) in FLAGS {
        let head = format!("\n      --{flag}");
        let start = help
            .find(&format!("{head} "))
            .or_else(|| help.find(&format!("{head}\n")))
            // A boolean that takes `=false` too: `--in-memory[=<IN_MEMORY>]`.
            .or_else(|| help.find(&format!("{head}[=")))
            .unwrap_or_else(|| panic!("--{flag} is not in the help:\n{help}"));
        let end = entries
            .iter()
            .copied()
            .find(|&i| i > start)
            .unwrap_or(help.len());
        let entry = &help[start..end];
        // `[env: NAME=value]`, or `[env: NAME]` for a secret (the database URL).
        assert!(
            entry.contains(&format!("[env: {env}=")) || entry.contains(&format!("[env: {env}]")),
            "--{flag} does not show {env}:\n{entry}"
        );
    }

    // And nothing else: every flag the server takes is in the list above.
    let mut declared: Vec<String> = Config::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let mut listed: Vec<String> = FLAGS.iter().map(|(f, _)| f.to_string()).collect();
    declared.sort();
    listed.sort();
    assert_eq!(declared, listed);
}

async fn process_all(url: &str, ids: &[&str]) -> Vec<CombinedShipment> {
    let mut client = OrderManagementClient::new(connect(url).await);
    for id in ["102", "103"] {
        client.add_order(order(id, "Seoul")).await.unwrap();
    }
    let requests: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut stream = client
        .process_orders(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let (shipments, end) = drain(&mut stream).await;
    end.unwrap();
    shipments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_batch_size_in_the_environment_sets_process_orders_batching() {
    // All three orders go to Seoul: by default one shipment carries them all.
    let default = binary(&["--in-memory"]);
    let shipments = process_all(&default.url, &["101", "102", "103"]).await;
    let got: Vec<Vec<&str>> = shipments.iter().map(ids).collect();
    assert_eq!(got, [vec!["101", "102", "103"]]);

    let one = ServerProcess::start_with_env(&["--in-memory"], &[("ORDER_BATCH_SIZE", "1")])
        .expect("server starts");
    let shipments = process_all(&one.url, &["101", "102", "103"]).await;
    let got: Vec<Vec<&str>> = shipments.iter().map(ids).collect();
    assert_eq!(got, [vec!["101"], vec!["102"], vec!["103"]]);
}
