//! One bounded step of a search over a redb read transaction.
//!
//! A query of 3 or more chars (folded) is answered from the trigram
//! index: its trigrams' posting lists are intersected by leapfrogging (the
//! current candidate is the largest id any list has reached; each list is
//! seeked to the first id >= the candidate, until all agree), starting
//! after the cursor. Each id found in every list is a candidate, and so is
//! each order not yet indexed (the `unindexed` table, merged in id order;
//! see `schema`). Each candidate's order
//! is fetched and checked against the full rule, so results are exact, in
//! id order, each order once. A shorter query has no trigrams and is
//! answered by a scan of the orders table in id order.
//!
//! A step of [`DENSE_MIN_BUDGET`] candidates or more (the service's steps)
//! first scans the orders table from the cursor for as long as most of
//! the orders it sees match (see [`dense_prefix`]), and goes on from the
//! index where they stop matching: for a query that matches nearly every
//! order, walking the orders once is cheaper than intersecting posting
//! lists that hold nearly every id and then fetching each candidate
//! (measured: about 3x the orders/s for a query in every order). A rare
//! query pays a few orders per step for the try.
//!
//! Work per step is bounded: at most `budget` candidates examined, and at
//! most [`WORK_PER_CANDIDATE`] x `budget` entries visited or seeks made (a
//! query whose lists rarely agree would otherwise walk far between
//! candidates).
//! `next` is then the last id known to be settled, so the next step
//! resumes exactly there.

use std::ops::Bound;

use prost::Message;
use redb::{ReadOnlyTable, ReadTransaction};

use super::SearchPage;
use super::postings::{BlockReader, POSTINGS};
use super::schema::{ORDERS, UNINDEXED};
use crate::pb::Order;
use crate::store::rule;

/// Units of work (a posting or order visited, or a seek) a step may spend
/// per candidate of its budget.
pub(super) const WORK_PER_CANDIDATE: usize = 32;

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
            let mut page = SearchPage::default();
            let mut settled = after.map(str::to_owned);
            if budget >= DENSE_MIN_BUDGET
                && !dense_prefix(&orders, &needle, &mut settled, budget, &mut page)?
            {
                return Ok(page);
            }
            if page.examined == budget {
                page.next = settled;
                return Ok(page);
            }
            let postings = txn.open_table(POSTINGS)?;
            let unindexed = txn.open_table(UNINDEXED)?;
            indexed(
                &orders, &postings, &unindexed, &trigrams, &needle, settled, budget, page,
            )
        }
    }
}

/// A step of at least this many candidates first tries a scan (see
/// [`dense_prefix`]); a smaller one goes straight to the index.
pub(super) const DENSE_MIN_BUDGET: usize = 64;
/// How many misses in a row (net of matches, see [`dense_prefix`]) end
/// the scan.
const DENSE_CREDIT: usize = 4;

/// The scan that starts an indexed step: while most orders after
/// `settled` match, walking the orders table and checking each one is
/// cheaper than intersecting posting lists that hold nearly every id and
/// then fetching each candidate anyway (a query matching every order would
/// otherwise visit one posting per trigram per order). Each match adds
/// credit (up to twice [`DENSE_CREDIT`]), each miss spends one; the scan
/// ends when none is left, so a rare query pays a few orders per step.
/// Every order it examines is checked with the full rule, so its results
/// are exact, in id order; `settled` moves to the last one examined.
/// Returns whether the table goes on after it (`false`: the search is
/// done).
fn dense_prefix(
    orders: &ReadOnlyTable<&str, &[u8]>,
    needle: &str,
    settled: &mut Option<String>,
    budget: usize,
    page: &mut SearchPage,
) -> Result<bool, redb::Error> {
    let start = settled.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut credit = DENSE_CREDIT;
    let mut last: Option<redb::AccessGuard<'static, &'static str>> = None;
    let mut more = false;
    for entry in orders.range::<&str>((start, Bound::Unbounded))? {
        if credit == 0 || page.examined == budget {
            more = true;
            break;
        }
        let (id, bytes) = entry?;
        page.examined += 1;
        let order = decode(id.value(), bytes.value())?;
        if rule::matches(&order, needle) {
            page.orders.push(order);
            credit = (credit + 1).min(2 * DENSE_CREDIT);
        } else {
            credit -= 1;
        }
        last = Some(id);
    }
    if let Some(id) = last {
        *settled = Some(id.value().to_owned());
    }
    Ok(more)
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

/// The orders fetcher walks this many entries looking for a candidate
/// before it seeks (a new range from the candidate): dense intersections
/// walk, sparse ones jump. (A posting list's cursor looks in its current
/// block and the next one, then seeks.)
const WALK: usize = 4;

/// A position in one trigram's posting list (see `postings`): a reader
/// in the block it is in, and the range of the blocks after it.
struct Cursor {
    trigram: u64,
    /// The blocks after the reader's (opened when first needed).
    iter: Option<redb::Range<'static, (u64, &'static str), &'static [u8]>>,
    /// The first id of the reader's block, where `iter` starts after.
    block_first: Option<String>,
    /// At the cursor's id; `None` before the first seek and once the
    /// list is exhausted.
    reader: Option<BlockReader>,
}

