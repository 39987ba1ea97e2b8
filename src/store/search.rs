//! One bounded step of a search over a redb read transaction.
//!
//! A query of 3 or more chars (folded) is answered from the trigram
//! index: its trigrams' posting lists are intersected by leapfrogging (the
//! current candidate is the largest id any list has reached; each list is
//! seeked to the first id >= the candidate, until all agree), starting
//! after the cursor. Each id found in every list is a candidate: its order
//! is fetched and checked against the full rule, so results are exact, in
//! id order, each order once. A shorter query has no trigrams and is
//! answered by a scan of the orders table in id order.
//!
//! Work per step is bounded: at most `budget` candidates examined, and at
//! most [`SEEKS_PER_CANDIDATE`] x `budget` posting-list seeks (a query
//! whose lists rarely agree would otherwise walk far between candidates).
//! `next` is then the last id known to be settled, so the next step
//! resumes exactly there.

use std::ops::Bound;

use prost::Message;
use redb::{ReadOnlyTable, ReadTransaction};

use super::schema::{ORDERS, POSTINGS};
use super::{SearchPage, rule};
use crate::pb::Order;

/// Posting-list seeks a step may spend per candidate of its budget.
pub(super) const SEEKS_PER_CANDIDATE: usize = 16;

pub(super) fn page(
    txn: &ReadTransaction,
    query: &str,
    after: Option<&str>,
    budget: usize,
) -> Result<SearchPage, redb::Error> {
    let needle = rule::fold(query);
    let orders = txn.open_table(ORDERS)?;
    match rule::query_trigrams(&needle) {
        None => scan(&orders, &needle, after, budget),
        Some(trigrams) => {
            let postings = txn.open_table(POSTINGS)?;
            indexed(&orders, &postings, &trigrams, &needle, after, budget)
        }
    }
}

fn decode(id: &str, bytes: &[u8]) -> Result<Order, redb::Error> {
    Order::decode(bytes)
        .map_err(|e| redb::Error::Corrupted(format!("stored order {id:?} does not decode: {e}")))
}

/// Every order after `after`, in id order, checked one by one.
fn scan(
    orders: &ReadOnlyTable<&str, &[u8]>,
    needle: &str,
    after: Option<&str>,
    budget: usize,
) -> Result<SearchPage, redb::Error> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut page = SearchPage::default();
    let mut last: Option<String> = None;
    for entry in orders.range::<&str>((start, Bound::Unbounded))? {
        let (id, bytes) = entry?;
        if page.examined == budget {
            // More follow: resume after the last id examined.
            page.next = last;
            return Ok(page);
        }
        page.examined += 1;
        let order = decode(id.value(), bytes.value())?;
        if rule::matches(&order, needle) {
            page.orders.push(order);
        }
        last = Some(id.value().to_owned());
    }
    Ok(page)
}

/// The first id in `trigram`'s posting list after (or at) `from`.
fn seek(
    postings: &ReadOnlyTable<(u64, &str), ()>,
    trigram: u64,
    from: Bound<&str>,
) -> Result<Option<String>, redb::Error> {
    let start = match from {
        Bound::Included(id) => Bound::Included((trigram, id)),
        Bound::Excluded(id) => Bound::Excluded((trigram, id)),
        Bound::Unbounded => Bound::Included((trigram, "")),
    };
    // Trigram keys are < 2^63, so `trigram + 1` cannot overflow.
    let end = Bound::Excluded((trigram + 1, ""));
    let mut range = postings.range::<(u64, &str)>((start, end))?;
    match range.next() {
        Some(entry) => Ok(Some(entry?.0.value().1.to_owned())),
        None => Ok(None),
    }
}

fn indexed(
    orders: &ReadOnlyTable<&str, &[u8]>,
    postings: &ReadOnlyTable<(u64, &str), ()>,
    trigrams: &[u64],
    needle: &str,
    after: Option<&str>,
    budget: usize,
) -> Result<SearchPage, redb::Error> {
    let mut page = SearchPage::default();
    let max_seeks = budget
        .saturating_mul(SEEKS_PER_CANDIDATE)
        .max(trigrams.len() + 1);
    let mut seeks = 0;
    // Everything up to and including `settled` has been decided.
    let mut settled: Option<String> = after.map(str::to_owned);
    loop {
        if page.examined == budget || seeks >= max_seeks {
            page.next = settled;
            return Ok(page);
        }
        let from = settled.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        seeks += 1;
        let Some(mut candidate) = seek(postings, trigrams[0], from)? else {
            return Ok(page); // the first list is done: so is the search
        };
        // Leapfrog until every list holds `candidate`.
        let mut agreed = 1;
        let mut list = 1 % trigrams.len();
        while agreed < trigrams.len() {
            seeks += 1;
            let Some(found) = seek(postings, trigrams[list], Bound::Included(&candidate))? else {
                return Ok(page);
            };
            if found == candidate {
                agreed += 1;
            } else {
                // `candidate` is missing from this list, and so is every id
                // before `found` that is after it.
                settled = Some(std::mem::replace(&mut candidate, found));
                agreed = 1;
                if seeks >= max_seeks {
                    page.next = settled;
                    return Ok(page);
                }
            }
            list = (list + 1) % trigrams.len();
        }
        page.examined += 1;
        let bytes = orders.get(candidate.as_str())?.ok_or_else(|| {
            redb::Error::Corrupted(format!(
                "the index names order {candidate:?}, which is not stored"
            ))
        })?;
        let order = decode(&candidate, bytes.value())?;
        if rule::matches(&order, needle) {
            page.orders.push(order);
        }
        settled = Some(candidate);
    }
}
