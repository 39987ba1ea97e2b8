//! The Grafana dashboard in `deploy/` queries only metrics the server
//! exports, and the Prometheus config scrapes the admin listener's path.

use std::collections::BTreeSet;

use super::{http_get, with_admin};

/// Every metric name a PromQL expression mentions: ours all start with one
/// of these prefixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = ["grpc_server_", "order_management_", "process_"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON");
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");

    let (_server, admin) = with_admin(&["--in-memory"]);
    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "a query of no metric of ours: {query}");
        for name in names {
            assert!(
                exported.contains(name.as_str()),
                "the dashboard queries {name}, which /metrics does not export ({query})"
            );
        }
    }

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus.yml");
    let config = std::fs::read_to_string(config).unwrap();
    assert!(config.contains("metrics_path: /metrics"), "{config}");
}
