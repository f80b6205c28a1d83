#![allow(clippy::unwrap_used)]
//! A full disk degrades the store to memory-only, reads keep working, and it
//! recovers by itself once space is back. Needs root to mount a small tmpfs;
//! otherwise skipped with a reason, unless CI=true (then it fails).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{body, meta_for, rid};
use ghcache_core::Partition;
use ghcache_store::{Store, StoreConfig};

fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("full-disk test cannot run under CI=true: {reason}");
    }
    eprintln!("SKIPPED full_disk_degrades_and_recovers: {reason}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xA5u8; 16 * 1024];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
    written
}

#[test]
fn full_disk_degrades_and_recovers() {
    if !is_root() {
        return skip("not running as root, cannot mount a tmpfs");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return skip("`mount -t tmpfs` failed (no CAP_SYS_ADMIN?)");
    }
    let _mount = Mount(mnt.clone());
    let _ = tracing_subscriber::fmt()
        .with_env_filter("ghcache_store=debug")
        .with_test_writer()
        .try_init();
    let p = Partition::Anonymous;

    let store = Store::open(&mnt, StoreConfig::default()).unwrap();
    for n in 0..5 {
        let b = body(n, 1000);
        store.put(rid(n), p, meta_for(&b), b).unwrap();
    }
    store.flush();
    assert!(!store.stats().degraded);

    let filler = mnt.join("filler");
    assert!(fill(&filler) > 0);

    // These cannot be written: the store degrades but keeps serving them.
    for n in 5..25 {
        let b = body(n, 100_000);
        store.put(rid(n), p, meta_for(&b), b).unwrap();
    }
    store.flush();
    let st = store.stats();
    assert!(st.degraded, "{st:?}");
    assert!(st.persist_errors >= 1, "{st:?}");
    for n in 0..25 {
        let size = if n < 5 { 1000 } else { 100_000 };
        let hit = store.get(&rid(n), &p).unwrap();
        assert_eq!(hit.body, body(n, size), "entry {n} while degraded");
    }
    // Still degraded while the disk is full, without piling up warnings.
    store.flush();
    assert!(store.stats().degraded);

    // Space comes back: the next retry (flush forces one) recovers.
    eprintln!(
        "redb file while full: {:?}",
        std::fs::metadata(mnt.join("store.redb")).map(|m| m.len())
    );
    std::fs::remove_file(&filler).unwrap();
    store.flush();
    let st = store.stats();
    assert!(!st.degraded, "recovered: {st:?}");
    let b = body(99, 500);
    store.put(rid(99), p, meta_for(&b), b).unwrap();
    store.flush();
    assert!(!store.stats().degraded);
    drop(store);

    // Everything, including what was put while degraded, reached the file.
    let store = Store::open(&mnt, StoreConfig::default()).unwrap();
    assert_eq!(store.stats().entries, 26);
    assert_eq!(store.stats().corrupt_dropped, 0);
    for n in 0..25 {
        let size = if n < 5 { 1000 } else { 100_000 };
        assert_eq!(store.get(&rid(n), &p).unwrap().body, body(n, size));
    }
    assert!(store.get(&rid(99), &p).is_some());
    drop(store);
}
