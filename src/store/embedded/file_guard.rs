//! The data file under the store, and what the store does when it is
//! missing, empty, a dangling link, deleted or replaced while open, or on a
//! disk that fills up.
//!
//! - **Opening** refuses a zero-length file (an existing file is never
//!   taken for a new store: something truncated it, or it is not ours) and
//!   a symbolic link whose target does not exist (it would create a new,
//!   empty store wherever the link points). A new file is created only
//!   where nothing exists (`O_CREAT|O_EXCL`).
//! - **Identity**: the device and inode of the file the store opened. After
//!   each group commit, before any write of it is acknowledged, the writer
//!   compares them with what the path names now (one `stat`, ~1 µs next to
//!   the commit's fsync). A file deleted or replaced while the server runs
//!   means every acknowledged write would be lost at the next start, so the
//!   group is answered UNAVAILABLE naming the file, and so is every write
//!   after it, until the path names the open file again (moved back).
//! - **Trouble**: why writes are refused now. Set by the writer (a failed
//!   commit, a disk that is full, the file gone); read by the writer, which
//!   refuses at once, and by `ready`, which turns health NOT_SERVING.
//! - **Reopening**: redb latches any I/O error ("Previous I/O error
//!   occurred. Please close and re-open the database."), so after a failed
//!   write the database is closed and opened again (never created: `open`,
//!   not `create`; and only if the path still names the same file). redb's
//!   recovery brings it back to its last commit. This is tried at most once
//!   per [`REOPEN_EVERY`], by the next write or by the health check, so a
//!   disk that has space again takes writes again without a restart.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use redb::Database;
use redb::backends::FileBackend;

use super::{OpenError, RedbOptions, builder, open_error};
use crate::store::StoreError;

/// How often a store whose writes failed tries to reopen its file.
pub(super) const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Which file the store has open: device and inode (`None` where the
/// platform has no such thing: no check there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity(Option<(u64, u64)>);

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self(Some((meta.dev(), meta.ino())))
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Self(None)
        }
    }
}

/// Why writes are refused now.
#[derive(Debug, Clone)]
enum Trouble {
    /// The path no longer names the open file.
    Gone(String),
    /// The disk is full; reopen when there is space again.
    Full(String),
    /// Another I/O failure; reopen (redb latched it).
    Failed(String),
}

impl Trouble {
    fn error(&self) -> StoreError {
        match self {
            Trouble::Gone(why) => StoreError::Unavailable(why.clone()),
            Trouble::Full(why) => StoreError::Exhausted(why.clone()),
            Trouble::Failed(why) => StoreError::Failed(why.clone()),
        }
    }
}

/// The open database and everything about its file (see the module docs).
pub(super) struct DataFile {
    path: PathBuf,
    page_cache_bytes: usize,
    /// `None` only while a reopen is under way or after one failed.
    db: RwLock<Option<Database>>,
    identity: Mutex<Identity>,
    trouble: Mutex<Option<Trouble>>,
    /// redb latched an I/O error: reopen before any other use.
    poisoned: AtomicBool,
    last_reopen: Mutex<Option<Instant>>,
}

/// The open database, for as long as this guard lives (a reopen waits).
pub(super) struct Db<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Db<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0.as_ref().expect("checked by DataFile::db")
    }
}

