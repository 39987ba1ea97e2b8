//! The write-ahead log: a group of writes made durable by one sequential
//! write and one fdatasync, while redb's own commits between checkpoints
//! stay in memory (`Durability::None`).
//!
//! Why: a durable redb commit writes every page the group dirtied, each
//! with its own `pwrite`, then syncs; measured, that was a third of the
//! server's CPU per addOrder. PostgreSQL's answer, and ours: log the
//! group's orders sequentially, sync that, and write the pages later, once
//! for many groups (a *checkpoint*: a durable redb commit, every
//! [`super::RedbOptions::checkpoint_every`] or when the log is full).
//!
//! The log is `orders.redb-wal` beside the data file. A record is
//! `magic u32 | payload length u32 | lsn u64 | crc32 u32 | payload`
//! (little-endian); the payload is the group's stored orders, each
//! length-delimited protobuf, in the order they were applied. Every
//! transaction, durable or not, records its group's lsn in the `meta`
//! table, so redb's state after a crash (its last durable commit) says
//! which records it holds. After a checkpoint the log is written from its
//! start again; the file is never shortened (its blocks are allocated
//! once, so an append's fdatasync has no metadata to write).
//!
//! **Recovery** (at open, and when the file is reopened after a failed
//! write): the records after redb's lsn, in sequence, up to the first torn
//! or missing one, are applied in one transaction (see [`recover`]), before
//! the file serves any read. Records of an
//! older cycle that follow the current ones are out of sequence and end
//! it, and so does a torn record (its checksum fails).
//!
//! **Failure**: a group whose log append fails is not committed. If redb's
//! commit fails after the append, the record is overwritten with zeros
//! (and synced) before the group's calls hear of the failure, so recovery
//! cannot bring it back; if even that fails, the log says so and such a
//! group could reappear after a restart (as PostgreSQL's WAL would after a
//! failed fsync).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;
use redb::Durability;

use super::schema;
use crate::pb::Order;

/// The log's file name: the data file's, with this suffix.
pub(super) const SUFFIX: &str = "-wal";
const MAGIC: u32 = 0x4f4d_5741; // "OMWA"
const HEADER: usize = 4 + 4 + 8 + 4;
/// A checkpoint is due once the log holds this many bytes.
pub(super) const FULL_BYTES: u64 = 64 << 20;
/// The file grows (with zeros) by at least this much at a time.
const GROW_BY: u64 = 1 << 20;

/// The log's path for a data file.
pub(super) fn path_for(data_file: &Path) -> PathBuf {
    let mut name = data_file.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// The open log, held by the writer thread.
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    pos: u64,
    /// The file's length: bytes up to here are allocated.
    len: u64,
}

impl Wal {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            path: path.to_owned(),
            pos: 0,
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a checkpoint is due because the log is full.
    pub fn is_full(&self) -> bool {
        self.pos >= FULL_BYTES
    }

    /// Appends a record and syncs it: durable when this returns `Ok`,
    /// with the record's offset (for [`Self::retract`]).
    pub fn append(&mut self, lsn: u64, payload: &[u8]) -> io::Result<u64> {
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::other("a group of writes too large for one log record"))?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        record.extend_from_slice(payload);
        let end = self.pos + record.len() as u64;
        if end > self.len {
            // Allocated with zeros first: a full disk fails here, before
            // any of the record is written.
            let grown = end.max(self.len + GROW_BY);
            self.file
                .write_all_at(&vec![0; (grown - self.len) as usize], self.len)?;
            self.len = grown;
        }
        let written = self.file.write_all_at(&record, self.pos);
        if let Err(e) = written.and_then(|()| self.file.sync_data()) {
            // Whatever reached the file must not be replayed: its calls
            // fail. (Best effort; a torn record fails its checksum anyway.)
            let _ = self.file.write_all_at(&[0; HEADER], self.pos);
            return Err(e);
        }
        let at = self.pos;
        self.pos = end;
        Ok(at)
    }

    /// Unwrites the record at `at` (the last one appended): its header
    /// zeroed and synced, so recovery stops before it.
    pub fn retract(&mut self, at: u64) -> io::Result<()> {
        self.file.write_all_at(&[0; HEADER], at)?;
        self.file.sync_data()?;
        self.pos = at;
        Ok(())
    }

    /// After a checkpoint: everything logged is in the data file, so the
    /// log starts over.
    pub fn restart(&mut self) {
        self.pos = 0;
    }
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A group's stored orders as a record's payload.
pub(super) fn payload<'a>(orders: impl IntoIterator<Item = &'a Order>) -> Vec<u8> {
    let mut out = Vec::new();
    for order in orders {
        order
            .encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// The orders of a record's payload, in order.
pub(super) fn orders(lsn: u64, mut payload: &[u8]) -> io::Result<Vec<Order>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let order = Order::decode_length_delimited(&mut payload).map_err(|e| {
            io::Error::other(format!(
                "log record {lsn} passed its checksum but does not decode: {e}"
            ))
        })?;
        out.push(order);
    }
    Ok(out)
}

