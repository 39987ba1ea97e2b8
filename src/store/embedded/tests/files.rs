//! Files: reopening, verify, versions, migration.

use super::*;

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
        let mut table = txn.open_table(POSTINGS).unwrap();
        postings::remove(&mut table, echo, "1").unwrap();
        postings::add(&mut table, xyz, &["2"]).unwrap();
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
            .insert("format_version", FORMAT_VERSION + 1)
            .unwrap();
    });
    let err = RedbStore::open(dir.path()).err().expect("refused");
    let path = dir.path().join(FILE_NAME);
    assert!(err.0.contains(&path.display().to_string()), "{err}");
    assert!(
        err.0.contains(&format!("version {}", FORMAT_VERSION + 1))
            && err.0.contains(&format!("version {FORMAT_VERSION}")),
        "{err}"
    );
    assert!(RedbStore::verify(dir.path()).is_err());
    let db = Database::open(&path).unwrap();
    let found = super::schema::read_version(&db, &path).unwrap();
    assert_eq!(found, Some(FORMAT_VERSION + 1));
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
fn a_format_2_file_is_migrated_to_posting_blocks_in_place_once() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v2/orders.redb");
    std::fs::copy(&fixture, dir.path().join(FILE_NAME)).unwrap();
    let rt = runtime();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated_from(), Some(2));
        rt.block_on(async {
            assert_eq!(store.count().await.unwrap(), 8);
            // Indexed at format 2 (105, 201 as updated, 202) and not yet
            // indexed (301) alike.
            assert_eq!(ids(&search_all(&store, "echo", 10).await), ["105", "301"]);
            assert_eq!(ids(&search_all(&store, "widget v2", 10).await), ["201"]);
            assert!(search_all(&store, "bulk widget,", 10).await.is_empty());
            assert_eq!(ids(&search_all(&store, "ÄRGER", 10).await), ["202"]);
            assert_eq!(ids(&search_all(&store, "İSTANBUL ÇAY", 10).await), ["105"]);
        });
    }
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.format_version, Some(FORMAT_VERSION));
    // format 2's own `server verify` counted 109 postings, 301 unindexed.
    assert_eq!(
        (report.orders, report.postings, report.unindexed),
        (8, 109, 1)
    );
    let db = Database::open(dir.path().join(FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(
        txn.list_tables()
            .unwrap()
            .all(|t| redb::TableHandle::name(&t) != "postings"),
        "format 2's table is gone"
    );
    drop((txn, db));
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

#[test]
fn an_empty_data_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, b"").unwrap();
    let err = RedbStore::open(dir.path()).err().expect("must be refused");
    assert!(err.0.contains("is empty (0 bytes)"), "{err}");
    assert!(err.0.contains(FILE_NAME), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_is_refused_and_its_target_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere.redb");
    std::os::unix::fs::symlink(&target, dir.path().join(FILE_NAME)).unwrap();
    let err = RedbStore::open(dir.path()).err().expect("must be refused");
    assert!(err.0.contains("symbolic link"), "{err}");
    assert!(err.0.contains("elsewhere.redb"), "{err}");
    assert!(!target.exists());
    // A link to an existing store is fine.
    RedbStore::open(&dir.path().join("real")).unwrap();
    std::fs::rename(dir.path().join("real").join(FILE_NAME), &target).unwrap();
    RedbStore::open(dir.path()).unwrap();
}

#[test]
fn a_data_file_deleted_while_open_takes_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let store = RedbStore::open(dir.path()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        store.insert(order("1", &["a"]), None).await.unwrap();
        assert!(store.ready().await.is_ok());
    });
    let aside = dir.path().join("aside.redb");
    std::fs::rename(&path, &aside).unwrap();
    rt.block_on(async {
        for attempt in ["2", "3"] {
            match store.insert(order(attempt, &["b"]), None).await {
                Err(StoreError::Unavailable(why)) => {
                    assert!(why.contains("was deleted"), "{why}");
                    assert!(why.contains(FILE_NAME), "{why}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            store.ready().await,
            Err(StoreError::Unavailable(_))
        ));
        // Reads still answer from the open file.
        assert!(store.get("1").await.unwrap().is_some());
    });
    // Put back (the same file): writes are acknowledged again.
    std::fs::rename(&aside, &path).unwrap();
    rt.block_on(async {
        assert!(store.ready().await.is_ok());
        store.insert(order("4", &["c"]), None).await.unwrap();
    });
    // Replaced by another file: refused again, saying so.
    let other = tempfile::tempdir().unwrap();
    drop(RedbStore::open(other.path()).unwrap());
    std::fs::rename(other.path().join(FILE_NAME), &path).unwrap();
    rt.block_on(async {
        match store.insert(order("5", &["d"]), None).await {
            Err(StoreError::Unavailable(why)) => assert!(why.contains("replaced"), "{why}"),
            other => panic!("{other:?}"),
        }
    });
}
