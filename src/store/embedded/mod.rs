//! Orders on disk in a redb file: ACID, crash-safe, pure Rust; the store's
//! cost grows with the work asked of it, not with the number of orders.
//!
//! - **Opening** reads the file's header and its format version and
//!   nothing else: no scan, no load, no full integrity check (redb's own
//!   crash recovery still runs after an unclean shutdown). A file from an
//!   older format is migrated in place (see `schema`); a newer one is
//!   refused. [`RedbStore::verify`] is the full check, run on demand.
//! - **Reads** go to the file through redb's bounded page cache
//!   ([`RedbOptions::page_cache_bytes`]). `get` is answered *inline* from
//!   a small cache of decoded orders (`cache`) on a hit: a lookup and a
//!   clone, as cheap as the old in-memory copy, so getOrder keeps its
//!   throughput. A miss, every `search` step and `count` run on tokio's
//!   blocking pool, since any of them may wait for the disk and the
//!   runtime's threads must never do that.
//! - **Writes** go to one writer thread (see `writer`), which commits
//!   everything waiting in one transaction and one disk sync (group
//!   commit), keeps the trigram index exact in that same transaction (an
//!   inserted order is listed as not yet indexed, and indexed with others
//!   in a later group: see `schema`), updates the decoded-order cache, and
//!   only then acknowledges: an acknowledged write is on disk.
//!
//! Orders are stored as their protobuf encoding keyed by id, so the wire
//! snapshots guard the storage format too.

mod cache;
mod file_guard;
mod postings;
mod schema;
mod search;
#[cfg(test)]
mod tests;
mod verify;
mod wal;
mod writer;

pub use self::schema::FORMAT_VERSION;
pub use self::verify::VerifyReport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use self::cache::OrderCache;
use self::file_guard::DataFile;
use self::schema::ORDERS;
use self::writer::{Op, Write, Writer};
use super::{OrderStore, SearchPage, StoreError};
use crate::pb::Order;

/// The data file's name inside the data directory.
pub const FILE_NAME: &str = "orders.redb";

/// Tunables of a [`RedbStore`].
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// redb's page cache, shared by reads and writes.
    pub page_cache_bytes: usize,
    /// The cache of decoded orders that getOrder hits are served from
    /// (0 turns it off).
    pub order_cache_bytes: usize,
    /// How many inserted orders may wait to be indexed (each search
    /// checks them all; see `schema`): at this many, the next group of
    /// writes indexes them together. Larger batches share more posting
    /// blocks per rewrite (measured at 10x10 addOrder with 100 id
    /// sequences: 13.6k calls/s at 512, 19.5k at 2048, 22.1k at 4096),
    /// but each search pays ~0.7 us per waiting order and the group that
    /// indexes stalls longer (p99 30 ms at 512, 38 at 2048, 44 at 4096).
    pub unindexed_limit: usize,
    /// How long groups of writes may be durable in the write-ahead log
    /// only (see `wal`) before a checkpoint writes them into the data file:
    /// what a restart after a crash replays at most. Zero: no log, every
    /// group is a durable redb commit of its own.
    pub checkpoint_every: Duration,
}

impl RedbOptions {
    /// The default page cache, in MiB (`--page-cache-mb`).
    pub const DEFAULT_PAGE_CACHE_MB: usize = 32;
    /// The default cache of decoded orders, in MiB (`--order-cache-mb`).
    pub const DEFAULT_ORDER_CACHE_MB: usize = 4;
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            page_cache_bytes: Self::DEFAULT_PAGE_CACHE_MB << 20,
            order_cache_bytes: Self::DEFAULT_ORDER_CACHE_MB << 20,
            unindexed_limit: 2048,
            checkpoint_every: Duration::from_secs(1),
        }
    }
}

/// A durable store in `DIR/orders.redb`.
pub struct RedbStore {
    shared: Arc<Shared>,
    writer: Writer,
    /// The format the file was migrated from when this open migrated it.
    migrated_from: Option<u64>,
}

