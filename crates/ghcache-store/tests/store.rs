#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{body, meta_for, rid};
use ghcache_core::{ContentId, Partition, PartitionSecret};
use ghcache_store::{Store, StoreConfig, StoreError};

fn partitions(n: usize) -> Vec<Partition> {
    let s = PartitionSecret::generate();
    (0..n)
        .map(|i| s.partition_for(Some(&format!("token t{i}"))))
        .collect()
}

#[test]
fn put_get_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let p = partitions(1)[0];
    let b = body(1, 500);
    store.put(rid(1), p, meta_for(&b), b.clone()).unwrap();
    let hit = store.get(&rid(1), &p).unwrap();
    assert_eq!(hit.body, b);
    assert_eq!(hit.meta.status, 200);
    assert_eq!(hit.meta.body_len, 500);
    assert!(hit.meta.last_access_ms > 0);
    assert!(store.get(&rid(1), &Partition::Anonymous).is_none());
    assert!(store.get(&rid(2), &p).is_none());
    assert!(store.contains_blob(&ContentId::of(&b)));
    assert_eq!(store.get_blob(&ContentId::of(&b)), Some(b.clone()));
    store.flush();
    let st = store.stats();
    assert_eq!((st.entries, st.bytes), (1, 500));
    assert_eq!(st.path, Some(dir.path().join("store.redb")));
    assert!(!st.degraded);
}

#[test]
fn put_rejects_wrong_cid_and_oversized() {
    let store = Store::open(
        std::path::Path::new("/nonexistent"),
        StoreConfig {
            persistence: false,
            max_bytes: 100,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let b = body(1, 50);
    let err = store
        .put(rid(1), Partition::Anonymous, meta_for(b"other"), b)
        .unwrap_err();
    assert!(matches!(err, StoreError::BodyMismatch { .. }), "{err}");
    let big = body(2, 200);
    let err = store
        .put(rid(2), Partition::Anonymous, meta_for(&big), big)
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert_eq!(store.stats().entries, 0);
    assert_eq!(store.stats().path, None);
}

#[test]
fn dedup_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let ps = partitions(3);
    let b = body(7, 4000);
    for p in &ps {
        store.put(rid(7), *p, meta_for(&b), b.clone()).unwrap();
    }
    let other = body(8, 1000);
    store
        .put(rid(8), ps[0], meta_for(&other), other.clone())
        .unwrap();
    store.flush();
    let st = store.stats();
    assert_eq!(st.entries, 4);
    assert_eq!(st.bytes, 5000, "shared body counted once");

    // Removing two of the three holders keeps the blob for the third.
    store.remove(&rid(8));
    // Replace two partitions' entries with another body: their refs go.
    for p in &ps[..2] {
        store
            .put(rid(7), *p, meta_for(&other), other.clone())
            .unwrap();
    }
    assert!(store.contains_blob(&ContentId::of(&b)));
    assert_eq!(store.get(&rid(7), &ps[2]).unwrap().body, b);
    assert_eq!(store.get(&rid(7), &ps[0]).unwrap().body, other);
    store.flush();
    assert_eq!(store.stats().bytes, 5000);

    // After the last holder goes, so does the blob.
    store.remove(&rid(7));
    assert!(!store.contains_blob(&ContentId::of(&b)));
    assert_eq!(store.stats().bytes, 0);
    assert_eq!(store.stats().entries, 0);

    // And the file agrees after reopening.
    drop(store);
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.stats().entries, 0);
    assert_eq!(store.stats().bytes, 0);
    assert_eq!(store.stats().corrupt_dropped, 0);
}

#[test]
fn dedup_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ps = partitions(3);
    let b = body(9, 3000);
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for p in &ps {
            store.put(rid(9), *p, meta_for(&b), b.clone()).unwrap();
        }
    }
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.stats().entries, 3);
    assert_eq!(store.stats().bytes, 3000);
    // Remove two holders through replacement; blob stays for the third.
    for p in &ps[..2] {
        let o = body(10, 10);
        store.put(rid(9), *p, meta_for(&o), o).unwrap();
    }
    assert_eq!(store.get(&rid(9), &ps[2]).unwrap().body, b);
}

