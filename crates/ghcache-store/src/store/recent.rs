//! Each thread's memory of the entries it served last.
//!
//! Both worker threads answering one hot entry through the shared index
//! took its shard locks and bumped the entry's reference count on every
//! hit, and those cache lines bounced between the cores. A thread that
//! remembers the entry reads it with neither. It is used only while the
//! index still holds it: every replacement and removal marks the entry
//! `gone` under its shard lock.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Acquire};

use ghcache_core::{Partition, ResourceId};

use super::Store;
use crate::types::HeldEntry;

/// Slots per thread, picked by the keys' first bytes: a handful of hot
/// entries keep theirs; colder ones cost a refill (one reference count
/// more than the ordinary lookup).
const SLOTS: usize = 8;

/// Larger bodies are not remembered: a thread keeps at most 8 MiB alive
/// after the store has let go of them (trimmed, evicted, replaced), until
/// their slots are reused.
const MAX_REMEMBERED_BODY: usize = 1 << 20;

struct Remembered {
    store: u64,
    rid: ResourceId,
    partition: Partition,
    held: HeldEntry,
    /// The body's LRU clock, touched by this thread's hits.
    body_tick: Arc<AtomicU64>,
}

thread_local! {
    static RECENT: RefCell<[Option<Remembered>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

impl Store {
    /// Calls `serve` with the entry for (`rid`, `partition`), as
    /// [`Store::get_held_at`] finds it, and returns its answer; `None` when
    /// nothing is held. A body that is only on disk is read for this call
    /// and not remembered (what stays in memory is the store's to budget),
    /// nor is one over 1 MiB.
    pub fn with_held_at<R>(
        &self,
        rid: &ResourceId,
        partition: &Partition,
        now_ms: u64,
        serve: impl FnOnce(&HeldEntry) -> R,
    ) -> Option<R> {
        RECENT.with(|recent| {
            let Ok(mut recent) = recent.try_borrow_mut() else {
                // Called again from within `serve`: the ordinary lookup.
                return self
                    .get_held_at(rid, partition, now_ms)
                    .map(|held| serve(&held));
            };
            let token_byte = partition.as_bytes().first().copied().unwrap_or(0);
            let at = usize::from(rid.as_bytes()[0] ^ token_byte) % SLOTS;
            let slot = &mut recent[at];
            let current = slot.as_ref().filter(|r| {
                r.store == self.shared.id
                    && r.rid == *rid
                    && r.partition == *partition
                    && !r.held.entry.gone.load(Acquire)
            });
            let remembered = match current {
                Some(r) => {
                    self.shared.mem.touch(&r.held.entry, now_ms);
                    self.shared.mem.touch_body(&r.body_tick);
                    r
                }
                None => {
                    // What is not current is let go of at once, found or not.
                    *slot = None;
                    match self.lookup(rid, partition, now_ms)? {
                        Ok((held, body_tick)) if held.body.len() <= MAX_REMEMBERED_BODY => slot
                            .insert(Remembered {
                                store: self.shared.id,
                                rid: *rid,
                                partition: *partition,
                                held,
                                body_tick,
                            }),
                        Ok((held, _)) | Err(held) => return Some(serve(&held)),
                    }
                }
            };
            Some(serve(&remembered.held))
        })
    }
}
