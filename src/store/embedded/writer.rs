//! The writer: one thread that applies every write, in arrival order, in
//! groups that share one redb transaction and one disk sync.
//!
//! Calls queue their write on an unbounded channel (bounded in practice by
//! the server's admission limit) with a one-shot reply channel. The writer
//! takes the first waiting write and then everything else already waiting,
//! up to [`MAX_GROUP_WRITES`] writes or [`MAX_GROUP_BYTES`] of orders,
//! applies them in order to one write transaction, appends the group's
//! stored orders to the write-ahead log (one fdatasync; see `wal`),
//! commits the transaction with `Durability::None` (in memory), updates
//! the order cache, and only then answers each call. A group is a
//! *checkpoint* instead (committed with `Durability::Immediate`, not
//! logged) once [`super::RedbOptions::checkpoint_every`] has passed or
//! the log is full, and at shutdown. While it syncs, the next group
//! gathers.
//!
//! Per call, the semantics are those of a lone transaction:
//! - an insert of a taken id fails with `AlreadyExists`; the rest of its
//!   group goes on;
//! - an `update_all` is checked against the state the writes before it in
//!   the group left, and applied whole or not at all;
//! - a call whose caller is gone (its future dropped, so its reply channel
//!   closed) when its group starts is not applied;
//! - a call whose deadline has passed is not applied and gets
//!   `DeadlineExceeded`: deadlines are checked as each write is applied and
//!   again just before the commit; a write that expired in between is taken
//!   out by applying the group again without it. (A deadline that passes
//!   during the disk sync itself is too late to act on: the write is
//!   committed and its call answered `Ok`.)
//!
//! If the commit fails, every call of the group gets `Failed` naming the
//! file (`Exhausted` for a full disk) and nothing of the group is stored.
//! redb then refuses all further use of the open database (it latches the
//! I/O error until the file is reopened), so later writes are refused at
//! once, saying so, until `file_guard` has reopened the file (redb's
//! recovery brings it back to the last successful commit). After each
//! commit, before acknowledging, the writer checks that the path still
//! names the open file (`file_guard`): a deleted or replaced file answers
//! the group `Unavailable`, and every write after it. A panic
//! while applying a group fails that group's calls (nothing of it is
//! committed) and the writer goes on. If the writer thread ever stops,
//! every later call fails with a `Failed` that says so.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use redb::{Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::StoreError;
use super::schema::{self, Tables};
use super::wal::{self, Wal};
use crate::pb::Order;

/// A group closes once it holds this many writes...
pub(super) const MAX_GROUP_WRITES: usize = 1024;
/// ... or this many bytes of encoded orders (a single larger write, such
/// as a bulk load, is a group of its own).
pub(super) const MAX_GROUP_BYTES: usize = 8 << 20;

/// One write, as a call asked for it.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// A new order (`OrderStore::insert`).
    Insert(Order),
    /// Replace these existing orders, all or none (`OrderStore::update_all`).
    UpdateAll(Vec<Order>),
    /// Insert these new orders, all or none (`RedbStore::insert_many`).
    InsertMany(Vec<Order>),
}

impl Op {
    fn orders(&self) -> &[Order] {
        match self {
            Op::Insert(o) => std::slice::from_ref(o),
            Op::UpdateAll(os) | Op::InsertMany(os) => os,
        }
    }

    fn bytes(&self) -> usize {
        self.orders().iter().map(Message::encoded_len).sum()
    }
}

/// A write and the time by which it must be committed.
#[derive(Debug, Clone)]
pub(super) struct Write {
    pub op: Op,
    pub deadline: Option<Instant>,
}

pub(super) type Reply = oneshot::Sender<Result<(), StoreError>>;

/// A queued write and where to send its outcome.
pub(super) struct Request {
    pub write: Write,
    pub reply: Reply,
}

