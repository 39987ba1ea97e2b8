//! The write-ahead log through the store: what a crash leaves on disk is
//! enough, and a clean stop leaves nothing to replay.

use super::*;
use crate::store::embedded::wal;

/// The files of a running store as they are on disk at this instant (as a
/// crash would leave them; the writer is idle once its calls are answered).
fn crash_copy(from: &Path, with_log: bool) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    let data = from.join(FILE_NAME);
    std::fs::copy(&data, to.path().join(FILE_NAME)).unwrap();
    if with_log {
        let log = wal::path_for(&data);
        std::fs::copy(&log, wal::path_for(&to.path().join(FILE_NAME))).unwrap();
    }
    to
}

#[test]
fn acknowledged_writes_between_checkpoints_come_back_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint after the first: every group below is in the log only.
    let options = RedbOptions {
        checkpoint_every: Duration::from_secs(3600),
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir.path(), &options).unwrap();
    let rt = runtime();
    rt.block_on(async {
        for n in 0..50 {
            store
                .insert(order(&format!("o{n:02}"), &["Kimchi jar"]), None)
                .await
                .unwrap();
        }
        store
            .update_all(vec![order("o07", &["Echo Dot"])], None)
            .await
            .unwrap();
        let taken = store.insert(order("o01", &["again"]), None).await;
        assert!(
            matches!(taken, Err(StoreError::AlreadyExists(_))),
            "{taken:?}"
        );
    });

    // The data file alone holds none of them: the log is what kept them.
    let without_log = crash_copy(dir.path(), false);
    let bare = RedbStore::open(without_log.path()).unwrap();
    rt.block_on(async { assert_eq!(bare.count().await.unwrap(), 0) });
    drop(bare);

    let crashed = crash_copy(dir.path(), true);
    let recovered = RedbStore::open(crashed.path()).unwrap();
    rt.block_on(async {
        assert_eq!(recovered.count().await.unwrap(), 50);
        let o07 = recovered.get("o07").await.unwrap().unwrap();
        assert_eq!(o07.items, ["Echo Dot"], "the update, after its insert");
        assert_eq!(
            recovered.get("o01").await.unwrap().unwrap().items,
            ["Kimchi jar"]
        );
        assert_eq!(ids(&search_all(&recovered, "echo", 10).await), ["o07"]);
        assert_eq!(search_all(&recovered, "kimchi", 100).await.len(), 49);
        // And it goes on: new writes after the replayed ones.
        recovered
            .insert(order("o50", &["after"]), None)
            .await
            .unwrap();
    });
    drop(recovered);
    let report = RedbStore::verify(crashed.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.orders, 51);
    drop(store);
}

#[test]
fn a_clean_stop_checkpoints_so_nothing_is_left_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        checkpoint_every: Duration::from_secs(3600),
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(dir.path(), &options).unwrap();
    runtime().block_on(async {
        for n in 0..5 {
            store
                .insert(order(&n.to_string(), &["x"]), None)
                .await
                .unwrap();
        }
    });
    drop(store);
    let path = dir.path().join(FILE_NAME);
    let db = Database::open(&path).unwrap();
    let lsn = super::super::schema::read_lsn(&db.begin_read().unwrap()).unwrap();
    assert!(lsn >= 5, "every group had its lsn: {lsn}");
    assert!(wal::tail(&wal::path_for(&path), lsn).unwrap().is_empty());
    // The data file alone has them all.
    drop(db);
    let copy = crash_copy(dir.path(), false);
    let store = RedbStore::open(copy.path()).unwrap();
    runtime().block_on(async { assert_eq!(store.count().await.unwrap(), 5) });
}
