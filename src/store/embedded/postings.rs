//! The trigram index's posting lists, stored in blocks (format 3).
//!
//! Each trigram's posting list (the sorted ids of the orders whose items
//! have it) is cut into blocks of at most [`BLOCK_BYTES`] encoded bytes.
//! A block is one table entry: key (trigram, its first id), value its ids
//! front-coded (for each id: varint bytes shared with the previous id,
//! varint length of the rest, the rest; the first id shares nothing).
//!
//! Why blocks: with one entry per (trigram, id) (format 2), indexing an
//! order was ~15 B-tree inserts, and indexing was most of the cost of an
//! addOrder (measured: 10x10 addOrder went from 11.5k to 29k calls/s with
//! indexing switched off). An indexing pass sorts its postings by trigram
//! and merges each trigram's new ids into the blocks they fall in: ids
//! that arrive in increasing order (the common case: sequential or
//! time-ordered ids) all land in the list's last block, so a pass of 512
//! orders rewrites a few blocks per trigram instead of inserting 512 keys.
//!
//! Invariants (checked by `server verify`): blocks of a trigram hold
//! strictly increasing ids, never overlap, are never empty, and each is
//! keyed by its first id.

use std::ops::Bound;

use redb::{ReadableTable, TableDefinition};

/// (trigram, first id of the block) -> the block's ids, front-coded.
pub(super) const POSTINGS: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("posting_blocks");

/// A block is split when its encoding would pass this many bytes. A
/// search seeks into dense lists once per candidate and reads the block
/// it lands in, so blocks are kept small. Measured (100k / 1M bulk-loaded
/// orders, "widget 77777" / "widget 777777", server median): 1 KiB blocks
/// took 1.66 / 2.96 ms, 256 B blocks 0.28 / 1.07 ms (format 2, one entry
/// per posting: 0.21 / 1.1 ms); addOrder at 10x10 was ~20k calls/s with
/// either size.
pub(super) const BLOCK_BYTES: usize = 256;