/// Applies one group's writes, in order, to `txn`; `now` decides which
/// deadlines have passed. Then, if `unindexed_limit` orders or more are
/// waiting to be indexed, or the group imported orders, indexes them (see
/// `schema`). Returns each
/// write's outcome; an `Err` is a storage failure, after which the
/// transaction must be abandoned.
///
/// A write that fails leaves nothing of itself: each is checked in full
/// before it changes anything.
pub(super) fn apply_group(
    txn: &WriteTransaction,
    writes: &[&Write],
    now: Instant,
    unindexed_limit: usize,
) -> Result<Vec<Result<(), StoreError>>, redb::Error> {
    let mut tables = Tables::open(txn)?;
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut imported = false;
    for write in writes {
        if write.deadline.is_some_and(|at| at <= now) {
            outcomes.push(Err(StoreError::DeadlineExceeded));
            continue;
        }
        let outcome = apply(&mut tables, &write.op)?;
        imported |= outcome.is_ok() && matches!(write.op, Op::InsertMany(_));
        outcomes.push(outcome);
    }
    // An import is indexed in its own group: its postings share blocks.
    tables.index_if_due(if imported { 1 } else { unindexed_limit })?;
    Ok(outcomes)
}

fn apply(tables: &mut Tables<'_>, op: &Op) -> Result<Result<(), StoreError>, redb::Error> {
    #[cfg(test)]
    if op.orders().iter().any(|o| o.id == tests::PANIC_ID) {
        panic!("test: a panic while applying a group");
    }
    match op {
        Op::Insert(order) => {
            if tables.exists(&order.id)? {
                return Ok(Err(StoreError::AlreadyExists(order.id.clone())));
            }
            tables.put_new(order)?;
        }
        Op::UpdateAll(orders) => {
            for order in orders {
                if !tables.exists(&order.id)? {
                    return Ok(Err(StoreError::NotFound(order.id.clone())));
                }
            }
            for order in orders {
                tables.put(order)?;
            }
        }
        Op::InsertMany(orders) => {
            let mut ids = std::collections::HashSet::with_capacity(orders.len());
            for order in orders {
                if !ids.insert(order.id.as_str()) || tables.exists(&order.id)? {
                    return Ok(Err(StoreError::AlreadyExists(order.id.clone())));
                }
            }
            for order in orders {
                tables.put_new(order)?;
            }
        }
    }
    Ok(Ok(()))
}

/// How far below the threads that serve calls the writer thread runs (nice).
///
/// Applying a group (orders, postings, the log) is CPU work on the same
/// cores as the runtime. At normal priority, under a flood of writes the
/// kernel shares a core between the two in slices of milliseconds, and a
/// getOrder waits for the writer's slice to end: a probe's p99 went from
/// 0.2 ms alone to 3.8 ms beside 1,000 writes in flight; at nice 10, 0.6 ms,
/// for 6% fewer writes per second (one core, `docs/bench/OVERLOAD.md`). When
/// the cores are not contended, priority changes nothing.
pub const WRITER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority by [`WRITER_NICE`]
/// (on Linux the nice value is per thread: the runtime's threads keep
/// theirs). Lowering needs no privilege; if it fails anyway, the writer
/// runs at normal priority and says so.
fn yield_cpu_to_reads() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: errno is this thread's; nice() changes this thread only.
        let failed = unsafe {
            *libc::__errno_location() = 0;
            libc::nice(WRITER_NICE) == -1 && *libc::__errno_location() != 0
        };
        if failed {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the store writer's priority; writes may delay reads under load"
            );
        }
    }
}

/// The queue side, held by the store.
pub(super) struct Writer {
    queue: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: String,
}

impl Writer {
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let (queue, requests) = mpsc::unbounded_channel();
        let path = shared.path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("order-store-writer".into())
            .spawn(move || {
                yield_cpu_to_reads();
                run(&shared, requests)
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            path,
        })
    }

    /// Queues `write` and waits for its outcome. Dropping the returned
    /// future before the write's group starts withdraws it.
    pub async fn submit(&self, write: Write) -> Result<(), StoreError> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || {
            StoreError::Failed(format!(
                "the writer of the data file {} has stopped (see the log); restart the server",
                self.path
            ))
        };
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(Request { write, reply })
            .map_err(|_| stopped())?;
        outcome.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The writer finishes what is queued, then sees the queue closed.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut state = State::for_store(shared);
    while let Some(first) = requests.blocking_recv() {
        let mut bytes = first.write.op.bytes();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_WRITES && bytes < MAX_GROUP_BYTES {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += next.write.op.bytes();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        process_group(shared, &mut state, group);
    }
    if state.wal.is_some() {
        final_checkpoint(shared);
    }
}

