//! Reads that the caller gave up on do not keep running in the database:
//! a read whose deadline passed, and a read still blocked when the
//! server's shutdown grace ends, both cancel their query.
//!
//! Another session holds `LOCK TABLE orders IN ACCESS EXCLUSIVE MODE`, so
//! every read of ours waits on that lock in PostgreSQL; the observer
//! counts our sessions waiting on a lock. A backend waiting on a lock
//! never notices that its client went away, so without a cancel request
//! the count would stay up until the lock holder lets go.

use std::time::{Duration, Instant};

use order_management::store::OrderStore;

use super::harness::Postgres;
use super::store::waiting_on_locks;
use super::{fresh, order};
use crate::support::process::ServerProcess;
use crate::support::raw;

/// Polls (bounded) until none of our sessions waits on a lock.
async fn until_no_waiter(observer: &tokio_postgres::Client, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting_on_locks(observer).await > 0 {
        assert!(
            Instant::now() < deadline,
            "{what}: our query still waits in the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls (bounded) until `n` of our sessions wait on a lock.
async fn until_waiters(observer: &tokio_postgres::Client, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting_on_locks(observer).await < n {
        assert!(Instant::now() < deadline, "our read never reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lock_orders(pg: &Postgres, db: &str) -> tokio_postgres::Client {
    let holder = pg.connect(db).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_given_up_by_its_caller_cancels_its_query() {
    let Some(pg) = Postgres::start() else { return };
    let (_, store) = fresh(&pg, "read_cancel").await;
    store.insert(order("a", &["pixel"]), None).await.unwrap();
    let observer = pg.connect("read_cancel").await;
    let holder = lock_orders(&pg, "read_cancel").await;

    // The service drops a call's future when its deadline passes; a read
    // dropped mid-query must cancel it.
    let get = tokio::time::timeout(Duration::from_millis(300), store.get("a")).await;
    assert!(
        get.is_err(),
        "the read should be blocked by the lock: {get:?}"
    );
    until_no_waiter(&observer, "getOrder").await;

    let search =
        tokio::time::timeout(Duration::from_millis(300), store.search("pix", None, 10)).await;
    assert!(search.is_err(), "the search should be blocked: {search:?}");
    until_no_waiter(&observer, "searchOrders").await;

    // The cancelled connections were not returned to the pool: the store
    // still answers once the lock is gone.
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().items, ["pixel"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_deadline_exceeded_and_shutdown_cancels_blocked_reads() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("shutdown_cancel").await;
    let mut server = ServerProcess::start(&["--database-url", &url, "--shutdown-grace", "0.5"])
        .expect("the server starts");
    let addr = server.addr();
    let observer = pg.connect("shutdown_cancel").await;
    let holder = lock_orders(&pg, "shutdown_cancel").await;
    let get_101 = raw::frame(&[0x0a, 3, b'1', b'0', b'1']);
    let path = "/ecommerce.OrderManagement/getOrder";

    // A read with a deadline: DEADLINE_EXCEEDED from the server, and the
    // query it left in the database is cancelled.
    let request = raw::grpc_request(addr, path, &[("grpc-timeout", "300m")]);
    let answer = raw::call(addr, request, &get_101, true).await.unwrap();
    assert_eq!(answer.grpc_status(), Some(4), "{answer:?}");
    until_no_waiter(&observer, "a getOrder past its deadline").await;

    // A read without a deadline, still blocked when the grace ends.
    let request = raw::grpc_request(addr, path, &[]);
    let call = tokio::spawn(async move { raw::call(addr, request, &get_101, true).await });
    until_waiters(&observer, 1).await;
    server.signal("TERM");
    let status = tokio::task::spawn_blocking(move || (server.wait_exit(), server))
        .await
        .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.grpc_status(), Some(14), "{answer:?}");
    // The process is gone; its query must be too.
    until_no_waiter(&observer, "a getOrder at shutdown").await;
    holder.batch_execute("ROLLBACK").await.unwrap();
}
