//! Paths a write made stale: bounded in memory, persisted through the store.
//!
//! A write to `/repos/o/r/issues` makes every cached variant of that path
//! and of each collection above it stale. Paths are kept as 16-byte hashes
//! (a collision only makes an entry revalidate early), at most
//! [`MAX_RECORDS`] of them, each for at most the longest TTL an entry can
//! have; past the cap the oldest records fold into one watermark ("anything
//! stored before this instant is stale"), which errs on the safe side.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ghcache_store::Store;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Records kept in memory (~50 bytes each).
pub const MAX_RECORDS: usize = 65_536;
/// Deeper or longer paths are never cached, so writes to them need no
/// record beyond their first `MAX_DEPTH` ancestors.
pub const MAX_DEPTH: usize = 32;
pub const MAX_PATH_BYTES: usize = 2048;
/// The reserved record key holding the watermark.
const WATERMARK_KEY: [u8; 16] = [0; 16];

/// Whether a request path is within the bounds the cache handles.
pub fn cacheable_path(path: &str) -> bool {
    // Each segment but the last takes a `/` besides a byte of its own: a
    // path this short has at most `MAX_DEPTH` (and needs no count).
    path.len() < 2 * MAX_DEPTH + 1 || (path.len() <= MAX_PATH_BYTES && segments(path) <= MAX_DEPTH)
}

/// Non-empty `/`-separated segments: a byte that is not `/` and starts
/// the path or follows one (a byte loop: this runs on every request).
fn segments(path: &str) -> usize {
    let mut after_slash = true;
    let mut count = 0;
    for &b in path.as_bytes() {
        let slash = b == b'/';
        count += usize::from(!slash && after_slash);
        after_slash = slash;
    }
    count
}

/// The hash of a path (a prefix of a write's path).
fn key(path: &[u8]) -> [u8; 16] {
    let digest = Sha256::new_with_prefix(b"ghcache/invalidated-path/v1\0")
        .chain_update(path)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// A write to `/repos/o/r/issues/5/comments` changes that path and every
/// collection above it, down to `/repos/o`: at most `MAX_DEPTH` paths of at
/// most `MAX_PATH_BYTES` (longer ones are never cached, so need no record).
pub fn affected_paths(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_DEPTH)
        .collect();
    (2..=segments.len())
        .rev()
        .map(|n| format!("/{}", segments[..n].join("/")))
        .filter(|p| p.len() <= MAX_PATH_BYTES)
        .collect()
}

#[derive(Debug, Default)]
struct State {
    at: HashMap<[u8; 16], u64>,
    watermark: u64,
}

/// The write-invalidation record; one per proxy.
pub struct Invalidations {
    state: Mutex<State>,
    /// The latest time any record or the watermark holds: an entry stored
    /// after it cannot be invalidated, which hits learn without the lock.
    latest_ms: AtomicU64,
    store: Arc<Store>,
    /// Records older than this are useless: no entry is fresh that long.
    horizon_ms: u64,
}

impl std::fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidations")
            .field("records", &self.state.lock().at.len())
            .finish_non_exhaustive()
    }
}

impl Invalidations {
    /// Loads what the store persisted, dropping records past the horizon.
    pub fn load(store: Arc<Store>, horizon_ms: u64, now_ms: u64) -> Invalidations {
        let mut state = State::default();
        match store.invalidations() {
            Ok(records) => {
                for (k, at) in records {
                    if k == WATERMARK_KEY {
                        state.watermark = at;
                    } else if at.saturating_add(horizon_ms) >= now_ms {
                        state.at.insert(k, at);
                    } else {
                        store.remove_invalidation(k);
                    }
                }
            }
            Err(e) => {
                // Unknown past writes: everything held must revalidate once.
                tracing::warn!(error = %e, "cannot read the write-invalidation records; revalidating every held entry once");
                state.watermark = now_ms;
            }
        }
        let latest = state.at.values().copied().fold(state.watermark, u64::max);
        let this = Invalidations {
            latest_ms: AtomicU64::new(latest),
            state: Mutex::new(state),
            store,
            horizon_ms,
        };
        this.trim(now_ms);
        this
    }

    /// These paths were written (here or in the fleet; a peer's list is
    /// bounded the same way as our own).
    pub fn record(&self, paths: &[String], now_ms: u64) {
        let keys: Vec<[u8; 16]> = paths
            .iter()
            .filter(|p| cacheable_path(p))
            .take(MAX_DEPTH)
            .map(|p| key(p.trim_end_matches('/').as_bytes()))
            .collect();
        {
            let mut state = self.state.lock();
            for k in &keys {
                state.at.insert(*k, now_ms);
            }
            self.latest_ms.fetch_max(now_ms, Relaxed);
        }
        for k in keys {
            self.store.put_invalidation(k, now_ms);
        }
        self.trim(now_ms);
    }