/// At shutdown: everything the log holds written into the data file, so
/// the next start has nothing to replay. (If this fails, the next start
/// replays the log instead.)
fn final_checkpoint(shared: &Shared) {
    let Ok(db) = shared.file.db() else { return };
    let done = (|| {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        // A change of its own, so the commit is not an empty one.
        let lsn = schema::current_lsn(&txn)?;
        schema::write_lsn(&txn, lsn)?;
        txn.commit()?;
        Ok::<_, redb::Error>(())
    })();
    if let Err(e) = done {
        tracing::warn!(
            "cannot checkpoint the data file {} at shutdown ({e}): the next start replays \
             its write-ahead log",
            shared.path.display()
        );
    }
}

/// What the writer remembers between groups: its write-ahead log and
/// when it last checkpointed. (Why writes are refused lives in the
/// store's `file_guard`, where health and the reopen see it too.)
pub(super) struct State {
    /// `None`: every group is a durable commit of its own.
    wal: Option<Wal>,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
}

impl Default for State {
    /// No log (tests use it to drive `process_group` group by group).
    fn default() -> Self {
        Self {
            wal: None,
            checkpoint_every: Duration::ZERO,
            last_checkpoint: Instant::now(),
        }
    }
}

impl State {
    /// The writer's state for `shared`'s file: its log opened, unless
    /// checkpoints are every group. A log that cannot be opened is
    /// logged, and the writer goes on without one (each group a durable
    /// commit): slower, never less safe.
    fn for_store(shared: &Shared) -> Self {
        let mut state = Self::default();
        if shared.checkpoint_every.is_zero() {
            return state;
        }
        let path = wal::path_for(&shared.path);
        match Wal::open(&path) {
            Ok(wal) => {
                state.wal = Some(wal);
                state.checkpoint_every = shared.checkpoint_every;
            }
            Err(e) => tracing::error!(
                "cannot open the write-ahead log {} ({e}): every group of writes is \
                 committed to the data file on its own instead (slower)",
                path.display()
            ),
        }
        state
    }

    /// Whether this group is a checkpoint: a durable redb commit.
    fn checkpoint_due(&self) -> bool {
        match &self.wal {
            None => true,
            Some(wal) => wal.is_full() || self.last_checkpoint.elapsed() >= self.checkpoint_every,
        }
    }
}