impl Cursor {
    fn new(trigram: u64) -> Self {
        Self {
            trigram,
            iter: None,
            block_first: None,
            reader: None,
        }
    }

    fn head(&self) -> Result<Option<String>, redb::Error> {
        match &self.reader {
            Some(reader) => Ok(Some(reader.id()?.to_owned())),
            None => Ok(None),
        }
    }

    /// Moves the reader forward in its block to the first id at or after
    /// `target`; false (reader dropped) if the block has none.
    fn scan_block(&mut self, target: Bound<&str>, work: &mut usize) -> Result<bool, redb::Error> {
        let Some(reader) = &mut self.reader else {
            return Ok(false);
        };
        // UTF-8 orders as its bytes do: compare bytes, check UTF-8 once
        // the cursor stops (`head`).
        let reached_bytes = |id: &[u8]| match target {
            Bound::Included(t) => id >= t.as_bytes(),
            Bound::Excluded(t) => id > t.as_bytes(),
            Bound::Unbounded => true,
        };
        let mut steps = 0;
        loop {
            if reached_bytes(reader.id_bytes()) {
                *work += 1 + steps / 16;
                return Ok(true);
            }
            steps += 1;
            if !reader.advance()? {
                *work += 1 + steps / 16;
                self.reader = None;
                return Ok(false);
            }
        }
    }

    /// Starts a reader on the next block of the list; false at the end.
    /// (The range of the next blocks is opened when first needed: a seek
    /// that finds its target in the block it lands on needs none.)
    fn next_block(
        &mut self,
        postings: &ReadOnlyTable<(u64, &str), &[u8]>,
        work: &mut usize,
    ) -> Result<bool, redb::Error> {
        *work += 1;
        if self.iter.is_none() {
            let start = match &self.block_first {
                Some(first) => Bound::Excluded((self.trigram, first.as_str())),
                None => Bound::Included((self.trigram, "")),
            };
            // Trigram keys are < 2^63, so `trigram + 1` cannot overflow.
            let end = Bound::Excluded((self.trigram + 1, ""));
            self.iter = Some(postings.range::<(u64, &str)>((start, end))?);
        }
        let Some(iter) = &mut self.iter else {
            unreachable!("opened above")
        };
        match iter.next() {
            None => {
                self.reader = None;
                Ok(false)
            }
            Some(entry) => {
                let mut reader = BlockReader::new(self.trigram, entry?.1.value());
                let started = reader.advance()?;
                self.reader = started.then_some(reader);
                Ok(started)
            }
        }
    }

    /// Moves to the first id in the list that is at or after `target`
    /// and returns it (`None`: the list has none). Counts its work.
    fn seek(
        &mut self,
        postings: &ReadOnlyTable<(u64, &str), &[u8]>,
        target: Bound<&str>,
        work: &mut usize,
    ) -> Result<Option<String>, redb::Error> {
        if self.reader.is_some() {
            // In the current block, or in the next one; further on, a
            // seek is cheaper than reading the blocks in between.
            if self.scan_block(target, work)? {
                return self.head();
            }
            if !self.next_block(postings, work)? {
                return Ok(None);
            }
            if self.scan_block(target, work)? {
                return self.head();
            }
        }
        // Seek: to the block holding the target (the last one starting at
        // or before it); the target is there, or starts the next block.
        *work += 1;
        self.iter = None;
        self.block_first = None;
        self.reader = None;
        if let Bound::Included(id) | Bound::Excluded(id) = target {
            let mut before =
                postings.range::<(u64, &str)>((self.trigram, "")..=(self.trigram, id))?;
            if let Some(entry) = before.next_back() {
                let (key, bytes) = entry?;
                self.block_first = Some(key.value().1.to_owned());
                let mut reader = BlockReader::new(self.trigram, bytes.value());
                if reader.advance()? {
                    self.reader = Some(reader);
                    if self.scan_block(target, work)? {
                        return self.head();
                    }
                }
            }
        }
        if self.next_block(postings, work)? && self.scan_block(target, work)? {
            return self.head();
        }
        self.reader = None;
        Ok(None)
    }
}

/// Fetches candidates in increasing id order, walking the orders table
/// when they are close together and seeking when they are not.
struct Fetcher {
    iter: Option<redb::Range<'static, &'static str, &'static [u8]>>,
}

impl Fetcher {
    fn get(
        &mut self,
        orders: &ReadOnlyTable<&str, &[u8]>,
        id: &str,
        work: &mut usize,
    ) -> Result<Option<Order>, redb::Error> {
        if let Some(iter) = &mut self.iter {
            for _ in 0..WALK {
                *work += 1;
                let Some(entry) = iter.next() else { break };
                let (key, bytes) = entry?;
                match key.value().cmp(id) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => return decode(id, bytes.value()).map(Some),
                    std::cmp::Ordering::Greater => return Ok(None),
                }
            }
        }
        *work += 1;
        let mut iter = orders.range::<&str>((Bound::Included(id), Bound::Unbounded))?;
        let found = match iter.next() {
            Some(entry) => {
                let (key, bytes) = entry?;
                if key.value() == id {
                    Some(decode(id, bytes.value())?)
                } else {
                    None
                }
            }
            None => None,
        };
        self.iter = Some(iter);
        Ok(found)
    }
}