/// Opens (creating only where nothing exists) `path` as a redb database,
/// refusing an empty file and a dangling link; returns it with the
/// identity of the file opened.
pub(super) fn open(path: &Path, options: &RedbOptions) -> Result<DataFile, OpenError> {
    let shown = path.display();
    let new_file = |file: std::io::Result<File>| file.map(|f| (f, true));
    let old_file = |file: std::io::Result<File>| file.map(|f| (f, false));
    let (file, created) = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_file(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path),
        ),
        Err(e) => return Err(OpenError(format!("cannot read the data file {shown}: {e}"))),
        Ok(link) if link.file_type().is_symlink() && !path.exists() => {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|e| format!("? ({e})"));
            return Err(OpenError(format!(
                "the data file {shown} is a symbolic link to {target}, which does not exist; \
                 the server does not create a store through a dangling link: restore the \
                 target or remove the link to start a new store"
            )));
        }
        Ok(_) => old_file(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path),
        ),
    }
    .map_err(|e| OpenError(format!("cannot open the data file {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| OpenError(format!("cannot read the data file {shown}: {e}")))?;
    if meta.len() == 0 && !created {
        return Err(OpenError(format!(
            "the data file {shown} is empty (0 bytes): it is not a store, and the server \
             does not start a new store over an existing file; restore it from a backup, \
             or remove it to start a new store"
        )));
    }
    let db = database(file, options).map_err(|e| open_error(path, e))?;
    Ok(DataFile {
        path: path.to_owned(),
        page_cache_bytes: options.page_cache_bytes,
        db: RwLock::new(Some(db)),
        identity: Mutex::new(Identity::of(&meta)),
        trouble: Mutex::new(None),
        poisoned: AtomicBool::new(false),
        last_reopen: Mutex::new(None),
    })
}

fn database(file: File, options: &RedbOptions) -> Result<Database, redb::DatabaseError> {
    builder(options).create_with_backend(FileBackend::new(file)?)
}

impl DataFile {
    /// A data file over an already opened database (tests put a failing
    /// storage backend under the store this way).
    #[cfg(test)]
    pub(super) fn over(db: Database, path: PathBuf, options: &RedbOptions) -> Self {
        let identity = std::fs::metadata(&path).map_or(Identity(None), |m| Identity::of(&m));
        Self {
            path,
            page_cache_bytes: options.page_cache_bytes,
            db: RwLock::new(Some(db)),
            identity: Mutex::new(identity),
            trouble: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            last_reopen: Mutex::new(None),
        }
    }

    /// The open database, or why there is none now. Never waits for a
    /// reopen (redb's recovery may read the whole file): a read during one
    /// is answered UNAVAILABLE at once.
    pub(super) fn db(&self) -> Result<Db<'_>, StoreError> {
        let reopening = || {
            StoreError::Unavailable(format!(
                "the data file {} is being reopened; retry",
                self.path.display()
            ))
        };
        let guard = match self.db.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(reopening()),
        };
        if guard.is_some() {
            return Ok(Db(guard));
        }
        Err(self.trouble().map_or_else(reopening, |t| t.error()))
    }

    fn trouble(&self) -> Option<Trouble> {
        self.trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_trouble(&self, trouble: Option<Trouble>) {
        *self.trouble.lock().unwrap_or_else(|e| e.into_inner()) = trouble;
    }

    /// Why writes are refused now, after trying to end it (reopening the
    /// file, at most once per [`REOPEN_EVERY`]); `None` when they are not.
    pub(super) fn refusal(&self) -> Option<StoreError> {
        let trouble = self.trouble()?;
        // Reopened as soon as it can be, full disk or not: redb's latch
        // fails reads too (recovery needs no free space).
        if self.poisoned.load(Ordering::Acquire) && self.try_reopen() {
            self.poisoned.store(false, Ordering::Release);
        }
        let poisoned = self.poisoned.load(Ordering::Acquire);
        let cleared = match trouble {
            Trouble::Gone(_) => {
                self.identity_check().is_ok() && self.db.read().is_ok_and(|d| d.is_some())
            }
            // Writes wait for room: health says NOT_SERVING until then.
            Trouble::Full(_) => !poisoned && self.has_room(),
            Trouble::Failed(_) => !poisoned,
        };
        if cleared {
            tracing::info!("the data file {} takes writes again", self.path.display());
            self.set_trouble(None);
            return None;
        }
        self.trouble().map(|t| t.error())
    }

    /// Whether the path still names the file the store has open; if not,
    /// writes are refused from now on (see the module docs).
    pub(super) fn still_there(&self) -> Result<(), StoreError> {
        let Err(what) = self.identity_check() else {
            return Ok(());
        };
        let why = format!(
            "the data file {} was {what} while the server ran; writes are refused, since \
             they would be lost at the next start (put the file back, or restart the server \
             after restoring it from a backup)",
            self.path.display()
        );
        tracing::error!("{why}");
        self.set_trouble(Some(Trouble::Gone(why.clone())));
        Err(StoreError::Unavailable(why))
    }

    /// What happened to the file if the path no longer names it.
    fn identity_check(&self) -> Result<(), &'static str> {
        let now = std::fs::metadata(&self.path).map(|m| Identity::of(&m));
        let opened = *self.identity.lock().unwrap_or_else(|e| e.into_inner());
        match now {
            Ok(now) if now == opened => Ok(()),
            Ok(_) => Err("replaced by another file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("deleted"),
            Err(_) => Err("made unreadable"),
        }
    }

    /// Records why a write failed; returns the error its calls get. An I/O
    /// failure makes the database unusable until reopened (redb's latch).
    pub(super) fn write_failed(&self, e: redb::Error, committing: bool) -> StoreError {
        let path = self.path.display();
        let step = if committing { "commit to" } else { "write to" };
        let nothing = "nothing of this group of writes was stored";
        let trouble = match &e {
            redb::Error::Io(io) if disk_full(io) => Trouble::Full(format!(
                "the disk holding the data file {path} is full ({io}); {nothing}; writes \
                 resume by themselves once space is freed"
            )),
            redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
                Trouble::Failed(format!(
                    "cannot {step} the data file {path}: {e}; {nothing}; the file is reopened \
                     (redb recovers it to its last commit) before the next write"
                ))
            }
            // Not an I/O failure: this group only.
            _ => {
                let failed = format!("cannot {step} the data file {path}: {e}; {nothing}");
                tracing::error!("{failed}");
                return StoreError::Failed(failed);
            }
        };
        let error = trouble.error();
        tracing::error!("{error}");
        self.poisoned.store(true, Ordering::Release);
        self.set_trouble(Some(trouble));
        error
    }

    /// Closes and reopens the database if the path still names its file;
    /// whether it is open and usable now.
    fn try_reopen(&self) -> bool {
        {
            let mut last = self.last_reopen.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < REOPEN_EVERY) {
                return false;
            }
            *last = Some(Instant::now());
        }
        if self.still_there().is_err() {
            return false; // now Gone: not reopened until the file is back
        }
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        // Closed first: the file's locks must be free for the new handle.
        drop(slot.take());
        let options = RedbOptions {
            page_cache_bytes: self.page_cache_bytes,
            ..RedbOptions::default()
        };
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(redb::DatabaseError::from)
            .and_then(|file| {
                let identity = file.metadata().map(|m| Identity::of(&m))?;
                let same = identity == *self.identity.lock().unwrap_or_else(|e| e.into_inner());
                if !same {
                    return Err(std::io::Error::other("the path names another file now").into());
                }
                // Never a new store over the old one (redb would take an
                // empty file for one).
                if file.metadata()?.len() == 0 {
                    return Err(std::io::Error::other("the file is empty now").into());
                }
                database(file, &options)
            })
            .and_then(|db| {
                // redb recovered its last durable commit; the groups after
                // it are in the write-ahead log (see `wal`). Replayed
                // before any read can see the file without them.
                let (groups, _) = super::wal::recover(&db, &self.path, false)
                    .map_err(|e| redb::DatabaseError::from(std::io::Error::other(e)))?;
                if groups > 0 {
                    tracing::info!(
                        "reopened {}: replayed {groups} groups of writes from its write-ahead log",
                        self.path.display()
                    );
                }
                Ok(db)
            });
        match reopened {
            Ok(db) => {
                *slot = Some(db);
                true
            }
            Err(e) => {
                tracing::warn!(
                    "cannot reopen the data file {} yet ({e}); trying again in {REOPEN_EVERY:?}",
                    self.path.display()
                );
                false
            }
        }
    }
}

impl DataFile {
    /// Whether the file's file system has [`ROOM_TO_RESUME`] free (for
    /// an unprivileged user); `true` where that cannot be asked.
    fn has_room(&self) -> bool {
        let Some(dir) = self.path.parent() else {
            return true;
        };
        free_bytes(dir).is_none_or(|free| free >= ROOM_TO_RESUME)
    }
}

/// Free space that ends a "disk full": writes are tried again (a larger
/// group may fill it again, and is refused the same way).
pub(super) const ROOM_TO_RESUME: u64 = 1 << 20;

#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `dir` is a NUL-terminated path; `stat` is written by the call
    // and read only when it succeeded.
    let stat = unsafe {
        if libc::statvfs(dir.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// ENOSPC or EDQUOT: the disk (or the user's quota on it) is full.
fn disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
