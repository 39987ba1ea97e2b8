//! The stores' behaviour, deterministic (no timing assertions): group
//! semantics, FIFO, deadlines, dropped callers, failed commits, panics,
//! search against brute force, reopening, verify, migration. (Over 600
//! lines: tests, one area per section.)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend, backends::FileBackend};
use tokio::sync::oneshot;

use super::schema::{META, ORDERS, POSTINGS};
use super::writer::{self, Op, Request, Write, apply_group, process_group};
use super::*;
use super::{RedbOptions, builder};
use crate::pb::Order;
use crate::store::{MemoryStore, OrderStore, StoreError, rule};

fn order(id: &str, items: &[&str]) -> Order {
    Order {
        id: id.into(),
        items: items.iter().map(|s| s.to_string()).collect(),
        description: format!("order {id}"),
        price: 1.5,
        destination: "Seoul".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ids(orders: &[Order]) -> Vec<&str> {
    orders.iter().map(|o| o.id.as_str()).collect()
}

/// Every page of a search, checking the step contract on the way.
async fn search_all(store: &dyn OrderStore, query: &str, budget: usize) -> Vec<Order> {
    let mut found: Vec<Order> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.search(query, after.as_deref(), budget).await.unwrap();
        assert!(
            page.examined <= budget,
            "{query:?}: examined {}",
            page.examined
        );
        for o in &page.orders {
            assert!(
                after.as_deref().is_none_or(|a| o.id.as_str() > a),
                "after the cursor"
            );
            assert!(
                found.last().is_none_or(|l| l.id < o.id),
                "in id order, once"
            );
        }
        found.extend(page.orders);
        match page.next {
            Some(next) => {
                assert!(
                    after.as_deref().is_none_or(|a| next.as_str() > a),
                    "progress"
                );
                if let Some(last) = found.last() {
                    assert!(next >= last.id, "next is past what was returned");
                }
                after = Some(next);
            }
            None => return found,
        }
    }
}

/// The rule, written out independently of `rule`.
fn brute_force<'a>(orders: impl IntoIterator<Item = &'a Order>, query: &str) -> Vec<String> {
    let q = query.to_lowercase();
    let mut out: Vec<String> = orders
        .into_iter()
        .filter(|o| o.items.iter().any(|i| i.to_lowercase().contains(&q)))
        .map(|o| o.id.clone())
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// One group, applied to a write transaction
// ---------------------------------------------------------------------------

fn write(op: Op) -> Write {
    Write { op, deadline: None }
}

fn stored(db: &Database, id: &str) -> Option<Order> {
    use prost::Message;
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(ORDERS).unwrap();
    table
        .get(id)
        .unwrap()
        .map(|b| Order::decode(b.value()).unwrap())
}

fn postings_of(db: &Database, id: &str) -> Vec<String> {
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(POSTINGS).unwrap();
    let mut out: Vec<String> = table
        .iter()
        .unwrap()
        .filter_map(|e| {
            let (key, _) = e.unwrap();
            let (t, i) = key.value();
            (i == id).then(|| rule::trigram_text(t))
        })
        .collect();
    out.sort();
    out
}

fn trigrams_of(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = rule::order_trigrams(&order("x", items))
        .into_iter()
        .map(rule::trigram_text)
        .collect();
    out.sort();
    out
}

/// A fresh format-2 database in `dir`, for applying groups by hand.
fn bare_db(dir: &Path) -> Database {
    let path = dir.join(FILE_NAME);
    let db = builder(&RedbOptions::default()).create(&path).unwrap();
    super::schema::prepare(&db, &path).unwrap();
    db
}

fn apply_and_commit(
    db: &Database,
    writes: &[Write],
    now: Instant,
    unindexed_limit: usize,
) -> Vec<Result<(), StoreError>> {
    let txn = db.begin_write().unwrap();
    let refs: Vec<&Write> = writes.iter().collect();
    let outcomes = apply_group(&txn, &refs, now, unindexed_limit).unwrap();
    txn.commit().unwrap();
    outcomes
}

#[test]
fn a_group_applies_each_write_as_if_alone_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = bare_db(dir.path());
    apply_and_commit(
        &db,
        &[write(Op::Insert(order("1", &["one"])))],
        Instant::now(),
        1,
    );

    let outcomes = apply_and_commit(
        &db,
        &[
            // Two inserts of one id in one group: only the first.
            write(Op::Insert(order("2", &["first"]))),
            write(Op::Insert(order("2", &["second"]))),
            // An update sees the insert before it in its group.
            write(Op::UpdateAll(vec![order("2", &["updated"])])),
            // A failing update leaves nothing of itself.
            write(Op::UpdateAll(vec![
                order("1", &["half"]),
                order("9", &["missing"]),
            ])),
            // ... and does not fail the writes after it.
            write(Op::Insert(order("3", &["three"]))),
            // A bulk insert is all or nothing too.
            write(Op::InsertMany(vec![order("4", &["x"]), order("1", &["y"])])),
            write(Op::InsertMany(vec![order("5", &["x"]), order("5", &["y"])])),
        ],
        Instant::now(),
        1,
    );
    assert_eq!(
        outcomes,
        [
            Ok(()),
            Err(StoreError::AlreadyExists("2".into())),
            Ok(()),
            Err(StoreError::NotFound("9".into())),
            Ok(()),
            Err(StoreError::AlreadyExists("1".into())),
            Err(StoreError::AlreadyExists("5".into())),
        ]
    );
    assert_eq!(stored(&db, "1").unwrap().items, ["one"]);
    assert_eq!(stored(&db, "2").unwrap().items, ["updated"]);
    assert_eq!(stored(&db, "3").unwrap().items, ["three"]);
    assert!(stored(&db, "4").is_none() && stored(&db, "5").is_none());
    // The index follows, in the same transaction.
    assert_eq!(postings_of(&db, "1"), trigrams_of(&["one"]));
    assert_eq!(postings_of(&db, "2"), trigrams_of(&["updated"]));
    assert!(postings_of(&db, "4").is_empty());
}

