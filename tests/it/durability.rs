//! The durable store through the real server binary: orders survive a
//! restart and a SIGKILL right after the reply, updateOrders stays
//! all-or-nothing across a crash, and a store that cannot be used safely
//! stops the server at start with a message naming the file.

// Multi-thread runtimes: the tests block on child processes while the
// client connections still need a worker to answer the server.

use std::path::Path;
use std::time::Duration;

use crate::support::process::ServerProcess;
use order_management::pb::order_management_client::OrderManagementClient;
use order_management::{Order, seed};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

type Client = OrderManagementClient<Channel>;

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start(&["--data-dir", dir.to_str().unwrap()]).expect("server starts")
}

async fn connect(server: &ServerProcess) -> Client {
    OrderManagementClient::connect(server.url.clone())
        .await
        .unwrap()
}

fn order(id: &str, item: &str) -> Order {
    Order {
        id: id.into(),
        items: vec![item.into()],
        description: "durability test".into(),
        price: 1.5,
        destination: "Seoul".into(),
    }
}

async fn get(client: &mut Client, id: &str) -> Order {
    client.get_order(id.to_owned()).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut client = connect(&server).await;
    client.add_order(order("102", "a")).await.unwrap();
    let generated = client.add_order(order("", "b")).await.unwrap().into_inner();
    let changed = Order {
        items: vec!["Item - C".into()],
        ..seed::order_101()
    };
    client
        .update_orders(tokio_stream::iter(vec![changed.clone()]))
        .await
        .unwrap();
    drop(client);
    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));

    let server = start(dir.path());
    let mut client = connect(&server).await;
    assert_eq!(get(&mut client, "101").await, changed);
    assert_eq!(get(&mut client, "102").await, order("102", "a"));
    assert_eq!(get(&mut client, &generated).await.items, ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = connect(&server).await;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let o = order(&format!("k{i:02}"), &format!("v{i}"));
        client.add_order(o.clone()).await.unwrap();
        acknowledged.push(o);
    }
    let updated: Vec<Order> = acknowledged[..5]
        .iter()
        .map(|o| order(&o.id, "updated"))
        .collect();
    client
        .update_orders(tokio_stream::iter(updated.clone()))
        .await
        .unwrap();
    acknowledged[..5].clone_from_slice(&updated);
    server.kill9(); // right after the last reply

    let server = start(dir.path());
    let mut client = connect(&server).await;
    for o in &acknowledged {
        assert_eq!(&get(&mut client, &o.id).await, o);
    }
}

const GROUP: usize = 30;

fn generation(g: u32) -> Vec<Order> {
    (0..GROUP)
        .map(|i| order(&format!("g{i:02}"), &format!("gen-{g}")))
        .collect()
}

