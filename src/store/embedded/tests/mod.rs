//! The stores' behaviour, deterministic (no timing assertions): group
//! semantics, FIFO, deadlines, dropped callers, failed commits, panics,
//! search against brute force, reopening, verify, migration: one module
//! per area, the shared helpers here.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend, backends::FileBackend};
use tokio::sync::oneshot;

use super::postings::{self, POSTINGS};
use super::schema::{META, ORDERS};
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

mod groups;
mod search;
mod through_store;

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
    let mut out: Vec<String> = Vec::new();
    let check = postings::for_each(&table, |t, i| {
        if i == id {
            out.push(rule::trigram_text(t));
        }
        Ok(())
    })
    .unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
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

mod files;
mod wal;
