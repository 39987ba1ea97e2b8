//! The data file's tables, its format version, migration, and keeping the
//! trigram index in step with the orders.
//!
//! Format 3 (this code):
//! - `orders`: id -> protobuf-encoded `ecommerce.Order` (as in formats 1
//!   and 2; the wire snapshots guard this encoding too).
//! - `posting_blocks`: each trigram's posting list (the sorted ids of the
//!   orders that have it, see [`crate::store::rule`]) in blocks keyed
//!   (trigram, first id); see [`super::postings`].
//! - `unindexed`: id -> () for each order stored by an insert since the
//!   last indexing pass, which has no postings yet (see below).
//! - `meta`: `"format_version"` -> 3; `"wal_lsn"` -> the write-ahead log
//!   record of the last group applied (see [`super::wal`]; 0 or absent:
//!   none yet).
//!
//! **Deferred indexing.** An insert (addOrder, import) only appends its id
//! to `unindexed` (a small table, few pages); once it holds
//! [`super::RedbOptions::unindexed_limit`] ids (or at once for an import),
//! the group that reaches it indexes them all in its own transaction:
//! their postings sorted by trigram, so each block is rewritten once for
//! all the ids it gains (the same idea as PostgreSQL GIN's pending list).
//! Searches treat every unindexed order as a candidate. Updates of an
//! indexed order change its postings in place (the few that differ). The
//! index is always exact: an order has all of its postings, or none and
//! is listed in `unindexed`.
//!
//! Older formats open and are migrated in place, in one transaction:
//! either the file is left as it was or it is at format 3 with a complete
//! index. Format 1 (before the index): `orders` only, no `meta`. Format 2:
//! one `postings` entry per (trigram, id); its entries are already in
//! list order, so they are cut into blocks as they are read.

use std::path::Path;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::OpenError;
use super::postings::{self, POSTINGS};
use crate::pb::Order;
use crate::store::rule;

/// id -> protobuf-encoded `ecommerce.Order`.
pub(super) const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
/// Format 2's index: (trigram key, order id) -> nothing.
const POSTINGS_V2: TableDefinition<(u64, &str), ()> = TableDefinition::new("postings");
/// Facts about the file itself.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Orders not yet in the index.
pub(super) const UNINDEXED: TableDefinition<&str, ()> = TableDefinition::new("unindexed");
const VERSION_KEY: &str = "format_version";
/// The lsn of the last group of writes applied (see `wal`).
const LSN_KEY: &str = "wal_lsn";

/// The format this code writes and reads.
pub const FORMAT_VERSION: u64 = 3;

/// Migration logs its progress every this many orders.
const PROGRESS_EVERY: u64 = 100_000;

/// The format of a file as found: `None` for a new (empty) file.
pub(super) fn read_version(db: &Database, path: &Path) -> Result<Option<u64>, OpenError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        OpenError(format!("cannot read the data file {}: {e}", path.display()))
    };
    let txn = db.begin_read().map_err(|e| unreadable(&e))?;
    match txn.open_table(META) {
        Ok(meta) => match meta.get(VERSION_KEY).map_err(|e| unreadable(&e))? {
            Some(v) => Ok(Some(v.value())),
            None => Err(OpenError(format!(
                "the data file {} is corrupt: its meta table has no format version",
                path.display()
            ))),
        },
        Err(redb::TableError::TableDoesNotExist(_)) => match txn.open_table(ORDERS) {
            Ok(_) => Ok(Some(1)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(unreadable(&e)),
        },
        Err(e) => Err(unreadable(&e)),
    }
}

/// Makes the file ready for this code: creates the tables of a new file,
/// migrates an older format, refuses a newer one. Returns the version found.
pub(super) fn prepare(db: &Database, path: &Path) -> Result<Option<u64>, OpenError> {
    let found = read_version(db, path)?;
    match found {
        Some(FORMAT_VERSION) => {}
        Some(v) if v > FORMAT_VERSION => {
            return Err(OpenError(format!(
                "the data file {} has format version {v}, newer than this server's \
                 format version {FORMAT_VERSION}: run a newer server on it \
                 (the file was left as it is)",
                path.display()
            )));
        }
        None => create(db, path)?,
        Some(v) => migrate(db, path, v)?,
    }
    Ok(found)
}

fn write_failed(path: &Path, what: &str, e: &dyn std::fmt::Display) -> OpenError {
    OpenError(format!(
        "cannot {what} the data file {}: {e}",
        path.display()
    ))
}

