//! [`RedbStore::verify`]: a full check of a data file, for an operator.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::OpenError;
use super::postings::{self, POSTINGS};
use super::schema::{self, FORMAT_VERSION, ORDERS, UNINDEXED};
use super::{FILE_NAME, RedbOptions, RedbStore, builder, open_error};
use crate::pb::Order;
use crate::store::rule;

/// The report lists at most this many problems (it counts them all).
const MAX_LISTED: usize = 20;

/// What [`RedbStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub path: PathBuf,
    /// The file's format (`None`: an empty file with no tables yet).
    pub format_version: Option<u64>,
    /// Whether redb's integrity check passed without repairing anything.
    pub integrity_clean: bool,
    pub orders: u64,
    pub postings: u64,
    /// Orders stored but not yet indexed (they have no postings).
    pub unindexed: u64,
    /// How many problems were found...
    pub problem_count: u64,
    /// ... and the first of them, described.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// No problem at all.
    pub fn is_ok(&self) -> bool {
        self.integrity_clean && self.problem_count == 0
    }

    fn problem(&mut self, what: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(what);
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self
            .format_version
            .map_or("none (empty file)".to_owned(), |v| v.to_string());
        writeln!(f, "data file: {}", self.path.display())?;
        writeln!(f, "format version: {version}")?;
        writeln!(
            f,
            "redb integrity check: {}",
            if self.integrity_clean {
                "passed"
            } else {
                "failed; the file was repaired"
            }
        )?;
        writeln!(
            f,
            "orders: {} ({} not yet indexed), index postings: {}",
            self.orders, self.unindexed, self.postings
        )?;
        if self.problem_count == 0 {
            return write!(f, "{}", if self.is_ok() { "OK" } else { "NOT OK" });
        }
        writeln!(f, "problems: {}", self.problem_count)?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        if self.problem_count > self.problems.len() as u64 {
            writeln!(
                f,
                "  - ... and {} more",
                self.problem_count - self.problems.len() as u64
            )?;
        }
        write!(f, "NOT OK")
    }
}