/// What a leapfrog over the posting lists came to.
enum Leap {
    /// An id in every list (after the start).
    Found(String),
    /// One of the lists has no more ids: no more candidates.
    Done,
    /// Out of work; every id up to and including this one (if any) is
    /// known to be in some list's gap.
    OutOfWork(Option<String>),
}

/// The first id after `settled` that every list holds.
fn leapfrog(
    postings: &ReadOnlyTable<(u64, &str), &[u8]>,
    cursors: &mut [Cursor],
    settled: Option<&str>,
    work: &mut usize,
    max_work: usize,
) -> Result<Leap, redb::Error> {
    let mut settled = settled.map(str::to_owned);
    if *work >= max_work {
        return Ok(Leap::OutOfWork(settled));
    }
    let from = settled.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let Some(mut candidate) = cursors[0].seek(postings, from, work)? else {
        return Ok(Leap::Done);
    };
    let mut agreed = 1;
    let mut list = 1 % cursors.len();
    while agreed < cursors.len() {
        let Some(found) = cursors[list].seek(postings, Bound::Included(&candidate), work)? else {
            return Ok(Leap::Done);
        };
        if found == candidate {
            agreed += 1;
        } else {
            // `candidate` is missing from this list, and so is every id
            // before `found` that is after it.
            settled = Some(std::mem::replace(&mut candidate, found));
            agreed = 1;
            if *work >= max_work {
                return Ok(Leap::OutOfWork(settled));
            }
        }
        list = (list + 1) % cursors.len();
    }
    Ok(Leap::Found(candidate))
}

/// The unindexed orders after a point, in id order (each is a candidate).
struct Unindexed {
    iter: redb::Range<'static, &'static str, ()>,
    head: Option<String>,
}

impl Unindexed {
    fn new(table: &ReadOnlyTable<&str, ()>, after: Option<&str>) -> Result<Self, redb::Error> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut iter = table.range::<&str>((start, Bound::Unbounded))?;
        let head = match iter.next() {
            Some(entry) => Some(entry?.0.value().to_owned()),
            None => None,
        };
        Ok(Self { iter, head })
    }

    /// The first unindexed id after `settled`.
    fn after(&mut self, settled: Option<&str>) -> Result<Option<&str>, redb::Error> {
        while let (Some(head), Some(settled)) = (&self.head, settled) {
            if head.as_str() > settled {
                break;
            }
            self.head = match self.iter.next() {
                Some(entry) => Some(entry?.0.value().to_owned()),
                None => None,
            };
        }
        Ok(self.head.as_deref())
    }
}

/// The rest of a step from the index: candidates after `settled` (where
/// the step's scan, if any, stopped), added to `page`.
#[allow(clippy::too_many_arguments)]
fn indexed(
    orders: &ReadOnlyTable<&str, &[u8]>,
    postings: &ReadOnlyTable<(u64, &str), &[u8]>,
    unindexed: &ReadOnlyTable<&str, ()>,
    trigrams: &[u64],
    needle: &str,
    mut settled: Option<String>,
    budget: usize,
    mut page: SearchPage,
) -> Result<SearchPage, redb::Error> {
    let max_work = budget
        .saturating_mul(WORK_PER_CANDIDATE)
        .max(trigrams.len() * (WALK + 1) + 1);
    let mut work = 0;
    let mut cursors: Vec<Cursor> = trigrams.iter().map(|t| Cursor::new(*t)).collect();
    let mut fetcher = Fetcher { iter: None };
    let mut unindexed = Unindexed::new(unindexed, settled.as_deref())?;
    // Everything up to and including `settled` has been decided.
    loop {
        if page.examined == budget {
            page.next = settled;
            return Ok(page);
        }
        let pending = unindexed.after(settled.as_deref())?.map(str::to_owned);
        let leap = leapfrog(
            postings,
            &mut cursors,
            settled.as_deref(),
            &mut work,
            max_work,
        )?;
        // The next candidate: the index's or an unindexed order, whichever
        // comes first; or stop.
        let candidate = match (leap, pending) {
            (Leap::Found(c), Some(u)) => c.min(u),
            (Leap::Found(c), None) => c,
            (Leap::Done, Some(u)) => u,
            (Leap::Done, None) => return Ok(page),
            (Leap::OutOfWork(gap), Some(u)) if gap.as_deref().is_some_and(|g| u.as_str() <= g) => u,
            (Leap::OutOfWork(gap), _) => {
                page.next = gap.max(settled);
                return Ok(page);
            }
        };
        page.examined += 1;
        let order = fetcher.get(orders, &candidate, &mut work)?.ok_or_else(|| {
            redb::Error::Corrupted(format!(
                "the index names order {candidate:?}, which is not stored"
            ))
        })?;
        if rule::matches(&order, needle) {
            page.orders.push(order);
        }
        settled = Some(candidate);
    }
}
