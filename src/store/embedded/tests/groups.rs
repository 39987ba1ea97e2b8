//! One group, applied to a write transaction.

use super::*;

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
    let db_guard = store.shared.file.db().unwrap();
    let db: &Database = &db_guard;
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
    drop(db_guard);
    drop(store);
    let report = RedbStore::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.orders, report.unindexed), (5, 2));
}
