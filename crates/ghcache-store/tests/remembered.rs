//! `Store::with_held_at` answers from each thread's memory of the entries
//! it served last: never after the index let go of one, never across
//! stores, and its hits count as uses for eviction.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{body, meta_for, rid};
use ghcache_core::{Partition, PartitionSecret};
use ghcache_store::{Store, StoreConfig};

fn memory_store(max_entries: u64) -> Store {
    Store::open(
        std::path::Path::new("/unused"),
        StoreConfig {
            persistence: false,
            max_entries,
            ..StoreConfig::default()
        },
    )
    .unwrap()
}

/// Stores a body of `len` bytes for resource `n` and returns it.
fn hold(store: &Store, n: u64, p: Partition, len: usize) -> Bytes {
    let b = body(n, len);
    store.put(rid(n), p, meta_for(&b), b.clone()).unwrap();
    b
}

fn served(store: &Store, n: u64, p: &Partition) -> Option<Bytes> {
    store.with_held_at(&rid(n), p, 1_700_000_000_000, |held| held.body().clone())
}

#[test]
fn a_replaced_entry_is_not_answered_from_memory() {
    let store = memory_store(100);
    let p = Partition::Anonymous;
    let first = hold(&store, 1, p, 300);
    assert_eq!(served(&store, 1, &p), Some(first.clone()));
    assert_eq!(served(&store, 1, &p), Some(first), "remembered");
    let second = body(2, 400);
    store
        .put(rid(1), p, meta_for(&second), second.clone())
        .unwrap();
    assert_eq!(served(&store, 1, &p), Some(second));
}

#[test]
fn a_removed_or_evicted_entry_is_not_answered_from_memory() {
    let store = memory_store(100);
    let p = Partition::Anonymous;
    let b = hold(&store, 1, p, 300);
    assert_eq!(served(&store, 1, &p), Some(b.clone()));
    assert_eq!(store.remove(&rid(1)), 1);
    assert_eq!(served(&store, 1, &p), None);

    // Eviction goes through the same removal.
    let small = memory_store(1);
    hold(&small, 1, p, 300);
    assert_eq!(served(&small, 1, &p), Some(b));
    let other = hold(&small, 2, p, 300);
    small.flush();
    assert_eq!(small.stats().entries, 1);
    assert_eq!(served(&small, 1, &p), None, "evicted");
    assert_eq!(served(&small, 2, &p), Some(other));
}

#[test]
fn a_marked_entry_is_seen_stale_through_memory() {
    let store = memory_store(100);
    let p = Partition::Anonymous;
    hold(&store, 1, p, 300);
    let stale = |store: &Store| store.with_held_at(&rid(1), &p, 0, |held| held.is_stale());
    assert_eq!(stale(&store), Some(false));
    store.mark_stale(&rid(1));
    assert_eq!(stale(&store), Some(true));
}

#[test]
fn stores_and_partitions_do_not_share_memory() {
    let (one, two) = (memory_store(100), memory_store(100));
    // Partitions that a thread remembers in the same slot as each other
    // and as anonymous requests (the slot is picked by the first bytes of
    // the resource id and the partition), so that only the partition check
    // tells them apart.
    let secret = PartitionSecret::generate();
    let mut same_slot = (0..)
        .map(|i| secret.partition_for(Some(&format!("token {i}"))))
        .filter(|p| p.as_bytes()[0] % 8 == 0);
    let (alice, bob) = (same_slot.next().unwrap(), same_slot.next().unwrap());
    let a = hold(&one, 1, alice, 300);
    let b = body(2, 300);
    two.put(rid(1), alice, meta_for(&b), b.clone()).unwrap();
    assert_eq!(served(&one, 1, &alice), Some(a.clone()));
    assert_eq!(served(&two, 1, &alice), Some(b));
    assert_eq!(served(&one, 1, &alice), Some(a.clone()));
    assert_eq!(served(&one, 1, &bob), None);
    assert_eq!(served(&one, 1, &alice), Some(a));
    assert_eq!(served(&one, 1, &Partition::Anonymous), None);
}

#[test]
fn a_call_from_within_serve_takes_the_ordinary_lookup() {
    let store = memory_store(100);
    let p = Partition::Anonymous;
    let (first, second) = (hold(&store, 1, p, 300), hold(&store, 2, p, 300));
    let both = store.with_held_at(&rid(1), &p, 0, |outer| {
        (outer.body().clone(), served(&store, 2, &p))
    });
    assert_eq!(both, Some((first, Some(second))));
}

#[test]
fn hits_from_memory_keep_an_entry_from_eviction() {
    let store = memory_store(3);
    let p = Partition::Anonymous;
    // Three resources a thread remembers side by side (their ids' first
    // bytes pick different slots), so that the last read of `a` below is
    // answered from memory, not by a fresh lookup that touches anyway.
    let mut ns = Vec::new();
    for n in 0.. {
        if ns
            .iter()
            .all(|&m: &u64| rid(m).as_bytes()[0] % 8 != rid(n).as_bytes()[0] % 8)
        {
            ns.push(n);
        }
        if ns.len() == 3 {
            break;
        }
    }
    let [a, b, c] = [ns[0], ns[1], ns[2]];
    for n in [a, b, c] {
        hold(&store, n, p, 100);
    }
    for n in [a, b, c, a] {
        assert!(served(&store, n, &p).is_some());
    }
    // Used in the order a, b, c, a: `b` is now the least recently used.
    hold(&store, 99, p, 100);
    store.flush();
    assert_eq!(store.stats().entries, 3);
    assert!(
        served(&store, b, &p).is_none(),
        "least recently used evicted"
    );
    assert!(served(&store, a, &p).is_some(), "used through memory, kept");
}
