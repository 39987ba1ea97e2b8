//! The data file's tables, its format version, migration, and keeping the
//! trigram index in step with the orders.
//!
//! Format 2 (this code):
//! - `orders`: id -> protobuf-encoded `ecommerce.Order` (as in format 1;
//!   the wire snapshots guard this encoding too).
//! - `postings`: (trigram, id) -> () for each distinct trigram of each
//!   order (see [`crate::store::rule`]). Keyed trigram first, so each trigram's
//!   posting list is a contiguous run sorted by id that a range can seek
//!   into.
//! - `unindexed`: id -> () for each order stored by an insert since the
//!   last indexing pass, which has no postings yet (see below).
//! - `meta`: `"format_version"` -> 2.
//!
//! **Deferred indexing.** Writing an order's postings dirties one leaf
//! page per trigram, scattered over the index, and each dirty page costs a
//! page write at commit: with ~15 trigrams per order, concurrent inserts
//! of unrelated ids cost ~15 page writes each. So an insert (addOrder)
//! only appends its id to `unindexed` (a small table, few pages); once it
//! holds [`super::RedbOptions::unindexed_limit`] ids, the group that
//! reaches it indexes them all in its own transaction, where postings of
//! many orders share pages (the same idea as PostgreSQL GIN's pending
//! list). Searches treat every unindexed order as a candidate. Updates of
//! an indexed order change its postings in place (the few that differ);
//! bulk loads index directly. The index is always exact: an order has all
//! of its postings, or none and is listed in `unindexed`.
//!
//! Format 1 (the code before the index): `orders` only, no `meta`. Opening
//! one migrates it in place, in one transaction: either the file is left as
//! it was or it is at format 2 with a complete index.

use std::path::Path;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::OpenError;
use crate::pb::Order;
use crate::store::rule;

/// id -> protobuf-encoded `ecommerce.Order`.
pub(super) const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
/// (trigram key, order id) -> nothing: the trigram index.
pub(super) const POSTINGS: TableDefinition<(u64, &str), ()> = TableDefinition::new("postings");
/// Facts about the file itself.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Orders not yet in the index.
pub(super) const UNINDEXED: TableDefinition<&str, ()> = TableDefinition::new("unindexed");
const VERSION_KEY: &str = "format_version";

/// The format this code writes and reads.
pub const FORMAT_VERSION: u64 = 2;

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

/// Format 1 -> 2 in one transaction: every order decoded and checked,
/// the index built, the version recorded.
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
        let mut done = 0u64;
        for entry in orders.iter().map_err(|e| fail(&e))? {
            let (id, bytes) = entry.map_err(|e| fail(&e))?;
            let order = decode(path, id.value(), bytes.value())?;
            for t in rule::order_trigrams(&order) {
                postings.insert((t, id.value()), ()).map_err(|e| fail(&e))?;
            }
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                tracing::info!(
                    "migrating {}: {done} of {total} orders indexed",
                    path.display()
                );
            }
        }
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        meta.insert(VERSION_KEY, FORMAT_VERSION)
            .map_err(|e| fail(&e))?;
    }
    txn.commit().map_err(|e| fail(&e))?;
    tracing::info!(
        "migrated the data file {} to format {FORMAT_VERSION} ({total} orders) in {:.1?}",
        path.display(),
        started.elapsed()
    );
    Ok(())
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
    pub postings: redb::Table<'txn, (u64, &'static str), ()>,
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
    /// exact. A new order is indexed now if `index_now`, else listed as
    /// unindexed. A replaced order keeps its state: if indexed, the
    /// postings of the old version it no longer has are removed and its
    /// new ones added; if unindexed, it stays so.
    pub fn put(&mut self, order: &Order, index_now: bool) -> Result<(), redb::Error> {
        let id = order.id.as_str();
        let old = match self.orders.get(id)? {
            Some(bytes) => Some(Order::decode(bytes.value()).map_err(|e| corrupt_record(id, e))?),
            None => None,
        };
        self.put_over(order, old, index_now)
    }

    /// Stores `order` as a new one: the caller has just seen that its id
    /// is not stored (saves looking it up again; one lookup per insert).
    pub fn put_new(&mut self, order: &Order) -> Result<(), redb::Error> {
        self.put_over(order, None, false)
    }

    /// [`Self::put`], given the stored version it replaces, if any.
    fn put_over(
        &mut self,
        order: &Order,
        old: Option<Order>,
        index_now: bool,
    ) -> Result<(), redb::Error> {
        let id = order.id.as_str();
        match old {
            None if index_now => {
                for t in rule::order_trigrams(order) {
                    self.postings.insert((t, id), ())?;
                }
            }
            None => {
                self.unindexed.insert(id, ())?;
            }
            Some(_) if self.unindexed.get(id)?.is_some() => {}
            Some(old) => {
                let old = rule::order_trigrams(&old);
                let new = rule::order_trigrams(order);
                for t in old.difference(&new) {
                    self.postings.remove((*t, id))?;
                }
                for t in new.difference(&old) {
                    self.postings.insert((*t, id), ())?;
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
        let mut postings = Vec::new();
        for id in &ids {
            let order = match self.orders.get(id.as_str())? {
                Some(bytes) => Order::decode(bytes.value()).map_err(|e| corrupt_record(id, e))?,
                None => {
                    return Err(redb::Error::Corrupted(format!(
                        "order {id:?} is listed as unindexed but not stored"
                    )));
                }
            };
            postings.extend(
                rule::order_trigrams(&order)
                    .into_iter()
                    .map(|t| (t, id.as_str())),
            );
        }
        // In key order: each B-tree page is visited once, not once per order.
        postings.sort_unstable();
        for key in postings {
            self.postings.insert(key, ())?;
        }
        self.unindexed.retain(|_, _| false)?;
        Ok(())
    }
}