/// Applies the log's records after the data file's lsn in one
/// transaction (see Recovery in the module docs). Returns how many
/// groups and orders it applied.
///
/// `durable`: at open, the replay is a checkpoint, and the writer then
/// logs from the log's start. At a reopen under a running writer (after a
/// failed write, perhaps on a full disk) it is committed in memory only,
/// needing no disk space: the records stay in the log, where the writer
/// goes on appending after them, until its next checkpoint.
pub(super) fn recover(
    db: &redb::Database,
    data_file: &Path,
    durable: bool,
) -> Result<(usize, usize), String> {
    use redb::ReadableDatabase as _;
    let wal = path_for(data_file);
    let fail = |e: &dyn std::fmt::Display| {
        format!("cannot replay the write-ahead log {}: {e}", wal.display())
    };
    let after = {
        let txn = db.begin_read().map_err(|e| fail(&e))?;
        schema::read_lsn(&txn).map_err(|e| fail(&e))?
    };
    let records = tail(&wal, after).map_err(|e| fail(&e))?;
    let Some(last) = records.last().map(|(lsn, _)| *lsn) else {
        return Ok((0, 0));
    };
    let mut txn = db.begin_write().map_err(|e| fail(&e))?;
    txn.set_durability(match durable {
        true => Durability::Immediate,
        false => Durability::None,
    })
    .map_err(|e| fail(&e))?;
    let mut applied = 0;
    {
        let mut tables = schema::Tables::open(&txn).map_err(|e| fail(&e))?;
        for (lsn, bytes) in &records {
            for order in orders(*lsn, bytes).map_err(|e| fail(&e))? {
                tables.put(&order).map_err(|e| fail(&e))?;
                applied += 1;
            }
        }
    }
    schema::write_lsn(&txn, last).map_err(|e| fail(&e))?;
    txn.commit().map_err(|e| fail(&e))?;
    Ok((records.len(), applied))
}

/// The records after lsn `after`, in sequence (see the module docs), as
/// (lsn, payload). The current cycle starts at the log's start, right
/// after the data file's lsn (every durable commit either restarts the log
/// or ends the process): so a first record the data file already holds
/// means the log has nothing to replay, and the rest of it (stale) is not
/// read.
pub(super) fn tail(path: &Path, after: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
    use std::io::{BufReader, Read};
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut at = 0u64;
    let mut out = Vec::new();
    let mut next = after + 1;
    let mut header = [0u8; HEADER];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let (magic, len, crc) = (word(0), word(4) as usize, word(16));
        let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        // (A length past the file's end is a torn header: never allocated.)
        let end = at + (HEADER + len) as u64;
        if magic != MAGIC || lsn != next || end > file_len {
            break;
        }
        let mut payload = vec![0; len];
        match reader.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        if checksum(lsn, &payload) != crc {
            break;
        }
        out.push((lsn, payload));
        next += 1;
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str) -> Order {
        Order {
            id: id.into(),
            items: vec!["item".into()],
            ..Default::default()
        }
    }

    fn lsns(path: &Path, after: u64) -> Vec<u64> {
        tail(path, after)
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    }

    #[test]
    fn records_read_back_in_sequence_after_the_data_files_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let mut wal = Wal::open(&path).unwrap();
        for lsn in 1..=4 {
            wal.append(lsn, &payload([&order(&lsn.to_string())]))
                .unwrap();
        }
        assert_eq!(lsns(&path, 0), [1, 2, 3, 4]);
        let (lsn, bytes) = &tail(&path, 0).unwrap()[3];
        assert_eq!(orders(*lsn, bytes).unwrap(), [order("4")]);
        assert!(lsns(&path, 9).is_empty(), "a gap: nothing to replay");
        assert!(
            lsns(&path, 4).is_empty(),
            "a data file holding the first record holds the cycle"
        );
        assert!(
            std::fs::metadata(&path).unwrap().len() >= GROW_BY,
            "grown ahead"
        );
    }

    #[test]
    fn a_new_cycle_ends_where_its_records_do_and_a_torn_one_ends_it_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let mut wal = Wal::open(&path).unwrap();
        for lsn in 1..=5 {
            wal.append(lsn, &payload([&order("old")])).unwrap();
        }
        // Checkpoint at 5: the log starts over; 1..=5 are stale beyond.
        wal.restart();
        wal.append(6, &payload([&order("new")])).unwrap();
        let second = wal.append(7, &payload([&order("new")])).unwrap();
        assert_eq!(lsns(&path, 5), [6, 7]);
        // A record whose redb commit failed is taken back.
        wal.retract(second).unwrap();
        assert_eq!(lsns(&path, 5), [6]);
        wal.append(7, &payload([&order("again")])).unwrap();
        assert_eq!(lsns(&path, 5), [6, 7]);
        // A torn write (a byte of the payload lost) fails the checksum.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xff], second + HEADER as u64 + 2)
            .unwrap();
        assert_eq!(lsns(&path, 5), [6]);
        assert!(
            lsns(&dir.path().join("none"), 0).is_empty(),
            "no log: nothing"
        );
    }
}
