//! Prints resident memory after loading 100k entries of ~1 KB, then after
//! reopening the same file (entries indexed, bodies loaded lazily).
//! `cargo run --release -p ghcache-store --example rss`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use bytes::Bytes;
use ghcache_core::{Partition, ResourceId, ResourceKey};
use ghcache_store::{EntryMeta, Store, StoreConfig};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    if let Some(dir) = std::env::args().nth(1).filter(|a| a == "--reopen") {
        let _ = dir;
        let path = std::env::args().nth(2).unwrap();
        let t = Instant::now();
        let store = Store::open(std::path::Path::new(&path), StoreConfig::default()).unwrap();
        let st = store.stats();
        println!(
            "fresh process, reopened in {:?}: VmRSS {} KiB (entries {}, resident {})",
            t.elapsed(),
            rss_kib(),
            st.entries,
            st.resident_bytes
        );
        return;
    }
    let n_entries: u64 = std::env::var("ENTRIES")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    println!("baseline: VmRSS {} KiB", rss_kib());
    let t = Instant::now();
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for n in 0..n_entries {
            let path = format!("/repos/o/r/issues/{n}");
            let rid = ResourceId::compute(&ResourceKey {
                host: "api.github.com",
                method: "GET",
                path: &path,
                query: "",
                accept: None,
                api_version: None,
            });
            let body = Bytes::from(format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(1000)));
            let meta = EntryMeta {
                headers: vec![("content-type".into(), "application/json".into())].into(),
                etag: Some(format!("\"{n:x}\"")),
                ttl_ms: 60_000,
                ..EntryMeta::for_body(&body)
            };
            store.put(rid, Partition::Anonymous, meta, body).unwrap();
        }
        store.flush();
        let st = store.stats();
        println!(
            "after put+flush of {n_entries} entries in {:?}: VmRSS {} KiB (entries {}, bytes {}, resident {})",
            t.elapsed(),
            rss_kib(),
            st.entries,
            st.bytes,
            st.resident_bytes
        );
    }
    let file = std::fs::metadata(dir.path().join("store.redb"))
        .unwrap()
        .len();
    let du = std::process::Command::new("du")
        .arg("-sk")
        .arg(dir.path())
        .output();
    let du = du.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_owned()
    });
    println!(
        "closed: VmRSS {} KiB (allocator keeps freed pages), file {} KiB logical, {} KiB on disk",
        rss_kib(),
        file / 1024,
        du.unwrap_or_default()
    );
    // A fresh process shows the real cost of the loaded index.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--reopen")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
}
