//! The provider-record queue, free of I/O: which keys we publish, which wait,
//! which are under way, which to retry. The event loop starts and stops the
//! Kademlia queries it names.
//!
//! Publications are throttled (at most [`MAX_PROVIDES_IN_FLIGHT`] at once):
//! a daemon restarting with a full store would otherwise start one query per
//! entry at the same moment.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use libp2p::kad::RecordKey;

/// Provider-record publications running at once; the rest wait in a queue.
pub(crate) const MAX_PROVIDES_IN_FLIGHT: usize = 32;
/// Provider records we keep (ours and other members'), against the default
/// of 1,024 keys: a cache holds far more.
pub(crate) const MAX_PROVIDED_KEYS: usize = 1 << 20;
/// Publications waiting; past this, new ones are dropped (and counted): the
/// resource is still found through announcements and connected peers.
const MAX_PROVIDE_QUEUE: usize = MAX_PROVIDED_KEYS;
/// We republish our records this often, through our throttled queue (the
/// built-in republication would start one query per record at once).
const PROVIDER_REPUBLISH: Duration = Duration::from_secs(8 * 3600);
/// How often publications that reached nobody are tried again.
const RETRY_PROVIDES: Duration = Duration::from_secs(30);

/// Our provider records. `Q` is the query id (Kademlia's in the loop, a
/// plain number in tests).
#[derive(Debug)]
pub(crate) struct Provides<Q> {
    /// Keys we publish (or are about to): the source of truth for dedup,
    /// republication and withdrawal; libp2p's store may drop our own record
    /// when a key already has its maximum of providers.
    ours: HashSet<RecordKey>,
    queue: VecDeque<RecordKey>,
    queued: HashSet<RecordKey>,
    in_flight: HashSet<Q>,
    /// Publications that reached no peer, retried every RETRY_PROVIDES.
    retry: Vec<RecordKey>,
    retry_next: Instant,
    republish_next: Instant,
    dropped: u64,
}

impl<Q: Copy + Eq + Hash> Provides<Q> {
    pub(crate) fn new(now: Instant) -> Self {
        Provides {
            ours: HashSet::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashSet::new(),
            retry: Vec::new(),
            retry_next: now + RETRY_PROVIDES,
            republish_next: now + PROVIDER_REPUBLISH,
            dropped: 0,
        }
    }

    /// We hold `key`'s resource: queues its record unless we publish one
    /// already. True when something was queued (drain next).
    pub(crate) fn hold(&mut self, key: RecordKey) -> bool {
        if self.ours.contains(&key) {
            return false;
        }
        self.provide(key);
        true
    }

    /// The store holds exactly `held`: queues them all again (a
    /// republication) and returns the keys it no longer holds, to withdraw.
    pub(crate) fn held(&mut self, held: Vec<RecordKey>) -> Vec<RecordKey> {
        let held: HashSet<RecordKey> = held.into_iter().collect();
        let gone: Vec<RecordKey> = self.ours.difference(&held).cloned().collect();
        for key in &gone {
            self.ours.remove(key);
        }
        for key in held {
            self.provide(key);
        }
        gone
    }

    /// The next publication to start, if fewer than the maximum run. Only
    /// call while the routing table has peers: a publication would reach
    /// no one, so they wait.
    pub(crate) fn next_to_start(&mut self) -> Option<RecordKey> {
        if self.in_flight.len() >= MAX_PROVIDES_IN_FLIGHT {
            return None;
        }
        let key = self.queue.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }

    /// The loop started the publication of a key [`Self::next_to_start`]
    /// gave.
    pub(crate) fn started(&mut self, query: Q) {
        self.in_flight.insert(query);
    }

    /// The loop could not start a publication.
    pub(crate) fn not_started(&mut self) {
        self.dropped += 1;
    }

    /// A publication ended, reaching `successes` peers. False when `query`
    /// is not one of ours.
    pub(crate) fn finished(&mut self, query: Q, key: RecordKey, successes: usize) -> bool {
        if !self.in_flight.remove(&query) {
            return false;
        }
        // libp2p reports success even when no peer took the record (an
        // empty routing table): try again later.
        if successes == 0 && self.ours.contains(&key) {
            self.retry.push(key);
        }
        true
    }

    /// Whether it is time to republish what the store holds (then call
    /// [`Self::held`] with it).
    pub(crate) fn republish_due(&mut self, now: Instant) -> bool {
        if now < self.republish_next {
            return false;
        }
        self.republish_next = now + PROVIDER_REPUBLISH;
        true
    }