/// Every order of the group carries the same generation: no update was
/// half-applied. Returns it.
async fn consistent_generation(client: &mut Client) -> u32 {
    let mut seen = Vec::new();
    for i in 0..GROUP {
        let o = get(client, &format!("g{i:02}")).await;
        seen.push(
            o.items[0]
                .trim_start_matches("gen-")
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert!(
        seen.iter().all(|g| *g == seen[0]),
        "half-applied update: {seen:?}"
    );
    seen[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_stay_all_or_nothing_when_the_server_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = connect(&server).await;
    for o in generation(0) {
        client.add_order(o).await.unwrap();
    }

    // 1. Killed while a call's stream is half sent: nothing of it applies.
    let (tx, rx) = mpsc::channel(GROUP);
    let call = tokio::spawn({
        let mut client = client.clone();
        async move { client.update_orders(ReceiverStream::new(rx)).await }
    });
    for o in generation(1).into_iter().take(GROUP / 2) {
        tx.send(o).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill9();
    assert!(
        call.await.unwrap().is_err(),
        "the call cannot have succeeded"
    );
    drop(tx);

    let mut server = start(dir.path());
    let mut client = connect(&server).await;
    assert_eq!(consistent_generation(&mut client).await, 0);

    // 2. Killed at arbitrary moments of back-to-back update calls: after each
    // restart, the group is at the last acknowledged generation or the one
    // in flight, never a mix.
    let mut next = 1;
    for round in 0..3u64 {
        let writer = tokio::spawn({
            let mut client = client.clone();
            async move {
                let mut acked = None;
                for g in next.. {
                    match client
                        .update_orders(tokio_stream::iter(generation(g)))
                        .await
                    {
                        Ok(_) => acked = Some(g),
                        Err(_) => return acked,
                    }
                }
                unreachable!()
            }
        });
        tokio::time::sleep(Duration::from_millis(150 + 170 * round)).await;
        server.kill9();
        let acked = writer
            .await
            .unwrap()
            .expect("some updates were acknowledged before the kill");

        server = start(dir.path());
        client = connect(&server).await;
        let g = consistent_generation(&mut client).await;
        assert!(
            g == acked || g == acked + 1,
            "acknowledged {acked}, found {g}"
        );
        next = g + 1;
    }
}

fn start_error(args: &[&str]) -> String {
    match ServerProcess::start(args) {
        Ok(_) => panic!("the server started with {args:?}"),
        Err((status, log)) => {
            assert_eq!(status.code(), Some(1), "{log}");
            log
        }
    }
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path());
    let log = start_error(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(log.contains("already in use"), "{log}");
    assert!(log.contains("orders.redb"), "{log}");
}

#[test]
fn a_garbage_data_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.redb");
    std::fs::write(&file, vec![0xAB; 64 * 1024]).unwrap();
    let log = start_error(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(log.contains(file.to_str().unwrap()), "{log}");
    // And the file is left as it was for the operator to inspect.
    assert_eq!(std::fs::read(&file).unwrap(), vec![0xAB; 64 * 1024]);
}

/// An empty file is not taken for a new store (nor seeded), and a dangling
/// link does not create its target.
#[test]
fn an_empty_data_file_and_a_dangling_link_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.redb");
    std::fs::write(&file, b"").unwrap();
    let log = start_error(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(
        log.contains(file.to_str().unwrap()) && log.contains("empty"),
        "{log}"
    );
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);

    std::fs::remove_file(&file).unwrap();
    let target = dir.path().join("moved-away.redb");
    std::os::unix::fs::symlink(&target, &file).unwrap();
    let log = start_error(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(
        log.contains("symbolic link") && log.contains("moved-away.redb"),
        "{log}"
    );
    assert!(!target.exists());
}

#[test]
fn a_record_that_does_not_decode_is_refused_naming_the_file_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.redb");
    {
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("orders");
            let mut table = txn.open_table(table).unwrap();
            // Field 1 says 100 bytes follow; 2 do.
            table.insert("bad", &[0x0a, 100, b'h', b'i'][..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let log = start_error(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(
        log.contains(file.to_str().unwrap()) && log.contains("\"bad\""),
        "{log}"
    );
    assert!(log.contains("corrupt"), "{log}");
}

#[test]
fn an_unwritable_data_directory_is_a_clear_error() {
    // Root ignores permission bits, so as root use a directory no one can
    // create files in: sysfs. Otherwise a directory made read-only.
    let tmp = tempfile::tempdir().unwrap();
    let dir = if is_root() {
        std::path::PathBuf::from("/sys/kernel")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        tmp.path().to_owned()
    };
    let log = start_error(&["--data-dir", dir.to_str().unwrap()]);
    assert!(
        log.contains(&format!("{}/orders.redb", dir.display())),
        "{log}"
    );
    assert!(log.contains("cannot open the data file"), "{log}");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn the_server_logs_where_its_data_is_and_seeds_only_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.redb");
    let mut server = start(dir.path());
    assert!(
        server.startup.contains(&format!(
            "orders are stored in {} (0 orders)",
            file.display()
        )),
        "{}",
        server.startup
    );
    assert!(
        server.startup.contains("inserted the seed's order 101"),
        "{}",
        server.startup
    );
    server.signal("TERM");
    server.wait_exit();

    let server = start(dir.path());
    assert!(server.startup.contains("(1 order)"), "{}", server.startup);
    assert!(
        !server.startup.contains("inserted the seed"),
        "{}",
        server.startup
    );
}

/// Group commit under concurrent load, killed at random moments: 16
/// concurrent writers add orders (each write lands in a group with the
/// others waiting), the server is killed with SIGKILL at a random moment,
/// restarted on the same file, and every acknowledged order is there, and
/// `server verify` finds the file and its index sound. Six rounds.
/// (updateOrders' all-or-nothing across kills: the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_keeps_every_acknowledged_write_across_random_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(14);
    let mut acknowledged: Vec<Order> = Vec::new();
    for round in 0..6 {
        let server = start(dir.path());
        let client = connect(&server).await;
        // Everything acknowledged so far survived the last kill.
        let mut check = client.clone();
        for o in &acknowledged {
            assert_eq!(&get(&mut check, &o.id).await, o, "round {round}");
        }
        let (acks, mut acked) = mpsc::unbounded_channel::<Order>();
        let mut writers = Vec::new();
        for w in 0..16 {
            let mut client = client.clone();
            let acks = acks.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let o = order(&format!("r{round}-w{w:02}-{i:04}"), "concurrent");
                    match client.add_order(o.clone()).await {
                        Ok(_) => {
                            if acks.send(o).is_err() {
                                return;
                            }
                        }
                        Err(_) => return, // the server is gone
                    }
                }
            }));
        }
        drop(acks);
        // The kill comes at a random moment after the first acknowledgement
        // (not after a fixed time: a loaded machine may need longer for one).
        let first = tokio::time::timeout(Duration::from_secs(60), acked.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no write acknowledged within 60 s"))
            .expect("the writers hold the sender");
        acknowledged.push(first);
        tokio::time::sleep(Duration::from_millis(rng.u64(0..400))).await;
        server.kill9();
        for writer in writers {
            let _ = writer.await;
        }
        while let Some(o) = acked.recv().await {
            acknowledged.push(o);
        }
    }
    let server = start(dir.path());
    let mut client = connect(&server).await;
    for o in &acknowledged {
        assert_eq!(&get(&mut client, &o.id).await, o);
    }
    drop(server);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify after the kills:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