fn corrupt(what: String) -> redb::Error {
    redb::Error::Corrupted(what)
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut v = 0usize;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Appends `id`, front-coded against `previous`, to a block's encoding.
fn encode_one(out: &mut Vec<u8>, previous: &str, id: &str) {
    let shared = shared_prefix(previous.as_bytes(), id.as_bytes());
    put_varint(out, shared);
    put_varint(out, id.len() - shared);
    out.extend_from_slice(&id.as_bytes()[shared..]);
}

/// A block's ids, in order.
pub(super) fn decode(trigram: u64, bytes: &[u8]) -> Result<Vec<String>, redb::Error> {
    let mut reader = BlockReader::new(trigram, bytes);
    let mut ids = Vec::new();
    while reader.advance()? {
        ids.push(reader.id()?.to_owned());
    }
    Ok(ids)
}

/// Reads a block's ids one by one, in order, into one buffer: moving
/// through a block costs no allocation (searches seek through many).
pub(super) struct BlockReader {
    trigram: u64,
    bytes: Vec<u8>,
    at: usize,
    id: Vec<u8>,
}

impl BlockReader {
    /// A reader before the block's first id.
    pub fn new(trigram: u64, bytes: &[u8]) -> Self {
        Self {
            trigram,
            bytes: bytes.to_vec(),
            at: 0,
            id: Vec::new(),
        }
    }

    /// Moves to the next id; false at the block's end.
    pub fn advance(&mut self) -> Result<bool, redb::Error> {
        if self.at == self.bytes.len() {
            return Ok(false);
        }
        let bad = || {
            corrupt(format!(
                "a posting block of trigram {} does not decode",
                self.trigram
            ))
        };
        let shared = get_varint(&self.bytes, &mut self.at).ok_or_else(bad)?;
        let rest = get_varint(&self.bytes, &mut self.at).ok_or_else(bad)?;
        let suffix = self.bytes.get(self.at..self.at + rest).ok_or_else(bad)?;
        if shared > self.id.len() {
            return Err(bad());
        }
        self.id.truncate(shared);
        self.id.extend_from_slice(suffix);
        self.at += rest;
        Ok(true)
    }

    /// The bytes of the id the reader is at (compare as the ids do).
    pub fn id_bytes(&self) -> &[u8] {
        &self.id
    }

    /// The id the reader is at (after an `advance` that returned true).
    pub fn id(&self) -> Result<&str, redb::Error> {
        std::str::from_utf8(&self.id).map_err(|_| {
            corrupt(format!(
                "a posting block of trigram {} holds an id that is not UTF-8",
                self.trigram
            ))
        })
    }
}

/// `ids` (sorted, distinct) cut into encoded blocks of at most
/// [`BLOCK_BYTES`] (an id longer than that is a block of its own).
fn encode_blocks(ids: &[String]) -> Vec<(&str, Vec<u8>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(&str, Vec<u8>)> = None;
    let mut previous = "";
    for id in ids {
        if let Some((_, bytes)) = &mut current {
            let mark = bytes.len();
            encode_one(bytes, previous, id);
            if bytes.len() <= BLOCK_BYTES {
                previous = id;
                continue;
            }
            bytes.truncate(mark);
            blocks.extend(current.take());
        }
        let mut bytes = Vec::with_capacity(BLOCK_BYTES);
        encode_one(&mut bytes, "", id);
        current = Some((id.as_str(), bytes));
        previous = id;
    }
    blocks.extend(current);
    blocks
}

/// The end of a trigram's key range. Trigram keys are < 2^63 (see
/// `rule::pack`), so `trigram + 1` cannot overflow.
fn list_end(trigram: u64) -> Bound<(u64, &'static str)> {
    Bound::Excluded((trigram + 1, ""))
}

/// The first id of the block `id` belongs in: the last block starting at
/// or before it, else the list's first block (which then gets a new first
/// id); `None` for an empty list.
fn block_for<T>(table: &T, trigram: u64, id: &str) -> Result<Option<String>, redb::Error>
where
    T: ReadableTable<(u64, &'static str), &'static [u8]>,
{
    let mut before = table.range::<(u64, &str)>((trigram, "")..=(trigram, id))?;
    if let Some(entry) = before.next_back() {
        return Ok(Some(entry?.0.value().1.to_owned()));
    }
    let mut after =
        table.range::<(u64, &str)>((Bound::Included((trigram, id)), list_end(trigram)))?;
    Ok(match after.next() {
        Some(entry) => Some(entry?.0.value().1.to_owned()),
        None => None,
    })
}

/// The first id of the block after the one starting at `first`.
fn next_block<T>(table: &T, trigram: u64, first: &str) -> Result<Option<String>, redb::Error>
where
    T: ReadableTable<(u64, &'static str), &'static [u8]>,
{
    let mut after =
        table.range::<(u64, &str)>((Bound::Excluded((trigram, first)), list_end(trigram)))?;
    Ok(match after.next() {
        Some(entry) => Some(entry?.0.value().1.to_owned()),
        None => None,
    })
}

fn read_block<T>(table: &T, trigram: u64, first: &str) -> Result<Vec<String>, redb::Error>
where
    T: ReadableTable<(u64, &'static str), &'static [u8]>,
{
    match table.get((trigram, first))? {
        Some(bytes) => decode(trigram, bytes.value()),
        None => Ok(Vec::new()),
    }
}

/// Replaces the block keyed `old_first` (if any) by `ids`, re-cut.
fn write_block(
    table: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    trigram: u64,
    old_first: Option<&str>,
    ids: &[String],
) -> Result<(), redb::Error> {
    let blocks = encode_blocks(ids);
    // Kept under its key (overwritten in place) if its first id stays.
    if let Some(old) = old_first
        && blocks.first().is_none_or(|(first, _)| *first != old)
    {
        table.remove((trigram, old))?;
    }
    for (first, bytes) in blocks {
        table.insert((trigram, first), bytes.as_slice())?;
    }
    Ok(())
}

/// Adds `ids` (sorted, distinct) to `trigram`'s list; ids already there
/// stay once. Each block the new ids fall in is read and rewritten once.
pub(super) fn add(
    table: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    trigram: u64,
    ids: &[&str],
) -> Result<(), redb::Error> {
    let mut rest = ids;
    while let Some(first_new) = rest.first() {
        let block = block_for(table, trigram, first_new)?;
        let (old, upto) = match &block {
            Some(first) => {
                let next = next_block(table, trigram, first)?;
                (read_block(table, trigram, first)?, next)
            }
            None => (Vec::new(), None),
        };
        let take = match &upto {
            Some(next) => rest.partition_point(|id| *id < next.as_str()),
            None => rest.len(),
        };
        let (mine, later) = rest.split_at(take);
        write_block(table, trigram, block.as_deref(), &merge(old, mine))?;
        rest = later;
    }
    Ok(())
}

/// Two sorted lists as one, each id once.
fn merge(old: Vec<String>, new: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut new = new.iter().peekable();
    for id in old {
        while let Some(n) = new.next_if(|n| **n < id.as_str()) {
            out.push((*n).to_owned());
        }
        new.next_if(|n| **n == id.as_str());
        out.push(id);
    }
    out.extend(new.map(|n| (*n).to_owned()));
    out
}

/// Removes `id` from `trigram`'s list, if it is there.
pub(super) fn remove(
    table: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    trigram: u64,
    id: &str,
) -> Result<(), redb::Error> {
    let Some(first) = block_for(table, trigram, id)? else {
        return Ok(());
    };
    let mut ids = read_block(table, trigram, &first)?;
    let Ok(at) = ids.binary_search_by(|i| i.as_str().cmp(id)) else {
        return Ok(());
    };
    ids.remove(at);
    write_block(table, trigram, Some(&first), &ids)
}

/// The ids of the block `id` would be in (empty if there is none).
pub(super) fn block_of<T>(table: &T, trigram: u64, id: &str) -> Result<Vec<String>, redb::Error>
where
    T: ReadableTable<(u64, &'static str), &'static [u8]>,
{
    match block_for(table, trigram, id)? {
        Some(first) => read_block(table, trigram, &first),
        None => Ok(Vec::new()),
    }
}

/// Whether `trigram`'s list holds `id`.
#[cfg(test)]
pub(super) fn contains<T>(table: &T, trigram: u64, id: &str) -> Result<bool, redb::Error>
where
    T: ReadableTable<(u64, &'static str), &'static [u8]>,
{
    let mut before = table.range::<(u64, &str)>((trigram, "")..=(trigram, id))?;
    let Some(entry) = before.next_back() else {
        return Ok(false);
    };
    let ids = decode(trigram, entry?.1.value())?;
    Ok(ids.binary_search_by(|i| i.as_str().cmp(id)).is_ok())
}

/// Sorted, distinct (trigram, id) pairs written as whole blocks into an
/// empty table (a migration's rebuild): no block is read back.
pub(super) fn load_sorted(
    table: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    postings: impl IntoIterator<Item = Result<(u64, String), redb::StorageError>>,
) -> Result<(), redb::Error> {
    let mut list: Option<(u64, Vec<String>)> = None;
    for posting in postings {
        let (trigram, id) = posting?;
        match &mut list {
            Some((t, ids)) if *t == trigram => ids.push(id),
            _ => {
                if let Some((t, ids)) = list.take() {
                    write_block(table, t, None, &ids)?;
                }
                list = Some((trigram, vec![id]));
            }
        }
    }
    if let Some((t, ids)) = list {
        write_block(table, t, None, &ids)?;
    }
    Ok(())
}

/// What a check of every block found: postings counted, and the first
/// few blocks that break the invariants.
#[derive(Debug, Default)]
pub(super) struct BlockCheck {
    pub postings: u64,
    pub problems: Vec<String>,
}

/// Reads every block, in key order, handing each (trigram, id) to `each`
/// and checking the invariants of the module docs.
pub(super) fn for_each<T>(
    table: &T,
    mut each: impl FnMut(u64, &str) -> Result<(), redb::Error>,
) -> Result<BlockCheck, redb::Error>
where
    T: ReadableTable<(u64, &'static str), &'static [u8]>,
{
    let mut check = BlockCheck::default();
    let mut last: Option<(u64, String)> = None;
    for entry in table.iter()? {
        let (key, bytes) = entry?;
        let (trigram, first) = key.value();
        let ids = decode(trigram, bytes.value())?;
        let keyed_right = ids.first().is_some_and(|i| i == first);
        let sorted = ids.windows(2).all(|w| w[0] < w[1]);
        let after_last = match &last {
            Some((t, id)) if *t == trigram => ids.first().is_none_or(|f| f > id),
            _ => true,
        };
        if !(keyed_right && sorted && after_last) {
            check.problems.push(format!(
                "the posting block of {:?} keyed {first:?} is malformed \
                 (empty, out of order, overlapping, or keyed by another id)",
                crate::store::rule::trigram_text(trigram)
            ));
        }
        for id in &ids {
            check.postings += 1;
            each(trigram, id)?;
        }
        if let Some(id) = ids.last() {
            last = Some((trigram, id.clone()));
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        (dir, db)
    }

    fn list(db: &Database, t: u64) -> Vec<String> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(POSTINGS).unwrap();
        let mut out = Vec::new();
        let check = for_each(&table, |tt, id| {
            if tt == t {
                out.push(id.to_owned());
            }
            Ok(())
        })
        .unwrap();
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        out
    }

    fn with_table(db: &Database, f: impl FnOnce(&mut redb::Table<'_, (u64, &str), &[u8]>)) {
        let txn = db.begin_write().unwrap();
        f(&mut txn.open_table(POSTINGS).unwrap());
        txn.commit().unwrap();
    }

    #[test]
    fn blocks_round_trip_front_coded() {
        let ids: Vec<String> = ["a", "ab", "abc", "b", "bé", "bée", "z"]
            .map(str::to_owned)
            .to_vec();
        let blocks = encode_blocks(&ids);
        assert_eq!(blocks.len(), 1);
        assert_eq!(decode(7, &blocks[0].1).unwrap(), ids);
        assert!(
            decode(7, &[5, 1, b'x']).is_err(),
            "shares more than there is"
        );
        assert!(decode(7, &[0, 4, b'x']).is_err(), "shorter than it says");
    }

    #[test]
    fn adds_and_removes_across_many_blocks_in_any_order() {
        let (_dir, db) = db();
        let mut want: Vec<String> = Vec::new();
        // Out of order, in batches, with repeats: every path of `add`.
        let mut state = 12345u64;
        for _ in 0..40 {
            let mut batch: Vec<String> = (0..100)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    format!("order-{:06}", (state >> 33) % 5000)
                })
                .collect();
            batch.sort();
            batch.dedup();
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            with_table(&db, |t| {
                add(t, 3, &refs).unwrap();
                add(t, 4, &["only"]).unwrap();
            });
            want.extend(batch);
            want.sort();
            want.dedup();
        }
        assert_eq!(list(&db, 3), want);
        assert_eq!(list(&db, 4), ["only"]);
        let txn = db.begin_read().unwrap();
        let blocks = txn.open_table(POSTINGS).unwrap().len().unwrap();
        assert!(blocks > 10, "{blocks} blocks: the list was cut");
        drop(txn);
        with_table(&db, |t| {
            for id in want.iter().step_by(3) {
                remove(t, 3, id).unwrap();
            }
            remove(t, 3, "not-there").unwrap();
            remove(t, 4, "only").unwrap();
        });
        let left: Vec<String> = want
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(list(&db, 3), left);
        assert!(list(&db, 4).is_empty());
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(POSTINGS).unwrap();
        assert!(contains(&table, 3, &left[0]).unwrap());
        assert!(!contains(&table, 3, &want[0]).unwrap());
        assert!(!contains(&table, 5, &left[0]).unwrap());
    }

    #[test]
    fn an_id_before_the_first_block_joins_it() {
        let (_dir, db) = db();
        with_table(&db, |t| add(t, 9, &["m", "n"]).unwrap());
        with_table(&db, |t| add(t, 9, &["a", "z"]).unwrap());
        assert_eq!(list(&db, 9), ["a", "m", "n", "z"]);
    }
}
