//! Health (grpc.health.v1): SERVING from the first served call, NOT_SERVING
//! as soon as shutdown begins; the client's `health` command.

use std::sync::Arc;

use crate::support::{run_client, stderr, stdout};
use clap::Parser as _;
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::seed;
use order_management::server::{Config, Running};
use order_management::store::MemoryStore;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::harness::{Prod, SERVICE, connect, health_check, next_health};

#[tokio::test]
async fn health_is_serving_for_the_server_and_the_service() {
    let server = Prod::start(&[]);
    let channel = server.channel().await;
    for service in ["", SERVICE] {
        assert_eq!(
            health_check(channel.clone(), service).await.unwrap(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = health_check(channel, "no.such.Service").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

/// From the moment the server answers order calls, health must say
/// SERVING for the service, not "unknown service". Regression: `start` used
/// to serve before `until` registered the statuses, so a probe right after
/// "listening on" could get NOT_FOUND (about 1 start in 30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_as_soon_as_calls_are_served() {
    let config = Config::try_parse_from(["server", "--listen", "127.0.0.1:0"]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(MemoryStore::with_orders([seed::order_101()]));
    let running = Running::start(&config, store, listener).await.unwrap();

    let channel = connect(&format!("http://{addr}")).await;
    let mut client = OrderManagementClient::new(channel.clone());
    client
        .get_order("101".to_owned())
        .await
        .expect("serving calls");
    let status = health_check(channel, SERVICE).await;
    assert_eq!(
        status.as_ref().map_err(Status::code),
        Ok(&ServingStatus::Serving),
        "{status:?}"
    );
    drop(running);
}

#[test]
fn client_health_prints_serving_and_exits_0() {
    let server = Prod::start(&[]);
    for args in [&["health"][..], &["health", SERVICE]] {
        let out = run_client(&server.url(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "SERVING\n", "{args:?}");
    }
    let out = run_client(&server.url(), &["health", "no.such.Service"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// (d) An existing connection sees NOT_SERVING as soon as shutdown begins,
/// while the grace period is still running (the watch itself is a call in
/// flight, so the server is still in its grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_not_serving_as_soon_as_shutdown_begins() {
    let mut server = Prod::start(&["--shutdown-grace", "60"]);
    let channel = server.channel().await;
    let mut watches = Vec::new();
    for service in ["", SERVICE] {
        let mut watch = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next_health(&mut watch).await, ServingStatus::Serving);
        watches.push(watch);
    }

    server.shutdown();
    for watch in &mut watches {
        assert_eq!(next_health(watch).await, ServingStatus::NotServing);
    }
    // Still within the grace period: `until` has not returned.
    assert!(
        server.result.try_recv().is_err(),
        "the server stopped while calls were in flight"
    );

    drop(watches);
    assert_eq!(server.stopped(), Ok(()));
}

/// Overload has its own health entry (`ecommerce.OrderManagement.capacity`):
/// NOT_SERVING after a few seconds with every call slot taken, SERVING
/// again a few seconds after they free up; the main entries stay SERVING
/// all along (a balancer must not pull every busy replica at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_overload_on_its_own_entry_with_hysteresis() {
    use super::harness::{bounded, drain, open_process};
    const CAPACITY: &str = "ecommerce.OrderManagement.capacity";
    let server = Prod::start(&["--max-concurrent-calls", "2"]);
    let channel = connect(&server.url()).await;
    let mut client = OrderManagementClient::new(channel.clone());
    assert_eq!(
        health_check(channel.clone(), CAPACITY).await.unwrap(),
        ServingStatus::Serving
    );

    let (tx1, mut held1) = open_process(&mut client).await;
    let (tx2, mut held2) = open_process(&mut client).await;
    let refused = client.get_order("101".to_owned()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let status = |name: &'static str| health_check(channel.clone(), name);
    bounded("capacity NOT_SERVING", async {
        while status(CAPACITY).await.unwrap() != ServingStatus::NotServing {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    for name in ["", SERVICE] {
        assert_eq!(
            status(name).await.unwrap(),
            ServingStatus::Serving,
            "{name:?}"
        );
    }

    drop((tx1, tx2));
    drain(&mut held1).await.1.unwrap();
    drain(&mut held2).await.1.unwrap();
    bounded("capacity SERVING again", async {
        while status(CAPACITY).await.unwrap() != ServingStatus::Serving {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    client.get_order("101".to_owned()).await.unwrap();
}