#[test]
fn eviction_by_entries_is_lru() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_entries: 10,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), cfg).unwrap();
    let p = Partition::Anonymous;
    for n in 0..10 {
        let b = body(n, 100);
        store.put(rid(n), p, meta_for(&b), b).unwrap();
    }
    store.flush();
    assert_eq!(store.stats().evictions, 0);
    // Touch 0 and 1 so 2 becomes the least recently used.
    assert!(store.get(&rid(0), &p).is_some());
    assert!(store.get(&rid(1), &p).is_some());
    let b = body(10, 100);
    store.put(rid(10), p, meta_for(&b), b).unwrap();
    store.flush();
    let st = store.stats();
    assert!(st.entries <= 10, "{st:?}");
    assert!(st.evictions >= 1);
    assert!(store.get(&rid(2), &p).is_none(), "LRU entry evicted");
    for n in [0, 1, 10] {
        assert!(store.get(&rid(n), &p).is_some(), "recent entry {n} kept");
    }
    // Evicted entries stay gone after reopen.
    drop(store);
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(store.get(&rid(2), &p).is_none());
    assert_eq!(store.stats().entries, st.entries);
}

#[test]
fn eviction_by_bytes_is_lru() {
    let store = Store::open(
        std::path::Path::new("/unused"),
        StoreConfig {
            // Five 2,000-byte bodies plus their metadata (counted too).
            max_bytes: 12_000,
            persistence: false,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let p = Partition::Anonymous;
    for n in 0..5 {
        let b = body(n, 2000);
        store.put(rid(n), p, meta_for(&b), b).unwrap();
    }
    store.flush();
    assert_eq!(store.stats().bytes, 10_000);
    assert_eq!(store.stats().evictions, 0);
    assert!(store.get(&rid(0), &p).is_some()); // 1 is now the oldest
    let b = body(5, 3000);
    store.put(rid(5), p, meta_for(&b), b).unwrap();
    store.flush();
    let st = store.stats();
    assert!(st.bytes + st.meta_bytes <= 12_000, "{st:?}");
    assert!(store.get(&rid(1), &p).is_none(), "oldest evicted");
    assert!(store.get(&rid(0), &p).is_some(), "touched entry kept");
    assert!(store.get(&rid(5), &p).is_some(), "new entry kept");
}

#[test]
fn persistence_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ps = partitions(2);
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for n in 0..200 {
            let b = body(n, 300 + n as usize);
            store
                .put(rid(n), ps[(n % 2) as usize], meta_for(&b), b)
                .unwrap();
        }
        store.mark_stale(&rid(3));
    } // drop = clean shutdown, flushes
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.stats().entries, 200);
    for n in 0..200 {
        let hit = store.get(&rid(n), &ps[(n % 2) as usize]).unwrap();
        assert_eq!(hit.body, body(n, 300 + n as usize));
        assert!(hit.meta.body_cid.verify(&hit.body));
        assert_eq!(hit.meta.stale, n == 3);
        assert_eq!(
            hit.meta.headers.get_str("content-type"),
            Some("application/json")
        );
    }
}

#[test]
fn cold_bodies_are_read_back_from_disk() {
    // The hot layer holds a quarter of max_bytes, so most bodies leave memory.
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_bytes: 200_000,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), cfg).unwrap();
    for n in 0..150 {
        let b = body(n, 1000);
        store
            .put(rid(n), Partition::Anonymous, meta_for(&b), b)
            .unwrap();
    }
    store.flush();
    let st = store.stats();
    assert!(st.resident_bytes <= 50_000, "{st:?}");
    assert_eq!(st.bytes, 150_000);
    for n in 0..150 {
        let hit = store.get(&rid(n), &Partition::Anonymous).unwrap();
        assert_eq!(hit.body, body(n, 1000));
    }
}

#[test]
fn mark_stale_affects_all_partitions() {
    let store = Store::open(
        std::path::Path::new("/unused"),
        StoreConfig {
            persistence: false,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let ps = partitions(3);
    for (i, p) in ps.iter().enumerate() {
        let b = body(i as u64, 100);
        store.put(rid(1), *p, meta_for(&b), b).unwrap();
    }
    let b = body(99, 100);
    store.put(rid(2), ps[0], meta_for(&b), b).unwrap();
    store.mark_stale(&rid(1));
    for p in &ps {
        assert!(store.get(&rid(1), p).unwrap().meta.stale);
    }
    assert!(!store.get(&rid(2), &ps[0]).unwrap().meta.stale);
    assert_eq!(store.remove(&rid(1)), 3);
    for p in &ps {
        assert!(store.get(&rid(1), p).is_none());
    }
}

#[test]
fn get_any_prefers_most_recently_stored() {
    let store = Store::open(
        std::path::Path::new("/unused"),
        StoreConfig {
            persistence: false,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    assert!(store.get_any(&rid(1)).is_none());
    let ps = partitions(3);
    for (i, p) in ps.iter().enumerate() {
        let b = body(i as u64, 100);
        store.put(rid(1), *p, meta_for(&b), b).unwrap();
    }
    let (p, hit) = store.get_any(&rid(1)).unwrap();
    assert_eq!(p, ps[2]);
    assert_eq!(hit.body, body(2, 100));
    // Re-storing under the first partition makes it the newest.
    let b = body(50, 100);
    store.put(rid(1), ps[0], meta_for(&b), b.clone()).unwrap();
    let (p, hit) = store.get_any(&rid(1)).unwrap();
    assert_eq!((p, hit.body), (ps[0], b));
}

#[test]
fn corrupt_file_is_refused_untouched_then_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();

    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("mv "), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "file untouched");

    let store = Store::open_recovering(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.stats().entries, 0);
    let b = body(1, 10);
    store
        .put(rid(1), Partition::Anonymous, meta_for(&b), b)
        .unwrap();
    store.flush();
    let moved: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store.redb.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&moved[0])).unwrap(),
        garbage,
        "quarantined file kept byte for byte"
    );
}