#[test]
fn a_write_whose_deadline_has_passed_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let db = bare_db(dir.path());
    let now = Instant::now();
    let outcomes = apply_and_commit(
        &db,
        &[
            Write {
                op: Op::Insert(order("1", &["late"])),
                deadline: Some(now),
            },
            Write {
                op: Op::Insert(order("2", &["in time"])),
                deadline: Some(now + Duration::from_secs(60)),
            },
        ],
        now,
        1,
    );
    assert_eq!(outcomes, [Err(StoreError::DeadlineExceeded), Ok(())]);
    assert!(stored(&db, "1").is_none());
    assert!(postings_of(&db, "1").is_empty());
    assert!(stored(&db, "2").is_some());
}

#[test]
fn inserts_wait_to_be_indexed_in_batches_and_stay_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        unindexed_limit: 3,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir.path(), &options).unwrap();
    let db = &store.shared.db;
    let unindexed = || -> Vec<String> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(super::schema::UNINDEXED).unwrap();
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value().to_owned())
            .collect()
    };
    runtime().block_on(async {
        store.insert(order("1", &["Alpha"]), None).await.unwrap();
        store.insert(order("2", &["Beta"]), None).await.unwrap();
        assert_eq!(unindexed(), ["1", "2"]);
        assert!(postings_of(db, "1").is_empty());
        assert_eq!(ids(&search_all(&store, "ALPH", 1).await), ["1"]);
        // An unindexed order updated stays unindexed, searchable as it is now.
        store
            .update_all(vec![order("2", &["Gamma"])], None)
            .await
            .unwrap();
        assert_eq!(unindexed(), ["1", "2"]);
        assert!(search_all(&store, "beta", 2).await.is_empty());
        assert_eq!(ids(&search_all(&store, "gamma", 2).await), ["2"]);

        // The third makes the group index all three.
        store.insert(order("3", &["Alphabet"]), None).await.unwrap();
        assert!(unindexed().is_empty());
        assert_eq!(postings_of(db, "2"), trigrams_of(&["Gamma"]));
        assert_eq!(ids(&search_all(&store, "alpha", 1).await), ["1", "3"]);
        // An indexed order updated changes its postings in place.
        store
            .update_all(vec![order("1", &["Delta"])], None)
            .await
            .unwrap();
        assert!(unindexed().is_empty());
        assert_eq!(postings_of(db, "1"), trigrams_of(&["Delta"]));
        assert_eq!(ids(&search_all(&store, "alpha", 1).await), ["3"]);
        // Mixed: the index's candidates and unindexed ones, in id order.
        store.insert(order("0", &["alpha"]), None).await.unwrap();
        store.insert(order("4", &["ALPHA"]), None).await.unwrap();
        assert_eq!(unindexed(), ["0", "4"]);
        for budget in 1..4 {
            assert_eq!(
                ids(&search_all(&store, "alpha", budget).await),
                ["0", "3", "4"]
            );
        }
    });
    drop(store);
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.orders, report.unindexed), (5, 2));
}

