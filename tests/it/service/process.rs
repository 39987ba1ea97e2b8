//! processOrders on every backend: batches by destination, answers while
//! the client still sends, an unknown id after the shipments already sent.

use super::*;

fn orders_to_ship() -> Vec<Order> {
    (1..=7)
        .map(|i| {
            order(
                &i.to_string(),
                &["item"],
                if i % 2 == 0 { "Busan" } else { "Seoul" },
            )
        })
        .collect()
}

fn shape(shipments: &[CombinedShipment]) -> Vec<String> {
    shipments
        .iter()
        .map(|s| {
            let ids: Vec<&str> = s.orders_list.iter().map(|o| o.id.as_str()).collect();
            format!("{} [{}] {}", s.id, ids.join(","), s.status)
        })
        .collect()
}

async fn process_batches_at_1_3_4_and_7_ids(backend: Backend) {
    let server = server_with!(backend, orders_to_ship(), ServiceConfig::default());
    let mut client = server.connect().await;

    let (s, err) = process(&mut client, &["1"]).await;
    assert!(err.is_none());
    assert_eq!(shape(&s), ["cmb - Seoul [1] Processed!"]);

    let (s, _) = process(&mut client, &["1", "2", "3"]).await;
    assert_eq!(
        shape(&s),
        ["cmb - Seoul [1,3] Processed!", "cmb - Busan [2] Processed!"]
    );

    let (s, _) = process(&mut client, &["1", "2", "3", "4"]).await;
    assert_eq!(
        shape(&s),
        [
            "cmb - Seoul [1,3] Processed!",
            "cmb - Busan [2] Processed!",
            "cmb - Busan [4] Processed!"
        ]
    );

    let (s, err) = process(&mut client, &["1", "2", "3", "4", "5", "6", "7"]).await;
    assert!(err.is_none());
    assert_eq!(
        shape(&s),
        [
            "cmb - Seoul [1,3] Processed!",
            "cmb - Busan [2] Processed!",
            "cmb - Busan [4,6] Processed!",
            "cmb - Seoul [5] Processed!",
            "cmb - Seoul [7] Processed!",
        ]
    );
    let full = &s[0].orders_list[0];
    assert_eq!(full, &orders_to_ship()[0], "shipments carry whole orders");
}

async fn process_batch_size_is_configurable(backend: Backend) {
    let config = ServiceConfig {
        batch_size: 2,
        ..ServiceConfig::default()
    };
    let server = server_with!(backend, orders_to_ship(), config);
    let mut client = server.connect().await;
    let (s, _) = process(&mut client, &["1", "3", "5"]).await;
    assert_eq!(
        shape(&s),
        ["cmb - Seoul [1,3] Processed!", "cmb - Seoul [5] Processed!"]
    );
}

async fn process_unknown_id_ends_with_not_found_after_the_shipments_sent(backend: Backend) {
    let server = server_with!(backend, orders_to_ship(), ServiceConfig::default());
    let mut client = server.connect().await;
    let (s, err) = process(&mut client, &["1", "2", "3", "4", "nope", "5"]).await;
    assert_eq!(
        shape(&s),
        ["cmb - Seoul [1,3] Processed!", "cmb - Busan [2] Processed!"]
    );
    assert_status(&err.expect("a status"), Code::NotFound, "nope");
}

async fn process_with_no_ids_sends_nothing(backend: Backend) {
    let server = seeded_server!(backend);
    let mut client = server.connect().await;
    let (s, err) = process(&mut client, &[]).await;
    assert!(s.is_empty() && err.is_none(), "{s:?} {err:?}");
}

/// Shipments of a full batch arrive while the client's stream is still open:
/// a real bidirectional stream, not collect-then-answer.
async fn process_answers_each_batch_while_the_client_is_still_sending(backend: Backend) {
    let server = server_with!(backend, orders_to_ship(), ServiceConfig::default());
    let mut client = server.connect().await;
    let (tx, rx) = mpsc::channel::<String>(8);
    let mut replies = client
        .process_orders(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for id in ["1", "2", "3"] {
        tx.send(id.into()).await.unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(10), replies.message())
        .await
        .expect("the first batch arrives before the client ends its stream")
        .unwrap()
        .unwrap();
    assert_eq!(first.id, "cmb - Seoul");
    tx.send("4".into()).await.unwrap();
    drop(tx);
    let mut rest = Vec::new();
    while let Some(s) = replies.message().await.unwrap() {
        rest.push(s);
    }
    assert_eq!(
        shape(&rest),
        ["cmb - Busan [2] Processed!", "cmb - Busan [4] Processed!"]
    );
}

for_each_backend!(
    process_batches_at_1_3_4_and_7_ids,
    process_batch_size_is_configurable,
    process_unknown_id_ends_with_not_found_after_the_shipments_sent,
    process_with_no_ids_sends_nothing,
    process_answers_each_batch_while_the_client_is_still_sending,
);