#[test]
fn foreign_redb_file_and_newer_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let t: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("other_app");
            let mut t = w.open_table(t).unwrap();
            t.insert("x", 1).unwrap();
        }
        w.commit().unwrap();
    }
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("other_app"), "{err}");
    std::fs::remove_file(&path).unwrap();

    // A store written by a future format version.
    drop(Store::open(dir.path(), StoreConfig::default()).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let t: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("ghcache_meta");
            let mut t = w.open_table(t).unwrap();
            t.insert("format_version", 99u32.to_be_bytes().as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerVersion { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer ghcache"), "{err}");
}

#[test]
fn second_open_of_same_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[test]
fn corrupted_blob_on_disk_is_dropped_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let ps = partitions(2);
    let b = body(1, 2000);
    let cid = ContentId::of(&b);
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for p in &ps {
            store.put(rid(1), *p, meta_for(&b), b.clone()).unwrap();
        }
        let ok = body(2, 100);
        store.put(rid(2), ps[0], meta_for(&ok), ok).unwrap();
    }
    {
        // Flip the stored body behind the store's back.
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let t: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("blobs");
            let mut t = w.open_table(t).unwrap();
            t.insert(cid.digest().as_slice(), b"tampered".as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(store.get(&rid(1), &ps[0]).is_none(), "never served");
    assert!(store.get(&rid(1), &ps[1]).is_none());
    assert_eq!(store.stats().corrupt_dropped, 2);
    assert!(!store.contains_blob(&cid));
    assert!(store.get(&rid(2), &ps[0]).is_some(), "others unaffected");
    // A fresh put of the real body works again.
    store.put(rid(1), ps[0], meta_for(&b), b.clone()).unwrap();
    assert_eq!(store.get(&rid(1), &ps[0]).unwrap().body, b);
    let _ = Bytes::new();
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Store>();
    check::<std::sync::Arc<Store>>();
}

/// Cached private responses are readable by the daemon's user only: the
/// directory is created 0700, the file 0600, and an existing file readable by
/// others is narrowed at open with its content kept.
#[cfg(unix)]
#[test]
fn store_directory_and_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let b = body(1, 100);
    {
        let store = Store::open(&dir, StoreConfig::default()).unwrap();
        store
            .put(rid(1), Partition::Anonymous, meta_for(&b), b.clone())
            .unwrap();
        store.flush();
    }
    assert_eq!(mode(&dir), 0o700);
    let file = dir.join("store.redb");
    assert_eq!(mode(&file), 0o600);
    // As an older ghcache left it.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&dir, StoreConfig::default()).unwrap();
    assert_eq!(mode(&file), 0o600);
    assert_eq!(store.get(&rid(1), &Partition::Anonymous).unwrap().body, b);
}

#[test]
fn entries_of_the_old_header_format_are_dropped_at_open_as_misses() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::Anonymous;
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let old = body(1, 100);
        // As an older version wrote it: a few headers, no `head_format`.
        let json = serde_json::to_value(meta_for(&old)).unwrap();
        let mut json = json.as_object().unwrap().clone();
        json.remove("head_format");
        let meta = serde_json::from_value(serde_json::Value::Object(json)).unwrap();
        store.put(rid(1), p, meta, old).unwrap();
        let new = body(2, 100);
        store.put(rid(2), p, meta_for(&new), new).unwrap();
    }
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(
        store.get(&rid(1), &p).is_none(),
        "an old-format entry is a miss"
    );
    assert!(store.get(&rid(2), &p).is_some());
    let stats = store.stats();
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.corrupt_dropped, 0, "outdated is not corrupt");
}