// ---------------------------------------------------------------------------
// The writer, through the store
// ---------------------------------------------------------------------------

#[test]
fn writes_are_applied_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    runtime().block_on(async {
        store.insert(order("1", &["v0"]), None).await.unwrap();
        // join_all polls its futures in order: each queues on first poll.
        let updates =
            (1..=200).map(|v| store.update_all(vec![order("1", &[&format!("v{v}")])], None));
        for outcome in join_all(updates).await {
            outcome.unwrap();
        }
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["v200"]);

        let inserts = (0..100).map(|v| store.insert(order("2", &[&format!("i{v}")]), None));
        let outcomes = join_all(inserts).await;
        assert_eq!(outcomes[0], Ok(()));
        for outcome in &outcomes[1..] {
            assert_eq!(outcome, &Err(StoreError::AlreadyExists("2".into())));
        }
        assert_eq!(store.get("2").await.unwrap().unwrap().items, ["i0"]);
    });
    drop(store);
    let store = RedbStore::open(dir.path()).unwrap();
    runtime().block_on(async {
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["v200"]);
        assert_eq!(store.get("2").await.unwrap().unwrap().items, ["i0"]);
        assert_eq!(store.count().await.unwrap(), 2);
    });
}

#[test]
fn a_passed_deadline_through_the_store_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    runtime().block_on(async {
        let past = Some(Instant::now());
        assert_eq!(
            store.insert(order("1", &["a"]), past).await,
            Err(StoreError::DeadlineExceeded)
        );
        store.insert(order("2", &["b"]), None).await.unwrap();
        assert_eq!(
            store.update_all(vec![order("2", &["c"])], past).await,
            Err(StoreError::DeadlineExceeded)
        );
        assert!(store.get("1").await.unwrap().is_none());
        assert_eq!(store.get("2").await.unwrap().unwrap().items, ["b"]);
    });
}

fn request(op: Op) -> (Request, oneshot::Receiver<Result<(), StoreError>>) {
    let (reply, outcome) = oneshot::channel();
    (
        Request {
            write: write(op),
            reply,
        },
        outcome,
    )
}

#[test]
fn a_caller_gone_before_its_group_starts_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let (gone, outcome) = request(Op::Insert(order("1", &["gone"])));
    drop(outcome); // the caller's future was dropped
    let (stays, mut outcome) = request(Op::Insert(order("2", &["stays"])));
    process_group(
        &store.shared,
        &mut writer::State::default(),
        vec![gone, stays],
    );
    assert_eq!(outcome.try_recv().unwrap(), Ok(()));
    runtime().block_on(async {
        assert!(store.get("1").await.unwrap().is_none());
        assert!(store.get("2").await.unwrap().is_some());
    });
}