/// A new file: empty tables at the current format.
fn create(db: &Database, path: &Path) -> Result<(), OpenError> {
    let fail = |e: &dyn std::fmt::Display| write_failed(path, "initialize", e);
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        txn.open_table(ORDERS).map_err(|e| fail(&e))?;
        txn.open_table(POSTINGS).map_err(|e| fail(&e))?;
        txn.open_table(UNINDEXED).map_err(|e| fail(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        meta.insert(VERSION_KEY, FORMAT_VERSION)
            .map_err(|e| fail(&e))?;
    }
    txn.commit().map_err(|e| fail(&e))
}

/// Format 1 or 2 -> 3 in one transaction: every order decoded and
/// checked, the index built (or, from format 2, re-cut into blocks), the
/// version recorded.
fn migrate(db: &Database, path: &Path, from: u64) -> Result<(), OpenError> {
    let fail = |e: &dyn std::fmt::Display| write_failed(path, "migrate", e);
    let total = {
        let txn = db.begin_read().map_err(|e| fail(&e))?;
        let orders = txn.open_table(ORDERS).map_err(|e| fail(&e))?;
        orders.len().map_err(|e| fail(&e))?
    };
    tracing::info!(
        "migrating the data file {} from format {from} to {FORMAT_VERSION}: \
         indexing {total} orders for search, in one transaction",
        path.display()
    );
    let started = std::time::Instant::now();
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        let orders = txn.open_table(ORDERS).map_err(|e| fail(&e))?;
        let mut postings = txn.open_table(POSTINGS).map_err(|e| fail(&e))?;
        txn.open_table(UNINDEXED).map_err(|e| fail(&e))?;
        let mut pending: Vec<(u64, String)> = Vec::new();
        let mut done = 0u64;
        for entry in orders.iter().map_err(|e| fail(&e))? {
            let (id, bytes) = entry.map_err(|e| fail(&e))?;
            let order = decode(path, id.value(), bytes.value())?;
            if from == 1 {
                pending.extend(
                    rule::order_trigrams(&order)
                        .into_iter()
                        .map(|t| (t, order.id.clone())),
                );
            }
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                index_batch(&mut postings, std::mem::take(&mut pending)).map_err(|e| fail(&e))?;
                tracing::info!(
                    "migrating {}: {done} of {total} orders checked",
                    path.display()
                );
            }
        }
        index_batch(&mut postings, pending).map_err(|e| fail(&e))?;
        if from == 2 {
            let old = txn.open_table(POSTINGS_V2).map_err(|e| fail(&e))?;
            // Read in key order: each trigram's ids, sorted, as blocks want them.
            let entries = old.iter().map_err(|e| fail(&e))?.map(|entry| {
                let (key, _) = entry?;
                let (t, id) = key.value();
                Ok((t, id.to_owned()))
            });
            postings::load_sorted(&mut postings, entries).map_err(|e| fail(&e))?;
        }
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        meta.insert(VERSION_KEY, FORMAT_VERSION)
            .map_err(|e| fail(&e))?;
    }
    if from == 2 {
        txn.delete_table(POSTINGS_V2).map_err(|e| fail(&e))?;
    }
    txn.commit().map_err(|e| fail(&e))?;
    tracing::info!(
        "migrated the data file {} to format {FORMAT_VERSION} ({total} orders) in {:.1?}",
        path.display(),
        started.elapsed()
    );
    Ok(())
}

/// Adds (trigram, id) postings, in any order, to the index: sorted, then
/// each trigram's new ids merged into its blocks at once.
fn index_batch(
    table: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    mut pairs: Vec<(u64, String)>,
) -> Result<(), redb::Error> {
    pairs.sort_unstable();
    pairs.dedup();
    for run in pairs.chunk_by(|a, b| a.0 == b.0) {
        let ids: Vec<&str> = run.iter().map(|(_, id)| id.as_str()).collect();
        postings::add(table, run[0].0, &ids)?;
    }
    Ok(())
}

/// The lsn of the last group of writes the file holds (0: none).
pub(super) fn read_lsn(txn: &redb::ReadTransaction) -> Result<u64, redb::Error> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(LSN_KEY)?.map_or(0, |v| v.value()))
}

/// Records `lsn` as the last group's.
pub(super) fn write_lsn(txn: &redb::WriteTransaction, lsn: u64) -> Result<(), redb::Error> {
    txn.open_table(META)?.insert(LSN_KEY, lsn)?;
    Ok(())
}

/// The lsn of the last group of writes, as `txn` sees it.
pub(super) fn current_lsn(txn: &redb::WriteTransaction) -> Result<u64, redb::Error> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(LSN_KEY)?.map_or(0, |v| v.value()))
}