/// Applies, commits and answers one group (see the module docs).
// Over 80 lines on purpose: the order of its steps (apply, re-check deadlines, commit, update the cache, answer) is the writer's guarantee, kept in one place.
pub(super) fn process_group(shared: &Shared, state: &mut State, group: Vec<Request>) {
    // Callers that went away before their group started: not applied.
    let group: Vec<Request> = group.into_iter().filter(|r| !r.reply.is_closed()).collect();
    if group.is_empty() {
        return;
    }
    if let Some(refused) = shared.file.refusal() {
        return answer_all(group, &refused);
    }
    // Held to the end of the group: a reopen waits for it.
    let db = match shared.file.db() {
        Ok(db) => db,
        Err(e) => return answer_all(group, &e),
    };
    let writes: Vec<&Write> = group.iter().map(|r| &r.write).collect();
    let path = shared.path.display();
    let started = Instant::now();
    let mut applied_in;
    // Where a group's time goes, for the debug line below.
    let (mut logged_in, mut committed_in) = (Duration::ZERO, Duration::ZERO);
    // A checkpoint is a durable redb commit; any other group is made
    // durable by its log record, and committed to redb in memory.
    let checkpoint = state.checkpoint_due();
    let outcomes = loop {
        let applied = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut txn = db.begin_write()?;
            txn.set_durability(match checkpoint {
                true => Durability::Immediate,
                false => Durability::None,
            })?;
            let outcomes = apply_group(&txn, &writes, Instant::now(), shared.unindexed_limit)?;
            let lsn = schema::next_lsn(&txn)?;
            Ok::<_, redb::Error>((txn, outcomes, lsn))
        }));
        let (txn, outcomes, lsn) = match applied {
            Ok(Ok(applied)) => applied,
            Ok(Err(e)) => return answer_all(group, &shared.file.write_failed(e, false)),
            Err(panic) => {
                let what = crate::call::panic_message(panic.as_ref());
                let failed = format!(
                    "the writer of the data file {path} panicked applying a group of writes \
                     ({what}); none of them was written"
                );
                tracing::error!("{failed}");
                return answer_all(group, &StoreError::Failed(failed));
            }
        };
        // A write whose deadline passed while the group was applied must
        // not be committed: apply the group again without it.
        let now = Instant::now();
        applied_in = now - started;
        let expired = writes
            .iter()
            .zip(&outcomes)
            .any(|(w, o)| o.is_ok() && w.deadline.is_some_and(|at| at <= now));
        if expired {
            drop(txn); // aborts
            continue;
        }
        if !checkpoint && !outcomes.iter().any(Result::is_ok) {
            drop(txn); // nothing to store: nothing to log or commit
            break outcomes;
        }
        let logged = match (&mut state.wal, checkpoint) {
            (Some(wal), false) => {
                // Never logged for a file that is gone (see `file_guard`):
                // a restart would bring the group back.
                if let Err(gone) = shared.file.still_there() {
                    return answer_all(group, &gone);
                }
                let stored = writes
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.is_ok())
                    .flat_map(|(w, _)| w.op.orders());
                let appending = Instant::now();
                let appended = wal.append(lsn, &wal::payload(stored));
                logged_in = appending.elapsed();
                match appended {
                    Ok(at) => Some(at),
                    Err(e) => {
                        let e =
                            std::io::Error::new(e.kind(), format!("{}: {e}", wal.path().display()));
                        return answer_all(
                            group,
                            &shared.file.write_failed(redb::Error::Io(e), true),
                        );
                    }
                }
            }
            _ => None,
        };
        let committing = Instant::now();
        let committed = txn.commit();
        committed_in = committing.elapsed();
        if let Err(e) = committed {
            if let (Some(at), Some(wal)) = (logged, &mut state.wal)
                && let Err(e) = wal.retract(at)
            {
                tracing::error!(
                    "cannot take back the write-ahead log record of a group whose commit \
                     failed ({e}): after a restart, that group may be stored although its \
                     calls failed"
                );
            }
            return answer_all(group, &shared.file.write_failed(e.into(), true));
        }
        if checkpoint {
            if let Some(wal) = &mut state.wal {
                wal.restart();
            }
            state.last_checkpoint = Instant::now();
        }
        break outcomes;
    };
    crate::metrics::store::group_committed(writes.len(), started.elapsed());
    drop(db);
    tracing::debug!(
        writes = writes.len(),
        apply_us = applied_in.as_micros() as u64,
        log_us = logged_in.as_micros() as u64,
        commit_us = committed_in.as_micros() as u64,
        checkpoint,
        total_us = started.elapsed().as_micros() as u64,
        "committed a group"
    );
    // Committed: the cache gets the new versions before anyone hears of them.
    shared.cache.committed(
        group
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_ok())
            .flat_map(|(r, _)| match &r.write.op {
                Op::Insert(o) => std::slice::from_ref(o),
                Op::UpdateAll(os) => os.as_slice(),
                Op::InsertMany(_) => &[], // new ids: nothing cached to replace
            }),
    );
    // Acknowledged only if it is in the file the path names.
    let gone = shared.file.still_there().err();
    for (request, outcome) in group.into_iter().zip(outcomes) {
        let outcome = match &gone {
            Some(gone) => outcome.and(Err(gone.clone())),
            None => outcome,
        };
        let _ = request.reply.send(outcome);
    }
}

fn answer_all(group: Vec<Request>, error: &StoreError) {
    for request in group {
        let _ = request.reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
pub(super) mod tests {
    /// An order with this id makes `apply` panic (tests only).
    pub const PANIC_ID: &str = "panic-while-applying";

    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_thread_runs_below_the_threads_that_serve_calls() {
        let nice = |tid: libc::pid_t| {
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
            // After the command name's closing parenthesis, the nice value
            // is the 17th field.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse::<i32>().unwrap()
        };
        // SAFETY: this thread's own id.
        let here = unsafe { libc::gettid() };
        let ours = nice(here);
        let (mine, writer) = std::thread::spawn(move || {
            // SAFETY: this thread's own id.
            let tid = unsafe { libc::gettid() };
            let before = nice(tid);
            super::yield_cpu_to_reads();
            (before, nice(tid))
        })
        .join()
        .unwrap();
        assert_eq!(mine, ours);
        assert_eq!(
            writer,
            (mine + super::WRITER_NICE).min(19),
            "nice {mine} -> {writer}"
        );
        assert_eq!(nice(here), ours, "the other threads keep their priority");
    }
}