#[test]
fn a_panic_while_applying_fails_its_group_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let (a, mut a_out) = request(Op::Insert(order("1", &["a"])));
    let (boom, mut boom_out) = request(Op::Insert(order(writer::tests::PANIC_ID, &["x"])));
    process_group(&store.shared, &mut writer::State::default(), vec![a, boom]);
    for out in [a_out.try_recv().unwrap(), boom_out.try_recv().unwrap()] {
        match out {
            Err(StoreError::Failed(why)) => {
                assert!(why.contains("panicked") && why.contains(FILE_NAME), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    runtime().block_on(async {
        assert!(
            store.get("1").await.unwrap().is_none(),
            "nothing of the group"
        );
        // Through the real writer thread too: it survives and goes on.
        let boom = store
            .insert(order(writer::tests::PANIC_ID, &["x"]), None)
            .await;
        assert!(matches!(boom, Err(StoreError::Failed(_))), "{boom:?}");
        store.insert(order("1", &["a"]), None).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 1);
    });
}

/// redb's file backend, made to fail every write and sync while `fail` is set.
#[derive(Debug)]
struct Faulty {
    inner: FileBackend,
    fail: Arc<AtomicBool>,
}

impl Faulty {
    fn check(&self) -> Result<(), std::io::Error> {
        if self.fail.load(Ordering::SeqCst) {
            Err(std::io::Error::other("injected failure"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }
    fn try_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn unlock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }
}

fn faulty_store(dir: &Path, fail: &Arc<AtomicBool>) -> RedbStore {
    let path = dir.join(FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    let backend = Faulty {
        inner: FileBackend::new(file).unwrap(),
        fail: Arc::clone(fail),
    };
    let options = RedbOptions::default();
    let db = builder(&options).create_with_backend(backend).unwrap();
    RedbStore::from_database(db, path, &options).unwrap()
}

#[test]
fn a_failed_commit_fails_its_whole_group_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let store = faulty_store(dir.path(), &fail);
    let rt = runtime();
    rt.block_on(async {
        store.insert(order("1", &["kept"]), None).await.unwrap();
        // Cached by a read: a failed update must not show through it.
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["kept"]);
    });

    fail.store(true, Ordering::SeqCst);
    let mut state = writer::State::default();
    let (a, mut a_out) = request(Op::Insert(order("2", &["lost"])));
    let (b, mut b_out) = request(Op::UpdateAll(vec![order("1", &["lost"])]));
    let (c, mut c_out) = request(Op::Insert(order("3", &["lost"])));
    process_group(&store.shared, &mut state, vec![a, b, c]);
    for out in [&mut a_out, &mut b_out, &mut c_out] {
        match out.try_recv().unwrap() {
            Err(StoreError::Failed(why)) => {
                assert!(why.contains(&store.path().display().to_string()), "{why}");
                assert!(why.contains("nothing of this group"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
    fail.store(false, Ordering::SeqCst);

    // redb latches the I/O error until the file is reopened: later writes
    // are refused at once, saying so.
    let (d, mut d_out) = request(Op::Insert(order("4", &["later"])));
    process_group(&store.shared, &mut state, vec![d]);
    match d_out.try_recv().unwrap() {
        Err(StoreError::Failed(why)) => {
            assert!(why.contains("restart the server"), "{why}");
            assert!(why.contains(FILE_NAME), "{why}");
        }
        other => panic!("{other:?}"),
    }
    rt.block_on(async {
        // The writer thread's own attempt fails too (redb's latch), clearly.
        match store.insert(order("5", &["later"]), None).await {
            Err(StoreError::Failed(why)) => assert!(why.contains(FILE_NAME), "{why}"),
            other => panic!("{other:?}"),
        }
        // The cache still says what was committed.
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["kept"]);
    });
    drop(store);

    // Reopened: the last commit, nothing of the failed group; writable again.
    let store = RedbStore::open(dir.path()).unwrap();
    rt.block_on(async {
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["kept"]);
        for id in ["2", "3", "4", "5"] {
            assert!(store.get(id).await.unwrap().is_none(), "{id}");
        }
        assert_eq!(
            ids(&search_all(&store, "lost", 10).await),
            Vec::<&str>::new()
        );
        store.insert(order("2", &["works"]), None).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
    });
    drop(store);
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
}

// ---------------------------------------------------------------------------
// Search against brute force
// ---------------------------------------------------------------------------

const ALPHABET: &[char] = &[
    'a', 'b', 'A', 'B', ' ', '-', 'é', 'É', 'ß', 'İ', 'i', 'I', 'ı', 'Σ', 'σ', 'ς', '🦀', 's',
];

fn random_text(rng: &mut fastrand::Rng, max: usize) -> String {
    let len = rng.usize(0..=max);
    (0..len)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
        .collect()
}

fn random_order(rng: &mut fastrand::Rng, id: String) -> Order {
    let items = (0..rng.usize(0..=3)).map(|_| random_text(rng, 8)).collect();
    Order {
        id,
        items,
        ..Order::default()
    }
}

fn random_query(rng: &mut fastrand::Rng, orders: &[Order]) -> String {
    // Half from stored items (so that there are matches), half random.
    if rng.bool() {
        let o = &orders[rng.usize(..orders.len())];
        if let Some(item) = o.items.get(rng.usize(0..=o.items.len().max(1) - 1)) {
            let chars: Vec<char> = item.chars().collect();
            let start = rng.usize(0..=chars.len());
            let len = rng.usize(0..=6.min(chars.len() - start));
            let q: String = chars[start..start + len].iter().collect();
            // Sometimes in another case.
            return if rng.bool() { q.to_uppercase() } else { q };
        }
    }
    random_text(rng, 6)
}

async fn check_searches(
    rng: &mut fastrand::Rng,
    stores: &[&dyn OrderStore],
    orders: &std::collections::BTreeMap<String, Order>,
) {
    let all: Vec<Order> = orders.values().cloned().collect();
    for _ in 0..60 {
        let query = random_query(rng, &all);
        let want = brute_force(orders.values(), &query);
        for store in stores {
            let budget = rng.usize(1..=5);
            let got = search_all(*store, &query, budget).await;
            assert_eq!(ids(&got), want, "query {query:?}, budget {budget}");
            for o in &got {
                assert_eq!(Some(o), orders.get(&o.id));
            }
        }
    }
}

#[test]
fn search_equals_brute_force_on_both_stores() {
    let rt = runtime();
    for seed in 0..4 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut orders: std::collections::BTreeMap<String, Order> = (0..150)
            .map(|i| {
                let id = format!("{:03}", rng.usize(..1000) * 1000 + i);
                (id.clone(), random_order(&mut rng, id))
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryStore::with_orders(orders.values().cloned());
        let options = RedbOptions {
            unindexed_limit: [1, 3, 7, 512][seed as usize],
            ..RedbOptions::default()
        };
        let redb = RedbStore::open_with(dir.path(), &options).unwrap();
        rt.block_on(async {
            redb.insert_many(orders.values().cloned().collect())
                .await
                .unwrap();
            check_searches(&mut rng, &[&memory, &redb], &orders).await;

            // Updates and inserts keep the index exact.
            let keys: Vec<String> = orders.keys().cloned().collect();
            for round in 0..10 {
                let batch: Vec<Order> = (0..rng.usize(1..5))
                    .map(|_| keys[rng.usize(..keys.len())].clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|id| random_order(&mut rng, id))
                    .collect();
                memory.update_all(batch.clone(), None).await.unwrap();
                redb.update_all(batch.clone(), None).await.unwrap();
                let new = random_order(&mut rng, format!("new-{round}"));
                memory.insert(new.clone(), None).await.unwrap();
                redb.insert(new.clone(), None).await.unwrap();
                for o in batch.into_iter().chain([new]) {
                    orders.insert(o.id.clone(), o);
                }
            }
            check_searches(&mut rng, &[&memory, &redb], &orders).await;
        });
        drop(redb);
        let report = RedbStore::verify(dir.path()).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.orders, orders.len() as u64);
    }
}

#[test]
fn a_search_step_is_bounded_and_resumable() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    // The query's trigrams are common but rarely together: the step must
    // stop after its seek budget even when it examined nothing.
    let orders: Vec<Order> = (0..2000)
        .map(|i| {
            let item = match i {
                1999 => "abcd",
                _ if i % 2 == 0 => "abc",
                _ => "bcd",
            };
            order(&format!("{i:05}"), &[item])
        })
        .collect();
    rt.block_on(async {
        store.insert_many(orders).await.unwrap();
        let first = store.search("abcd", None, 1).await.unwrap();
        assert!(first.orders.is_empty() && first.next.is_some(), "{first:?}");
        assert_eq!(first.examined, 0);
        assert_eq!(ids(&search_all(&store, "ABCd", 1).await), ["01999"]);
        assert_eq!(ids(&search_all(&store, "d", 7).await).len(), 1000);
    });
}

// ---------------------------------------------------------------------------
// Files: reopening, verify, versions, migration
// ---------------------------------------------------------------------------

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated_from(), None);
        rt.block_on(async {
            assert_eq!(store.count().await.unwrap(), 0);
            store.insert(order("1", &["Alpha"]), None).await.unwrap();
            store.insert(order("2", &["Beta"]), None).await.unwrap();
            store
                .update_all(vec![order("1", &["Gamma"])], None)
                .await
                .unwrap();
        });
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.migrated_from(), None);
    rt.block_on(async {
        assert_eq!(store.count().await.unwrap(), 2);
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["Gamma"]);
        assert_eq!(ids(&search_all(&store, "gamm", 10).await), ["1"]);
        assert!(search_all(&store, "alpha", 10).await.is_empty());
        assert_eq!(ids(&search_all(&store, "eta", 10).await), ["2"]);
    });
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RedbStore::open(dir.path()).unwrap();
    let err = RedbStore::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(err.0.contains("already in use"), "{err}");
    assert!(err.0.contains(FILE_NAME), "{err}");
}

/// Changes the file behind the store's back, as a bug or an editor might.
fn tamper(dir: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = Database::create(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

#[test]
fn verify_finds_a_missing_and_an_extra_posting() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .insert_many_blocking(vec![order("1", &["Echo"]), order("2", &["Dot"])])
            .unwrap();
    }
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.orders, report.postings), (2, 2 + 1));

    let echo = rule::text_trigrams("cho").next().unwrap();
    let xyz = rule::text_trigrams("xyz").next().unwrap();
    tamper(dir.path(), |txn| {
        let mut postings = txn.open_table(POSTINGS).unwrap();
        postings.remove((echo, "1")).unwrap();
        postings.insert((xyz, "2"), ()).unwrap();
    });
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.problem_count, 2, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("\"1\" is missing from the index under \"cho\""),
        "{text}"
    );
    assert!(text.contains("lists order \"2\" under \"xyz\""), "{text}");
}