impl RedbStore {
    /// Checks the data file in `dir` in full: redb's integrity check (every
    /// page's checksum; it may repair the file as an unclean shutdown
    /// would), then every record decodes and is stored under its own id,
    /// and the trigram index holds exactly the postings of the stored
    /// orders, none missing and none extra. Needs the file to itself (the
    /// server must not be running on it); changes nothing else.
    ///
    /// `Err` when the file cannot be checked at all (missing, in use,
    /// corrupt beyond repair, newer format); problems in the data are in
    /// the report.
    // Over 80 lines on purpose: one pass over the file, table by table, in the order the report reads.
    pub fn verify(dir: &Path) -> Result<VerifyReport, OpenError> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Err(OpenError(format!(
                "there is no data file {}",
                path.display()
            )));
        }
        let mut db = builder(&RedbOptions::default())
            .open(&path)
            .map_err(|e| open_error(&path, e))?;
        let integrity_clean = db.check_integrity().map_err(|e| open_error(&path, e))?;
        let format_version = schema::read_version(&db, &path)?;
        if let Some(v) = format_version.filter(|v| *v > FORMAT_VERSION) {
            return Err(OpenError(format!(
                "the data file {} has format version {v}, newer than this program's \
                 format version {FORMAT_VERSION}",
                path.display()
            )));
        }
        let mut report = VerifyReport {
            path: path.clone(),
            format_version,
            integrity_clean,
            orders: 0,
            postings: 0,
            unindexed: 0,
            problem_count: 0,
            problems: Vec::new(),
        };
        if format_version.is_none() {
            return Ok(report);
        }
        let unreadable = |e: &dyn std::fmt::Display| {
            OpenError(format!("cannot read the data file {}: {e}", path.display()))
        };
        let txn = db.begin_read().map_err(|e| unreadable(&e))?;
        let orders = txn.open_table(ORDERS).map_err(|e| unreadable(&e))?;
        let indexed = format_version == Some(FORMAT_VERSION);
        let (postings, unindexed) = if indexed {
            let table = txn.open_table(POSTINGS).map_err(|e| unreadable(&e))?;
            // Counts the postings and checks every block's shape.
            let check = postings::for_each(&table, |_, _| Ok(())).map_err(|e| unreadable(&e))?;
            report.postings = check.postings;
            for problem in check.problems {
                report.problem(problem);
            }
            let unindexed = txn.open_table(UNINDEXED).map_err(|e| unreadable(&e))?;
            report.unindexed = unindexed.len().map_err(|e| unreadable(&e))?;
            (Some(table), Some(unindexed))
        } else {
            (None, None)
        };
        let is_unindexed = |id: &str| -> Result<bool, OpenError> {
            match &unindexed {
                Some(table) => Ok(table.get(id).map_err(|e| unreadable(&e))?.is_some()),
                None => Ok(false),
            }
        };
        // Every unindexed id is a stored order.
        if let Some(table) = &unindexed {
            for entry in table.iter().map_err(|e| unreadable(&e))? {
                let (id, _) = entry.map_err(|e| unreadable(&e))?;
                if orders
                    .get(id.value())
                    .map_err(|e| unreadable(&e))?
                    .is_none()
                {
                    report.problem(format!(
                        "order {:?} is listed as unindexed but not stored",
                        id.value()
                    ));
                }
            }
        }

        // Every order: decodes, under its own id, with all its postings.
        let mut expected = 0u64;
        let mut missing = 0u64;
        // Orders come in id order, so each trigram's lookups move forward
        // through its blocks: the last block read per trigram is kept.
        let mut last_block: HashMap<u64, Vec<String>> = HashMap::new();
        for entry in orders.iter().map_err(|e| unreadable(&e))? {
            let (id, bytes) = entry.map_err(|e| unreadable(&e))?;
            let id = id.value();
            report.orders += 1;
            let order = match schema::decode(&path, id, bytes.value()) {
                Ok(order) => order,
                Err(e) => {
                    report.problem(e.0);
                    continue;
                }
            };
            let Some(postings) = &postings else { continue };
            if is_unindexed(id)? {
                continue; // no postings yet: any it has are extra, found below
            }
            for t in rule::order_trigrams(&order) {
                expected += 1;
                let cached = last_block.get(&t).is_some_and(|ids| {
                    ids.first().is_some_and(|f| f.as_str() <= id)
                        && ids.last().is_some_and(|l| l.as_str() >= id)
                });
                let found = if cached {
                    last_block[&t]
                        .binary_search_by(|i| i.as_str().cmp(id))
                        .is_ok()
                } else {
                    let block = postings::block_of(postings, t, id).map_err(|e| unreadable(&e))?;
                    let found = block.binary_search_by(|i| i.as_str().cmp(id)).is_ok();
                    last_block.insert(t, block);
                    found
                };
                if !found {
                    missing += 1;
                    report.problem(format!(
                        "order {id:?} is missing from the index under {:?}",
                        rule::trigram_text(t)
                    ));
                }
            }
        }

        // No extra postings: the table holds (expected - missing) postings
        // that belong, so any beyond that are extra. Find them only if so.
        let Some(postings) = &postings else {
            return Ok(report);
        };
        let extra = (report.postings + missing).saturating_sub(expected);
        if extra > 0 {
            let mut last: Option<(String, BTreeSet<u64>)> = None;
            let mut extras = Vec::new();
            let found = postings::for_each(postings, |t, id| {
                if extras.len() as u64 == extra {
                    return Ok(());
                }
                if last.as_ref().is_none_or(|(l, _)| l != id) {
                    let stored = match unindexed.as_ref().map(|u| u.get(id)).transpose()? {
                        Some(Some(_)) => None,
                        _ => orders.get(id)?,
                    };
                    let trigrams = match stored {
                        Some(bytes) => match <Order as prost::Message>::decode(bytes.value()) {
                            Ok(order) => rule::order_trigrams(&order),
                            Err(_) => BTreeSet::new(), // reported above
                        },
                        None => BTreeSet::new(),
                    };
                    last = Some((id.to_owned(), trigrams));
                }
                if !last.as_ref().is_some_and(|(_, set)| set.contains(&t)) {
                    extras.push(format!(
                        "the index lists order {id:?} under {:?}, which it does not have",
                        rule::trigram_text(t)
                    ));
                }
                Ok(())
            });
            found.map_err(|e| unreadable(&e))?;
            for problem in extras {
                report.problem(problem);
            }
        }
        Ok(report)
    }
}
