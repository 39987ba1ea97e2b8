//! `PgStore` against a real PostgreSQL server started by the tests.
//!
//! - `store`: single-replica semantics (insert, update, search, count,
//!   seed, migrations, deadlines).
//! - `replicas`: two `PgStore`s on one database: races and concurrent
//!   updates.
//! - `outage`: the database stopped under load, then restarted.
//! - `commit`: the connection lost during COMMIT (a proxy cuts it).
//! - `cancel`: reads given up by their caller (deadline, shutdown) cancel
//!   their query in the database.
//! - `tls`: each `sslmode` against a TLS-only server.
//! - `cluster`: two server replicas and a client spreading calls over them.
//! - `bench`: `#[ignore]`d throughput and latency figures.

pub mod harness;

mod bench;
mod cancel;
mod cluster;
mod commit;
mod metrics;
mod outage;
mod replicas;
mod store;
mod tls;

use order_management::Order;
use order_management::store::{PgOptions, PgStore};

use harness::Postgres;

/// A fresh database `name` on `pg` and a store on it.
async fn fresh(pg: &Postgres, name: &str) -> (String, PgStore) {
    let url = pg.create_database(name).await;
    let store = PgStore::connect(&url, PgOptions::default())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", pg.log()));
    (url, store)
}

fn order(id: &str, items: &[&str]) -> Order {
    Order {
        id: id.into(),
        items: items.iter().map(|s| s.to_string()).collect(),
        description: format!("order {id}"),
        price: 12.5,
        destination: "Seoul".into(),
    }
}