#[test]
fn verify_finds_a_record_that_does_not_decode_or_is_misfiled() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    tamper(dir.path(), |txn| {
        use prost::Message;
        let mut orders = txn.open_table(ORDERS).unwrap();
        orders.insert("bad", &[0x0a, 100, b'h'][..]).unwrap();
        orders
            .insert("key", order("other", &[]).encode_to_vec().as_slice())
            .unwrap();
    });
    let report = RedbStore::verify(dir.path()).unwrap();
    assert_eq!(report.problem_count, 2, "{report}");
    let text = report.to_string();
    assert!(text.contains("\"bad\" does not decode"), "{text}");
    assert!(text.contains("key \"key\" holds order \"other\""), "{text}");
}

#[test]
fn a_file_of_a_newer_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    tamper(dir.path(), |txn| {
        txn.open_table(META)
            .unwrap()
            .insert("format_version", 3)
            .unwrap();
    });
    let err = RedbStore::open(dir.path()).err().expect("refused");
    let path = dir.path().join(FILE_NAME);
    assert!(err.0.contains(&path.display().to_string()), "{err}");
    assert!(
        err.0.contains("version 3") && err.0.contains("version 2"),
        "{err}"
    );
    assert!(RedbStore::verify(dir.path()).is_err());
    let db = Database::open(&path).unwrap();
    let found = super::schema::read_version(&db, &path).unwrap();
    assert_eq!(found, Some(3));
}

