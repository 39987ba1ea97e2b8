//! Process metrics, read from `/proc` when scraped (Linux; elsewhere they
//! are absent), and the build's identity.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The git commit the binary was built from: set `ORDER_GIT_COMMIT` when
/// building (`make build` does). No build script: the main package has none.
pub const GIT_COMMIT: &str = match option_env!("ORDER_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

pub(super) fn register(registry: &mut Registry) {
    let info = Family::<[(&'static str, &'static str); 2], Gauge>::default();
    info.get_or_create(&[
        ("version", env!("CARGO_PKG_VERSION")),
        ("git_commit", GIT_COMMIT),
    ])
    .set(1);
    registry.register(
        "order_management_build_info",
        "Always 1; the labels say which build is running",
        info,
    );
}

/// Resident memory in bytes (`/proc/self/statm`'s second field, in pages).
pub fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as i64)
}

/// Open file descriptors (entries of `/proc/self/fd`).
pub fn open_fds() -> Option<i64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of the entries.
    Some(entries.count() as i64 - 1)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_has_memory_and_descriptors() {
        assert!(super::resident_bytes().unwrap() > 1 << 20);
        assert!(super::open_fds().unwrap() >= 3);
    }
}
