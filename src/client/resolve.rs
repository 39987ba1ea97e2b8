//! Where `--server` points: every address of every server given. A name
//! with several A/AAAA records (a headless Kubernetes service, a DNS
//! round robin over replicas) is several places to connect to, as
//! comma-separated URLs are.

use std::net::SocketAddr;

/// One place to connect to: the server as the user wrote it (its URL
/// stays the request's `:authority` and the name TLS verifies) and one
/// address its host resolves to (none for a `unix:` socket path, which
/// tonic connects to itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub addr: Option<SocketAddr>,
}

/// Resolves each server's host with the system resolver (IP literals as
/// they are), in the order given, each address once. A server that does
/// not resolve is a failure for the report, not the end: the others may.
pub async fn targets(servers: &[&str]) -> (Vec<Target>, Vec<String>) {
    let mut targets = Vec::new();
    let mut failures = Vec::new();
    for server in servers {
        if server.starts_with("unix:") {
            targets.push(Target {
                server: (*server).to_owned(),
                addr: None,
            });
            continue;
        }
        match addresses(server).await {
            Ok(addrs) => {
                for addr in addrs {
                    let target = Target {
                        server: (*server).to_owned(),
                        addr: Some(addr),
                    };
                    if !targets.contains(&target) {
                        targets.push(target);
                    }
                }
            }
            Err(why) => failures.push(format!("{server}: {why}")),
        }
    }
    (targets, failures)
}

/// The targets in the order one new connection tries them: a round robin
/// that starts at `start`, so successive connections begin at successive
/// addresses and a failed one is skipped for the next.
pub fn rotated(targets: &[Target], start: usize) -> impl Iterator<Item = &Target> {
    let n = targets.len();
    (0..n).map(move |k| &targets[(start + k) % n])
}

async fn addresses(server: &str) -> Result<Vec<SocketAddr>, String> {
    let uri: http::Uri = server.parse().map_err(|e| format!("not a URL ({e})"))?;
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    // `[::1]` in a URL is `::1` to the resolver.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(server: &str, addr: &str) -> Target {
        Target {
            server: server.into(),
            addr: Some(addr.parse().unwrap()),
        }
    }

    #[tokio::test]
    async fn literals_resolve_to_themselves_in_the_order_given_each_once() {
        let (targets, failures) = targets(&[
            "http://127.0.0.1:1",
            "http://[::1]:2",
            "http://127.0.0.1:1",
            "https://127.0.0.2",
            "unix:/run/orders.sock",
        ])
        .await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(
            targets,
            [
                target("http://127.0.0.1:1", "127.0.0.1:1"),
                target("http://[::1]:2", "[::1]:2"),
                target("https://127.0.0.2", "127.0.0.2:443"),
                Target {
                    server: "unix:/run/orders.sock".into(),
                    addr: None,
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_name_is_resolved_and_a_bad_one_is_reported_not_fatal() {
        let (targets, failures) =
            targets(&["http://localhost:7", "http://no-such-host.invalid:7"]).await;
        assert!(!targets.is_empty());
        assert!(targets.iter().all(|t| {
            t.addr
                .is_some_and(|a| a.ip().is_loopback() && a.port() == 7)
        }));
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("no-such-host.invalid"), "{failures:?}");
    }

    #[test]
    fn each_connection_starts_one_further_and_tries_them_all() {
        let all = [
            target("a", "10.0.0.1:1"),
            target("a", "10.0.0.2:1"),
            target("b", "10.0.0.3:1"),
        ];
        let order = |start| {
            rotated(&all, start)
                .map(|t| t.addr.unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(0), ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]);
        assert_eq!(order(4), ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.1:1"]);
    }
}