#[test]
fn a_format_1_file_is_migrated_in_place_once() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/orders.redb");
    std::fs::copy(&fixture, dir.path().join(FILE_NAME)).unwrap();
    let rt = runtime();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated_from(), Some(1));
        rt.block_on(async {
            assert_eq!(store.count().await.unwrap(), 5);
            for id in ["101", "102", "103", "104", "105"] {
                assert!(store.get(id).await.unwrap().is_some(), "{id}");
            }
            let o105 = store.get("105").await.unwrap().unwrap();
            assert_eq!(o105.items, ["Amazon Echo", "İstanbul Çay"]);
            // Through the index (3+ chars), non-ASCII included.
            assert_eq!(ids(&search_all(&store, "ECHO", 10).await), ["105"]);
            assert_eq!(
                ids(&search_all(&store, "istanbul çay", 10).await),
                Vec::<&str>::new()
            );
            assert_eq!(ids(&search_all(&store, "İSTANBUL ÇAY", 10).await), ["105"]);
            assert_eq!(ids(&search_all(&store, "item - a", 10).await), ["101"]);
        });
    }
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.format_version, Some(FORMAT_VERSION));
    assert_eq!(report.orders, 5);
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.migrated_from(), None, "migrated once");
}

#[test]
fn a_format_1_file_with_a_bad_record_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ORDERS)
            .unwrap()
            .insert("bad", &[0x0a, 100][..])
            .unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(dir.path()).err().expect("refused");
    assert!(
        err.0.contains("\"bad\"") && err.0.contains("corrupt"),
        "{err}"
    );
    let db = Database::open(&path).unwrap();
    assert_eq!(super::schema::read_version(&db, &path).unwrap(), Some(1));
}
