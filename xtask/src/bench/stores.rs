//! The bulk-loaded stores the store-size series (and the searchOrders
//! stream) run on: written by the release `examples/bulk_load`, once, and
//! kept under `target/bench/stores/N/` for the runs after, since a store
//! of a million orders takes a while to load.
//!
//! A store counts as valid only while `N/store.json` is there and names
//! the same key: the git trees of `src/store/` and of the example, and
//! redb's version (a change to any may change the file format or its
//! contents). With `src/store/` or the example modified but not committed
//! there is no key: every run loads its stores afresh.
//!
//! The marker is removed while a server has the store open and written
//! back once it has stopped cleanly: a store left open by a killed run
//! (which would need redb's crash recovery, and time it as start-up) is
//! loaded again by the next run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::machine;
use super::process::{self, Proc, Stderr, run};
use super::results::StoreFile;

const MARKER: &str = "store.json";

/// What `store.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Marker {
    key: String,
    orders: usize,
    bytes: u64,
    load_seconds: f64,
    loaded_at: String,
}

/// The store cache of one run.
pub struct Stores {
    /// `target/bench/stores`.
    dir: PathBuf,
    bulk_load: PathBuf,
    /// None: nothing is reused (see the module's doc).
    pub key: Option<String>,
}

impl Stores {
    pub fn new(root: &Path, target: &Path, bulk_load: PathBuf, work: &Path) -> Self {
        Self {
            dir: target.join("bench/stores"),
            bulk_load,
            key: store_key(root, work),
        }
    }

    /// The store of `orders` orders: the cached one if valid, else loaded
    /// now.
    pub fn get(&self, orders: usize, work: &Path) -> Result<StoreFile> {
        let home = self.dir.join(orders.to_string());
        let data = home.join("data");
        if let Some(marker) = self.valid_marker(&home, orders) {
            return Ok(StoreFile {
                orders,
                dir: data,
                bytes: marker.bytes,
                load_seconds: marker.load_seconds,
                loaded_now: false,
                loaded_at: marker.loaded_at,
            });
        }
        if home.exists() {
            std::fs::remove_dir_all(&home)
                .with_context(|| format!("cannot remove {}", home.display()))?;
        }
        std::fs::create_dir_all(&home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        let started = Instant::now();
        bulk_load(&self.bulk_load, &data, orders, work)?;
        let load_seconds = started.elapsed().as_secs_f64();
        let store = StoreFile {
            orders,
            bytes: dir_bytes(&data),
            dir: data,
            load_seconds,
            loaded_now: true,
            loaded_at: machine::date(work),
        };
        self.check_in(&store)?;
        Ok(store)
    }

    fn valid_marker(&self, home: &Path, orders: usize) -> Option<Marker> {
        let key = self.key.as_ref()?;
        let text = std::fs::read_to_string(home.join(MARKER)).ok()?;
        let marker: Marker = serde_json::from_str(&text).ok()?;
        let data = home.join("data");
        let whole = marker.key == *key
            && marker.orders == orders
            && std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some());
        whole.then_some(marker)
    }

    /// The store is about to be opened by a server: not valid until
    /// [`Stores::check_in`].
    pub fn check_out(&self, store: &StoreFile) -> Result<()> {
        let marker = store.dir.with_file_name(MARKER);
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", marker.display()))
            }
            _ => Ok(()),
        }
    }

    /// The store is whole and closed: valid for the next run (when there
    /// is a key).
    pub fn check_in(&self, store: &StoreFile) -> Result<()> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let marker = Marker {
            key: key.clone(),
            orders: store.orders,
            bytes: store.bytes,
            load_seconds: store.load_seconds,
            loaded_at: store.loaded_at.clone(),
        };
        let path = store.dir.with_file_name(MARKER);
        let text = serde_json::to_string_pretty(&marker).expect("plain data serializes");
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The key a cached store must carry: None if git cannot say, or if
/// `src/store/` or the example has changes not committed.
fn store_key(root: &Path, work: &Path) -> Option<String> {
    const PATHS: [&str; 2] = ["src/store", "examples/bulk_load.rs"];
    let git = |args: &[&str]| -> Option<String> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(root).args(args);
        let done = run("git", &mut cmd, Duration::from_secs(30), work).ok()?;
        done.status.success().then(|| done.stdout.trim().to_owned())
    };
    let status = git(&[&["status", "--porcelain", "--"][..], &PATHS].concat())?;
    if !status.is_empty() {
        return None;
    }
    let trees: Vec<String> = PATHS
        .iter()
        .map(|p| git(&["rev-parse", &format!("HEAD:{p}")]).map(|h| format!("{p} {h}")))
        .collect::<Option<_>>()?;
    let redb = machine::lock_version(root, "redb").unwrap_or_else(|| "?".into());
    Some(format!("{}, redb {redb}", trees.join(", ")))
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// `examples/bulk_load --data-dir DIR --count N`, unpinned (set-up, not a
/// measurement).
pub fn bulk_load(binary: &Path, data: &Path, orders: usize, work: &Path) -> Result<()> {
    let mut cmd = Command::new(binary);
    cmd.arg("--data-dir")
        .arg(data)
        .args(["--count", &orders.to_string()]);
    let line = process::render(&cmd);
    // A generous bound: 10M orders take a long while.
    let limit = Duration::from_secs(600 + orders as u64 / 1000);
    let done = Proc::spawn("bulk-load", &mut cmd, limit, work, Stderr::File)?.wait()?;
    if !done.status.success() {
        bail!("`{line}` failed ({}):\n{}", done.status, done.tail());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, orders: usize) -> StoreFile {
        StoreFile {
            orders,
            dir: dir.join(orders.to_string()).join("data"),
            bytes: 3,
            load_seconds: 1.5,
            loaded_now: true,
            loaded_at: "today".into(),
        }
    }

    #[test]
    fn a_store_is_valid_only_checked_in_under_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores {
            dir: dir.path().to_path_buf(),
            bulk_load: PathBuf::from("/nonexistent"),
            key: Some("k1".into()),
        };
        let s = store(dir.path(), 10);
        std::fs::create_dir_all(&s.dir).unwrap();
        std::fs::write(s.dir.join("orders.redb"), "abc").unwrap();
        let home = dir.path().join("10");
        assert!(stores.valid_marker(&home, 10).is_none());
        stores.check_in(&s).unwrap();
        let cached = stores.get(10, dir.path()).unwrap();
        assert!(!cached.loaded_now);
        assert_eq!((cached.bytes, cached.load_seconds), (3, 1.5));
        assert!(stores.valid_marker(&home, 11).is_none());
        stores.check_out(&s).unwrap();
        assert!(stores.valid_marker(&home, 10).is_none());
        stores.check_out(&s).unwrap();
        stores.check_in(&s).unwrap();
        let other = Stores {
            key: Some("k2".into()),
            ..stores
        };
        assert!(other.valid_marker(&home, 10).is_none());
        let none = Stores { key: None, ..other };
        assert!(none.valid_marker(&home, 10).is_none());
        assert_eq!(
            dir_bytes(dir.path()),
            3 + std::fs::metadata(home.join(MARKER)).unwrap().len()
        );
    }

    #[test]
    fn the_key_names_the_store_code() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::project_root();
        // A checkout with src/store/ modified has none; else it names both paths.
        if let Some(key) = store_key(&root, dir.path()) {
            assert!(
                key.starts_with("src/store ") && key.contains(", redb "),
                "{key}"
            );
        }
        assert_eq!(store_key(dir.path(), dir.path()), None);
    }
}