/// The lsn of the group `txn` applies: the last one's, plus one (also
/// recorded).
pub(super) fn next_lsn(txn: &redb::WriteTransaction) -> Result<u64, redb::Error> {
    let lsn = current_lsn(txn)? + 1;
    write_lsn(txn, lsn)?;
    Ok(lsn)
}

/// Decodes a stored record, checking that it holds the order its key names.
pub(super) fn decode(path: &Path, key: &str, bytes: &[u8]) -> Result<Order, OpenError> {
    let order = Order::decode(bytes).map_err(|e| {
        OpenError(format!(
            "the data file {} is corrupt: order {key:?} does not decode: {e}",
            path.display()
        ))
    })?;
    if order.id != key {
        return Err(OpenError(format!(
            "the data file {} is corrupt: key {key:?} holds order {:?}",
            path.display(),
            order.id
        )));
    }
    Ok(order)
}

/// The tables one write transaction changes, opened once per group.
pub(super) struct Tables<'txn> {
    pub orders: redb::Table<'txn, &'static str, &'static [u8]>,
    pub postings: redb::Table<'txn, (u64, &'static str), &'static [u8]>,
    pub unindexed: redb::Table<'txn, &'static str, ()>,
}

fn corrupt_record(id: &str, e: prost::DecodeError) -> redb::Error {
    redb::Error::Corrupted(format!("stored order {id:?} does not decode: {e}"))
}

impl<'txn> Tables<'txn> {
    pub fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Self {
            orders: txn.open_table(ORDERS)?,
            postings: txn.open_table(POSTINGS)?,
            unindexed: txn.open_table(UNINDEXED)?,
        })
    }

    /// Whether an order with this id is stored.
    pub fn exists(&self, id: &str) -> Result<bool, redb::Error> {
        Ok(self.orders.get(id)?.is_some())
    }

    /// Stores `order`, new or replacing the stored one, keeping the index
    /// exact. A new order is listed as unindexed. A replaced order keeps
    /// its state: if indexed, the postings of the old version it no longer
    /// has are removed and its new ones added; if unindexed, it stays so.
    pub fn put(&mut self, order: &Order) -> Result<(), redb::Error> {
        let id = order.id.as_str();
        let old = match self.orders.get(id)? {
            Some(bytes) => Some(Order::decode(bytes.value()).map_err(|e| corrupt_record(id, e))?),
            None => None,
        };
        self.put_over(order, old)
    }

    /// Stores `order` as a new one: the caller has just seen that its id
    /// is not stored (saves looking it up again; one lookup per insert).
    pub fn put_new(&mut self, order: &Order) -> Result<(), redb::Error> {
        self.put_over(order, None)
    }

    /// [`Self::put`], given the stored version it replaces, if any.
    fn put_over(&mut self, order: &Order, old: Option<Order>) -> Result<(), redb::Error> {
        let id = order.id.as_str();
        match old {
            None => {
                self.unindexed.insert(id, ())?;
            }
            Some(_) if self.unindexed.get(id)?.is_some() => {}
            Some(old) => {
                let old = rule::order_trigrams(&old);
                let new = rule::order_trigrams(order);
                for t in old.difference(&new) {
                    postings::remove(&mut self.postings, *t, id)?;
                }
                for t in new.difference(&old) {
                    postings::add(&mut self.postings, *t, &[id])?;
                }
            }
        }
        self.orders.insert(id, order.encode_to_vec().as_slice())?;
        Ok(())
    }

    /// Indexes every unindexed order if there are `limit` or more of them.
    pub fn index_if_due(&mut self, limit: usize) -> Result<(), redb::Error> {
        if self.unindexed.len()? < limit as u64 {
            return Ok(());
        }
        let mut ids = Vec::new();
        for entry in self.unindexed.iter()? {
            ids.push(entry?.0.value().to_owned());
        }
        let mut pairs = Vec::new();
        for id in ids {
            let order = match self.orders.get(id.as_str())? {
                Some(bytes) => Order::decode(bytes.value()).map_err(|e| corrupt_record(&id, e))?,
                None => {
                    return Err(redb::Error::Corrupted(format!(
                        "order {id:?} is listed as unindexed but not stored"
                    )));
                }
            };
            pairs.extend(
                rule::order_trigrams(&order)
                    .into_iter()
                    .map(|t| (t, id.clone())),
            );
        }
        index_batch(&mut self.postings, pairs)?;
        self.unindexed.retain(|_, _| false)?;
        Ok(())
    }
}