/// What the store's handle, its blocking reads and its writer share.
struct Shared {
    /// The open database; why writes are refused, if they are.
    file: DataFile,
    path: PathBuf,
    cache: OrderCache,
    unindexed_limit: usize,
    /// How often the writer checkpoints (zero: every group is a durable
    /// commit of its own, and there is no write-ahead log).
    checkpoint_every: Duration,
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
    /// Opens (creating if needed) the store in `dir` with the default
    /// options. Fails, naming the file, if another process has it open, if
    /// its header is corrupt or it is unreadable, if it is of a newer
    /// format, or if migrating an older format fails (the file is then left
    /// as it was): it never starts empty over existing data.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        Self::open_with(dir, &RedbOptions::default())
    }

    pub fn open_with(dir: &Path, options: &RedbOptions) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            OpenError(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        let file = file_guard::open(&path, options)?;
        Self::from_file(file, path, options)
    }

    /// A store over an already opened database (tests use it to put a
    /// failing storage backend under the store).
    #[cfg(test)]
    fn from_database(
        db: Database,
        path: PathBuf,
        options: &RedbOptions,
    ) -> Result<Self, OpenError> {
        let file = DataFile::over(db, path.clone(), options);
        Self::from_file(file, path, options)
    }

    fn from_file(file: DataFile, path: PathBuf, options: &RedbOptions) -> Result<Self, OpenError> {
        let db = file.db().map_err(|e| OpenError(e.to_string()))?;
        let found = schema::prepare(&db, &path)?;
        let (groups, orders) = wal::recover(&db, &path, true).map_err(OpenError)?;
        if groups > 0 {
            tracing::info!(
                "replayed {groups} groups of writes ({orders} orders) from the write-ahead log {}",
                wal::path_for(&path).display()
            );
        }
        drop(db);
        let migrated_from = found.filter(|v| *v != schema::FORMAT_VERSION);
        let shared = Arc::new(Shared {
            file,
            path,
            cache: OrderCache::new(options.order_cache_bytes),
            unindexed_limit: options.unindexed_limit.max(1),
            checkpoint_every: options.checkpoint_every,
        });
        let writer = Writer::start(Arc::clone(&shared)).map_err(|e| {
            OpenError(format!(
                "cannot start the writer thread of {}: {e}",
                shared.path.display()
            ))
        })?;
        Ok(Self {
            shared,
            writer,
            migrated_from,
        })
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The older format this open migrated the file from, if it did.
    pub fn migrated_from(&self) -> Option<u64> {
        self.migrated_from
    }

    /// Inserts many new orders as one write (one transaction, one disk
    /// sync), queued behind the writes before it: all of them, or none if
    /// any id is taken or repeated ([`StoreError::AlreadyExists`] names
    /// it). For bulk loads and imports.
    pub async fn insert_many(&self, orders: Vec<Order>) -> Result<(), StoreError> {
        self.writer
            .submit(Write {
                op: Op::InsertMany(orders),
                deadline: None,
            })
            .await
    }

    /// [`Self::insert_many`] for callers outside async code: blocks the
    /// calling thread until the write is committed or refused. (Safe to
    /// call from inside a runtime too: the writer is its own thread.)
    pub fn insert_many_blocking(&self, orders: Vec<Order>) -> Result<(), StoreError> {
        block_on(self.insert_many(orders))
    }

    /// [`OrderStore::count`] for callers outside async code (start-up):
    /// redb keeps each table's length, so this reads no order.
    pub fn count_blocking(&self) -> Result<u64, StoreError> {
        self.shared.count()
    }

    /// Runs a read on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        match tokio::task::spawn_blocking(move || read(&shared)).await {
            Ok(result) => result,
            // A panic in the read is the caller's panic, as if inline.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Failed(format!(
                "a store read was cancelled: {e}"
            ))),
        }
    }
}

impl Shared {
    fn failed(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Failed(format!(
            "cannot read the data file {}: {e}",
            self.path.display()
        ))
    }

    fn count(&self) -> Result<u64, StoreError> {
        let db = self.file.db()?;
        let txn = db.begin_read().map_err(|e| self.failed(e))?;
        let orders = txn.open_table(ORDERS).map_err(|e| self.failed(e))?;
        orders.len().map_err(|e| self.failed(e))
    }

    fn read_order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        let seen = self.cache.snapshot();
        let db = self.file.db()?;
        let txn = db.begin_read().map_err(|e| self.failed(e))?;
        let orders = txn.open_table(ORDERS).map_err(|e| self.failed(e))?;
        let Some(bytes) = orders.get(id).map_err(|e| self.failed(e))? else {
            return Ok(None);
        };
        let order = Order::decode(bytes.value())
            .map_err(|e| self.failed(format!("order {id:?} does not decode: {e}")))?;
        self.cache.fill(seen, &order);
        Ok(Some(order))
    }
}

#[async_trait]
impl OrderStore for RedbStore {
    async fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        if let Some(order) = self.shared.cache.get(id) {
            return Ok(Some(order));
        }
        let id = id.to_owned();
        self.read(move |shared| shared.read_order(&id)).await
    }

    async fn search(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, StoreError> {
        let query = query.to_owned();
        let after = after.map(str::to_owned);
        self.read(move |shared| {
            let db = shared.file.db()?;
            let txn = db.begin_read().map_err(|e| shared.failed(e))?;
            search::page(&txn, &query, after.as_deref(), budget.max(1))
                .map_err(|e| shared.failed(e))
        })
        .await
    }

    async fn insert(&self, order: Order, deadline: Option<Instant>) -> Result<(), StoreError> {
        self.writer
            .submit(Write {
                op: Op::Insert(order),
                deadline,
            })
            .await
    }

    async fn update_all(
        &self,
        orders: Vec<Order>,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        self.writer
            .submit(Write {
                op: Op::UpdateAll(orders),
                deadline,
            })
            .await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.read(Shared::count).await
    }

    /// Not ready while writes are refused (a full disk, a failed commit,
    /// the file gone: see `file_guard`); asking tries to end that.
    async fn ready(&self) -> Result<(), StoreError> {
        self.read(|shared| shared.file.refusal().map_or(Ok(()), Err))
            .await
    }
}

/// redb's settings for our file.
fn builder(options: &RedbOptions) -> redb::Builder {
    let mut builder = Database::builder();
    builder
        // Start-up must not read the whole file: `verify` does that on demand.
        .set_check_integrity_on_open(false)
        .set_cache_size(options.page_cache_bytes);
    builder
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

/// Polls `future` to completion on this thread, parking between wake-ups.
/// For futures that only wait on other threads (the writer's reply).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
