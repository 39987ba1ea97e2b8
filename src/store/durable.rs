//! Orders on disk in a redb file: ACID, crash-safe, pure Rust.
//!
//! Design: the file is the durable copy and a [`MemoryStore`] is the
//! working copy. Reads are served from memory, so they never wait for the
//! disk and cost the same as with `--in-memory`. Writes are serialized by a
//! mutex, committed to the file with `Durability::Immediate` (fsync before
//! `commit` returns), and only then applied to memory: an acknowledged write
//! is on disk, and a failed commit changes neither copy.
//!
//! Orders are stored as their protobuf encoding keyed by id, so the wire
//! snapshots guard the storage format too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{MemoryStore, OrderStore, ScanPage, StoreError};
use crate::pb::Order;

/// id -> protobuf-encoded `ecommerce.Order`.
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");

/// redb's page cache: enough for the pages a write touches.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The data file's name inside the data directory.
pub const FILE_NAME: &str = "orders.redb";

/// A durable store in `DIR/orders.redb`.
pub struct RedbStore {
    path: PathBuf,
    db: Database,
    memory: MemoryStore,
    /// Keeps the check-then-commit of each write atomic with respect to
    /// other writes, and the memory copy in step with the file.
    writer: Mutex<()>,
}

/// Why the store could not be opened. The message names the file and says
/// what to do; the server prints it and exits non-zero.
#[derive(Debug)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

impl RedbStore {
    /// Opens (creating if needed) the store in `dir`, checks the file's
    /// integrity and loads every order. Fails, naming the file, if another
    /// process has it open, if it is corrupt or unreadable, or if a record
    /// does not decode: it never starts empty over existing data.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            OpenError(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            // Reads are served from memory, so redb's page cache only helps
            // writes; its default (1 GiB) would just grow the process.
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        let memory = load(&db, &path)?;
        Ok(Self {
            path,
            db,
            memory,
            writer: Mutex::new(()),
        })
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many orders are stored.
    pub fn len(&self) -> usize {
        self.memory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty()
    }

    /// Inserts many new orders in one transaction (one disk sync): all of
    /// them, or none if any id is taken. For bulk loads and benchmarks.
    pub fn insert_many(&self, orders: Vec<Order>) -> Result<(), StoreError> {
        let _writer = self.lock_writer()?;
        let mut ids = std::collections::HashSet::new();
        for order in &orders {
            if !ids.insert(order.id.as_str()) || self.memory.get(&order.id)?.is_some() {
                return Err(StoreError::AlreadyExists(order.id.clone()));
            }
        }
        self.commit(&orders)?;
        orders.into_iter().try_for_each(|o| self.memory.insert(o))
    }

    /// Writes `orders` to the file in one transaction and waits for the disk.
    fn commit(&self, orders: &[Order]) -> Result<(), StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Failed(format!("{what} {}: {e}", self.path.display()))
        };
        let txn = self
            .db
            .begin_write()
            .map_err(|e| fail("cannot start a write to", &e))?;
        {
            let mut table = txn
                .open_table(ORDERS)
                .map_err(|e| fail("cannot open the orders table in", &e))?;
            for order in orders {
                table
                    .insert(order.id.as_str(), order.encode_to_vec().as_slice())
                    .map_err(|e| fail("cannot write to", &e))?;
            }
        }
        // Durability::Immediate is redb's default: fsync before commit returns.
        txn.commit().map_err(|e| fail("cannot commit to", &e))
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Failed("writer lock poisoned by an earlier panic".into()))
    }
}

impl OrderStore for RedbStore {
    fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        self.memory.get(id)
    }

    fn scan(
        &self,
        after: Option<&str>,
        max_examined: usize,
        keep: &dyn Fn(&Order) -> bool,
    ) -> Result<ScanPage, StoreError> {
        self.memory.scan(after, max_examined, keep)
    }

    fn insert(&self, order: Order) -> Result<(), StoreError> {
        let _writer = self.lock_writer()?;
        if self.memory.get(&order.id)?.is_some() {
            return Err(StoreError::AlreadyExists(order.id));
        }
        self.commit(std::slice::from_ref(&order))?;
        self.memory.insert(order)
    }

    fn update_all(&self, orders: &[Order]) -> Result<(), StoreError> {
        let _writer = self.lock_writer()?;
        for order in orders {
            if self.memory.get(&order.id)?.is_none() {
                return Err(StoreError::NotFound(order.id.clone()));
            }
        }
        self.commit(orders)?;
        self.memory.update_all(orders)
    }
}

/// Reads every order from the file into memory.
fn load(db: &Database, path: &Path) -> Result<MemoryStore, OpenError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        OpenError(format!("cannot read the data file {}: {e}", path.display()))
    };
    let txn = db.begin_read().map_err(|e| unreadable(&e))?;
    let table = match txn.open_table(ORDERS) {
        Ok(table) => table,
        // A new file: the table appears with the first write.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(MemoryStore::new()),
        Err(e) => return Err(unreadable(&e)),
    };
    let mut orders = Vec::new();
    for entry in table.iter().map_err(|e| unreadable(&e))? {
        let (id, bytes) = entry.map_err(|e| unreadable(&e))?;
        let order = Order::decode(bytes.value()).map_err(|e| {
            OpenError(format!(
                "the data file {} is corrupt: order {:?} does not decode: {e}",
                path.display(),
                id.value()
            ))
        })?;
        if order.id != id.value() {
            return Err(OpenError(format!(
                "the data file {} is corrupt: key {:?} holds order {:?}",
                path.display(),
                id.value(),
                order.id
            )));
        }
        orders.push(order);
    }
    Ok(MemoryStore::with_orders(orders))
}

fn open_error(path: &Path, err: redb::DatabaseError) -> OpenError {
    let path = path.display();
    OpenError(match err {
        redb::DatabaseError::DatabaseAlreadyOpen => format!(
            "the data file {path} is already in use by another process \
             (is another server running on this data directory?)"
        ),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => {
            format!(
                "the data file {path} is corrupt ({why}); restore it from a backup or move it away"
            )
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(e)) => {
            format!("cannot open the data file {path}: {e}")
        }
        other => format!("cannot open the data file {path}: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, item: &str) -> Order {
        Order {
            id: id.into(),
            items: vec![item.into()],
            ..Order::default()
        }
    }

    #[test]
    fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert!(store.is_empty());
            store.insert(order("1", "a")).unwrap();
            store.insert(order("2", "b")).unwrap();
            store.update_all(&[order("1", "a2")]).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("1").unwrap().unwrap().items, ["a2"]);
        assert_eq!(store.get("2").unwrap().unwrap().items, ["b"]);
    }

    #[test]
    fn failed_updates_change_neither_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.insert(order("1", "a")).unwrap();
        let err = store
            .update_all(&[order("1", "x"), order("2", "y")])
            .unwrap_err();
        assert_eq!(err, StoreError::NotFound("2".into()));
        assert_eq!(
            store.insert(order("1", "z")),
            Err(StoreError::AlreadyExists("1".into()))
        );
        drop(store);
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.get("1").unwrap().unwrap().items, ["a"]);
        assert_eq!(store.len(), 1);
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
}