    /// Queues again the publications that reached nobody, when it is time.
    /// True when it did (drain next).
    pub(crate) fn retry_due(&mut self, now: Instant) -> bool {
        if now < self.retry_next {
            return false;
        }
        self.retry_next = now + RETRY_PROVIDES;
        for key in std::mem::take(&mut self.retry) {
            self.queue_provide(key);
        }
        true
    }

    /// Resources we publish records for.
    pub(crate) fn provided(&self) -> usize {
        self.ours.len()
    }

    /// Publications waiting, under way or to retry.
    pub(crate) fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len() + self.retry.len()
    }

    /// Publications dropped (queue full, or refused by Kademlia).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Makes `key` ours and queues its publication (even when it is ours
    /// already: a republication).
    fn provide(&mut self, key: RecordKey) {
        if !self.ours.contains(&key) && self.ours.len() >= MAX_PROVIDED_KEYS {
            self.dropped += 1;
            return;
        }
        self.ours.insert(key.clone());
        self.queue_provide(key);
    }

    fn queue_provide(&mut self, key: RecordKey) {
        if self.queued.contains(&key) {
            return;
        }
        if self.queue.len() >= MAX_PROVIDE_QUEUE {
            self.dropped += 1;
            return;
        }
        self.queued.insert(key.clone());
        self.queue.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> RecordKey {
        RecordKey::new(&i.to_be_bytes())
    }

    /// Starts everything the queue allows, numbering the queries from `first`.
    fn drain(p: &mut Provides<u32>, first: u32) -> Vec<(u32, RecordKey)> {
        let mut started = Vec::new();
        let mut q = first;
        while let Some(k) = p.next_to_start() {
            p.started(q);
            started.push((q, k));
            q += 1;
        }
        started
    }

    #[test]
    fn a_held_resource_is_published_once() {
        let mut p = Provides::<u32>::new(Instant::now());
        assert!(p.hold(key(1)));
        assert!(!p.hold(key(1)), "ours already");
        let started = drain(&mut p, 0);
        assert_eq!(started, vec![(0, key(1))]);
        assert!(!p.hold(key(1)));
        assert_eq!((p.provided(), p.pending()), (1, 1));
        assert!(p.finished(0, key(1), 3));
        assert!(!p.finished(0, key(1), 3), "not ours any more");
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn at_most_so_many_run_at_once() {
        let mut p = Provides::<u32>::new(Instant::now());
        for i in 0..100 {
            p.hold(key(i));
        }
        let first = drain(&mut p, 0);
        assert_eq!(first.len(), MAX_PROVIDES_IN_FLIGHT);
        assert_eq!(p.pending(), 100);
        assert!(p.finished(0, first[0].1.clone(), 1));
        let next = drain(&mut p, 1000);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1, key(MAX_PROVIDES_IN_FLIGHT as u32), "in order");
    }

    #[test]
    fn publications_that_reached_nobody_are_retried_later() {
        let now = Instant::now();
        let mut p = Provides::<u32>::new(now);
        p.hold(key(1));
        let started = drain(&mut p, 0);
        assert!(p.finished(0, started[0].1.clone(), 0));
        assert_eq!(p.pending(), 1, "waiting for a retry");
        assert!(drain(&mut p, 1).is_empty());
        assert!(!p.retry_due(now));
        assert!(p.retry_due(now + RETRY_PROVIDES));
        assert_eq!(drain(&mut p, 1), vec![(1, key(1))]);
    }

    #[test]
    fn republication_withdraws_what_the_store_dropped() {
        let now = Instant::now();
        let mut p = Provides::<u32>::new(now);
        p.hold(key(1));
        p.hold(key(2));
        drain(&mut p, 0);
        assert!(!p.republish_due(now));
        assert!(p.republish_due(now + PROVIDER_REPUBLISH));
        let gone = p.held(vec![key(2), key(3)]);
        assert_eq!(gone, vec![key(1)]);
        assert_eq!(p.provided(), 2);
        // Both queued again: 2 is republished, 3 is new.
        let again: Vec<RecordKey> = drain(&mut p, 10).into_iter().map(|(_, k)| k).collect();
        assert_eq!(again.len(), 2);
        assert!(again.contains(&key(2)) && again.contains(&key(3)));
    }

    #[test]
    fn a_failed_start_is_counted() {
        let mut p = Provides::<u32>::new(Instant::now());
        p.hold(key(1));
        assert!(p.next_to_start().is_some());
        p.not_started();
        assert_eq!((p.dropped(), p.pending()), (1, 0));
    }
}
