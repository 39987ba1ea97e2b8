//! The writer, through the store.

use super::*;

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

    // redb latched the I/O error; the next write reopens the file first
    // (redb recovers it to its last commit) and goes through, without a
    // restart. (The reopened handle is a plain file: no more injected faults.)
    rt.block_on(async {
        store.insert(order("4", &["later"]), None).await.unwrap();
        assert!(store.ready().await.is_ok());
        // The cache still says what was committed, and so does the file.
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["kept"]);
        assert!(store.get("2").await.unwrap().is_none());
    });
    drop(store);

    // Reopened: the last commit, nothing of the failed group; writable again.
    let store = RedbStore::open(dir.path()).unwrap();
    rt.block_on(async {
        assert_eq!(store.get("1").await.unwrap().unwrap().items, ["kept"]);
        for id in ["2", "3"] {
            assert!(store.get(id).await.unwrap().is_none(), "{id}");
        }
        assert!(store.get("4").await.unwrap().is_some());
        assert_eq!(
            ids(&search_all(&store, "lost", 10).await),
            Vec::<&str>::new()
        );
        store.insert(order("2", &["works"]), None).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
    });
    drop(store);
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
}
