//! Hot get and put against a store holding 100k entries of ~1 KB.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use ghcache_core::{Partition, ResourceId, ResourceKey};
use ghcache_store::{EntryMeta, Store, StoreConfig};

const N: u64 = 100_000;

fn rid(n: u64) -> ResourceId {
    let path = format!("/repos/o/r/issues/{n}");
    ResourceId::compute(&ResourceKey {
        host: "api.github.com",
        method: "GET",
        path: &path,
        query: "",
        accept: None,
        api_version: None,
    })
}

fn entry(n: u64) -> (EntryMeta, Bytes) {
    let body = Bytes::from(format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(1000)));
    let meta = EntryMeta {
        headers: vec![("content-type".into(), "application/json".into())].into(),
        etag: Some(format!("\"{n:x}\"")),
        ttl_ms: 60_000,
        ..EntryMeta::for_body(&body)
    };
    (meta, body)
}

fn filled(dir: &std::path::Path) -> Store {
    let store = Store::open(dir, StoreConfig::default()).unwrap();
    for n in 0..N {
        let (m, b) = entry(n);
        store.put(rid(n), Partition::Anonymous, m, b).unwrap();
    }
    store.flush();
    store
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    // The last 10k stored are in the hot layer.
    let hot: Vec<ResourceId> = (N - 10_000..N).map(rid).collect();
    let mut i = 0usize;
    c.bench_function("get_hot_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % hot.len();
            black_box(store.get(&hot[i], &Partition::Anonymous).unwrap());
        })
    });
    let mut n = N;
    let prepared: Vec<(EntryMeta, Bytes)> = (0..1024).map(|k| entry(N + k)).collect();
    c.bench_function("put_100k", |b| {
        b.iter(|| {
            n += 1;
            let (m, body) = prepared[(n % 1024) as usize].clone();
            store.put(rid(n), Partition::Anonymous, m, body).unwrap();
        })
    });
    store.flush();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
