//! The PostgreSQL backend's metrics: the pool's wait per leased
//! connection, its errors, and the orders counted at a scrape.

use order_management::pb::order_management_client::OrderManagementClient;
use tonic::transport::Endpoint;

use super::harness::Postgres;
use crate::observability::{http_get, with_admin};

fn sample<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_wait_is_measured_and_orders_counted() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("metrics").await;
    let (server, admin) = with_admin(&["--database-url", &url]);
    let channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OrderManagementClient::new(channel);
    for _ in 0..3 {
        client.get_order("101".to_owned()).await.unwrap();
    }
    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let leased: f64 = sample(&text, "order_management_db_pool_wait_seconds_count")
        .parse()
        .unwrap();
    assert!(leased >= 3.0, "one lease per getOrder at least: {leased}");
    assert_eq!(sample(&text, "order_management_db_pool_errors_total"), "0");
    assert_eq!(
        sample(&text, "order_management_store_orders"),
        "1",
        "the seed's 101"
    );
}