    /// Was `path` invalidated at or after `stored_at_ms`?
    pub fn since(&self, path: &str, stored_at_ms: u64) -> bool {
        if self.latest_ms.load(Relaxed) < stored_at_ms {
            return false;
        }
        // Hashed before the lock, which every worker's hits take: it is
        // held only for the lookup, and once.
        let k = key(path.trim_end_matches('/').as_bytes());
        let state = self.state.lock();
        state.watermark >= stored_at_ms || state.at.get(&k).is_some_and(|at| *at >= stored_at_ms)
    }

    pub fn len(&self) -> usize {
        self.state.lock().at.len()
    }

    /// Keeps at most `MAX_RECORDS`: first drops records past the horizon,
    /// then folds the oldest half into the watermark.
    fn trim(&self, now_ms: u64) {
        let mut removed = Vec::new();
        let mut new_watermark = None;
        {
            let mut state = self.state.lock();
            if state.at.len() <= MAX_RECORDS {
                return;
            }
            let horizon = now_ms.saturating_sub(self.horizon_ms);
            state.at.retain(|k, at| {
                let keep = *at >= horizon;
                if !keep {
                    removed.push(*k);
                }
                keep
            });
            if state.at.len() > MAX_RECORDS {
                let mut times: Vec<u64> = state.at.values().copied().collect();
                times.sort_unstable();
                let cut = times[times.len() / 2];
                state.at.retain(|k, at| {
                    let keep = *at > cut;
                    if !keep {
                        removed.push(*k);
                    }
                    keep
                });
                state.watermark = state.watermark.max(cut);
                new_watermark = Some(state.watermark);
            }
        }
        if let Some(w) = new_watermark {
            self.store.put_invalidation(WATERMARK_KEY, w);
        }
        for k in removed {
            self.store.remove_invalidation(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_path_is_cacheable_as_its_segments_say() {
        // The densest paths (one byte a segment) around the length the
        // short cut trusts, with and without slashes at the ends.
        for len in 0..=2 * MAX_DEPTH + 8 {
            for unit in ["a/", "/a", "ab/", "/"] {
                for tail in ["", "/"] {
                    let path: String = unit.chars().cycle().take(len).chain(tail.chars()).collect();
                    assert_eq!(
                        cacheable_path(&path),
                        segments(&path) <= MAX_DEPTH,
                        "{path} ({} segments)",
                        segments(&path)
                    );
                }
            }
        }
    }

    #[test]
    fn writes_invalidate_their_collections() {
        assert_eq!(
            affected_paths("/repos/o/r/issues/5/comments"),
            [
                "/repos/o/r/issues/5/comments",
                "/repos/o/r/issues/5",
                "/repos/o/r/issues",
                "/repos/o/r",
                "/repos/o"
            ]
        );
    }

    #[test]
    fn a_huge_path_costs_a_bounded_number_of_records() {
        let path = "/a".repeat(30_000);
        assert!(affected_paths(&path).len() < MAX_DEPTH);
        assert!(!cacheable_path(&path));
        assert!(cacheable_path("/repos/o/r/contents/a/b/c"));
        let long = format!("/repos/o/{}", "x".repeat(5000));
        assert_eq!(affected_paths(&long), ["/repos/o"]);
    }

    #[test]
    fn segments_are_counted_as_split_counts_them() {
        for path in [
            "",
            "/",
            "//",
            "/a",
            "a",
            "/a/",
            "/a//b",
            "a/b/c",
            "///x///y///",
            "/é/ü",
        ] {
            let split = path.split('/').filter(|s| !s.is_empty()).count();
            assert_eq!(segments(path), split, "{path:?}");
        }
        let deepest = "/s".repeat(MAX_DEPTH);
        assert!(cacheable_path(&deepest));
        assert!(!cacheable_path(&format!("{deepest}/s")));
        assert!(cacheable_path(&format!("{deepest}//")));
    }

    #[test]
    fn the_cap_folds_old_records_into_a_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        let inv = Invalidations::load(store, u64::MAX / 4, 1);
        for i in 0..(MAX_RECORDS as u64 + 10) {
            inv.record(&[format!("/repos/o/r{i}")], 1000 + i);
        }
        assert!(inv.len() <= MAX_RECORDS);
        // Something stored before the oldest surviving record is stale now,
        // whatever its path.
        assert!(inv.since("/never/written", 1000));
        assert!(!inv.since("/never/written", 1000 + MAX_RECORDS as u64 + 100));
        assert!(inv.since(&format!("/repos/o/r{}", MAX_RECORDS), 1500));
    }

    #[test]
    fn records_survive_a_reopen_and_expire_past_the_horizon() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
            let inv = Invalidations::load(store.clone(), 10_000, 1);
            inv.record(&affected_paths("/repos/o/r/issues"), 5_000);
            store.flush();
        }
        let store = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        let inv = Invalidations::load(store.clone(), 10_000, 6_000);
        assert!(inv.since("/repos/o/r", 4_000));
        assert!(!inv.since("/repos/o/r", 5_001));
        let later = Invalidations::load(store, 10_000, 20_000);
        assert_eq!(later.len(), 0);
    }
}
