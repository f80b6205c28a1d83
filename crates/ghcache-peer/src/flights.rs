//! Upstream fetches under way on this daemon, by resource (any partition).
//! The proxy claims a resource before it looks for copies and releases the
//! claim once its answer is stored; a request of another partition here, or
//! a member asking for the resource, waits for that fetch and then confirms
//! the stored body with its own token (a free `304`) instead of paying for a
//! fetch of its own. Claims are ordered (time first): across daemons only
//! the later claimant waits, so waits can never form a cycle.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ghcache_core::{Partition, ResourceId};
use parking_lot::Mutex;
use tokio::sync::watch;

/// The fetches under way. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct Flights {
    map: Mutex<HashMap<ResourceId, Held>>,
}

#[derive(Debug)]
struct Held {
    claim: u64,
    partition: Partition,
    done: watch::Receiver<()>,
}

/// What [`Flights::join_or_claim`] gave.
#[derive(Debug)]
pub enum Joined {
    /// Nobody here fetches it: we do, until the claim is dropped.
    Leader(Claim),
    /// A request of another partition here fetches it.
    Waiter(Waiter),
    /// A request of the same partition fetches it: identical requests
    /// share that exchange (the proxy's coalescing), no claim is needed.
    Same,
}

/// A resource we fetch; released (and its waiters woken) when dropped.
#[derive(Debug)]
pub struct Claim {
    flights: Arc<Flights>,
    resource: ResourceId,
    value: u64,
    _done: watch::Sender<()>,
}

/// Waits for another request's fetch.
#[derive(Debug, Clone)]
pub struct Waiter {
    claim: u64,
    done: watch::Receiver<()>,
}

impl Flights {
    pub fn new() -> Arc<Flights> {
        Arc::new(Flights::default())
    }

    /// Joins the fetch of `resource` under way here, or claims it for
    /// `partition`.
    pub fn join_or_claim(self: &Arc<Self>, resource: &ResourceId, partition: &Partition) -> Joined {
        let mut map = self.map.lock();
        match map.entry(*resource) {
            Entry::Occupied(held) if held.get().partition == *partition => Joined::Same,
            Entry::Occupied(held) => Joined::Waiter(Waiter {
                claim: held.get().claim,
                done: held.get().done.clone(),
            }),
            Entry::Vacant(slot) => {
                let (tx, rx) = watch::channel(());
                let value = new_claim();
                slot.insert(Held {
                    claim: value,
                    partition: *partition,
                    done: rx,
                });
                Joined::Leader(Claim {
                    flights: self.clone(),
                    resource: *resource,
                    value,
                    _done: tx,
                })
            }
        }
    }

    /// The fetch of `resource` under way here, if any.
    pub fn under_way(&self, resource: &ResourceId) -> Option<Waiter> {
        self.map.lock().get(resource).map(|held| Waiter {
            claim: held.claim,
            done: held.done.clone(),
        })
    }
}

impl Claim {
    /// Its order: a smaller value was claimed earlier.
    pub fn value(&self) -> u64 {
        self.value
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock();
        if map
            .get(&self.resource)
            .is_some_and(|h| h.claim == self.value)
        {
            map.remove(&self.resource);
        }
        // `_done` drops after this: waiters wake once the entry is gone.
    }
}

impl Waiter {
    /// The leader's claim.
    pub fn claim(&self) -> u64 {
        self.claim
    }

    /// Until the leader released its claim, at most `max`; whether it did.
    pub async fn wait(mut self, max: Duration) -> bool {
        // `changed` fails once the sender is gone: that is the release.
        tokio::time::timeout(max, async { while self.done.changed().await.is_ok() {} })
            .await
            .is_ok()
    }
}

/// Milliseconds since the epoch in the high bits (earlier claims win
/// across daemons), random low bits to break ties.
fn new_claim() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(ms);
    (ms << 20) | (hasher.finish() & 0xF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_claim_is_dropped() {
        let flights = Flights::new();
        let rid = ResourceId::from_bytes([1; 32]);
        let a = Partition::Anonymous;
        let b = Partition::from_bytes(&[2; 32]).unwrap_or(Partition::Anonymous);
        assert_ne!(a, b);
        let Joined::Leader(claim) = flights.join_or_claim(&rid, &a) else {
            panic!("the first request must lead");
        };
        assert!(matches!(flights.join_or_claim(&rid, &a), Joined::Same));
        let Joined::Waiter(waiter) = flights.join_or_claim(&rid, &b) else {
            panic!("another partition's request must wait");
        };
        assert_eq!(waiter.claim(), claim.value());
        assert!(!waiter.clone().wait(Duration::from_millis(1)).await);
        let waiting = tokio::spawn(waiter.wait(Duration::from_secs(10)));
        drop(claim);
        assert!(waiting.await.unwrap_or(false));
        assert!(flights.map.lock().is_empty());
        assert!(flights.under_way(&rid).is_none());
    }

    #[test]
    fn claims_are_ordered_by_time() {
        let a = new_claim();
        std::thread::sleep(Duration::from_millis(2));
        assert!(new_claim() > a);
    }
}
