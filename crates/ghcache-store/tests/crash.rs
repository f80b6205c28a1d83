#![allow(clippy::unwrap_used)]
//! kill -9 during a burst of writes: the file must reopen and serve only
//! complete entries, and everything flushed before the kill must be there.
//!
//! The child is this same test binary, re-executed with an env var that turns
//! `child_writer` from a no-op into the writer.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{body, meta_for, rid};
use ghcache_core::Partition;
use ghcache_store::{Store, StoreConfig};

const CHILD_ENV: &str = "GHCACHE_STORE_CRASH_CHILD_DIR";
const DURABLE_BEFORE_KILL: u64 = 300;
const KILL_AT_PROGRESS: u64 = 2_299;

fn body_len(n: u64) -> usize {
    200 + (n as usize * 37) % 3000
}

#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // normal test run: nothing to do
    };
    let store = Store::open(std::path::Path::new(&dir), StoreConfig::default()).unwrap();
    for n in 0.. {
        let b = body(n, body_len(n));
        let p = if n % 3 == 0 {
            Partition::Anonymous
        } else {
            ghcache_core::Partition::from_bytes(&[(n % 7) as u8; 32]).unwrap()
        };
        store.put(rid(n), p, meta_for(&b), b).unwrap();
        if n % 500 == 499 {
            store.flush();
            // Everything up to n is now durable.
            println!("durable {n}");
        } else if n % 100 == 99 {
            // Put (queued for the writer), not yet known to be durable.
            println!("progress {n}");
        }
    }
}

#[test]
fn kill_9_mid_burst_leaves_only_complete_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Kill once something is known durable and the writer is busy with a
    // burst well past it: commits are in flight at the moment of the kill.
    let mut durable = None;
    let mut progress = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("durable ") {
            durable = Some(n.trim().parse::<u64>().unwrap());
        } else if let Some(n) = line.strip_prefix("progress ") {
            progress = n.trim().parse::<u64>().unwrap();
        }
        if durable.is_some_and(|d| d >= DURABLE_BEFORE_KILL) && progress >= KILL_AT_PROGRESS {
            break;
        }
    }
    let durable = durable.expect("child reported progress");
    child.kill().unwrap(); // SIGKILL on Unix, while it keeps writing
    let status = child.wait().unwrap();
    assert!(!status.success());

    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let st = store.stats();
    assert_eq!(st.corrupt_dropped, 0, "{st:?}");
    assert!(st.entries > durable, "{st:?}");
    let mut seen = 0;
    let mut first_missing = None;
    for n in 0..st.entries + 10_000 {
        let p = if n % 3 == 0 {
            Partition::Anonymous
        } else {
            Partition::from_bytes(&[(n % 7) as u8; 32]).unwrap()
        };
        match store.get(&rid(n), &p) {
            Some(hit) => {
                // Commits apply the queue in order: what survives is a prefix.
                assert_eq!(first_missing, None, "entry {n} present after a gap");
                seen += 1;
                assert!(hit.meta.body_cid.verify(&hit.body), "entry {n}");
                assert_eq!(hit.body, body(n, body_len(n)), "entry {n}");
                assert_eq!(hit.meta.body_len, hit.body.len() as u64);
                assert_eq!(hit.meta.status, 200);
                assert_eq!(hit.meta.etag, meta_for(&hit.body).etag);
            }
            None => {
                assert!(n > durable, "flushed entry {n} lost (durable {durable})");
                first_missing.get_or_insert(n);
            }
        }
    }
    assert_eq!(seen, st.entries);
    eprintln!(
        "flushed before kill: 0..={durable}; recovered after kill: {seen} entries (puts reached {KILL_AT_PROGRESS}+)"
    );
}
