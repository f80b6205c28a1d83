//! Announcements received over gossipsub: checked (size, envelope, header
//! binding, age, replay) into a verdict, then applied to the store and the
//! invalidation channel. Who announced what is kept as a hint for fetches.

use std::num::NonZeroUsize;
use std::sync::Arc;

use ghcache_core::ResourceId;
use ghcache_store::Store;
use libp2p::{PeerId, gossipsub};
use tokio::sync::broadcast;

use crate::envelope::open_message;
use crate::wire::{AnnounceKind, Announcement, Reject, now_ms};

/// Announcements older than this (or this far in the future) are refused.
const MAX_ANNOUNCE_AGE_MS: u64 = 5 * 60 * 1000;
/// Largest announcement accepted.
pub(crate) const MAX_ANNOUNCE_BYTES: usize = 256 * 1024;
/// Announcement ids remembered for replay detection.
const SEEN_IDS: usize = 16_384;
/// Resource → the peer that last announced a version of it.
const HOLDER_HINTS: usize = 16_384;

pub(crate) struct Announcements {
    key: [u8; 32],
    topic: gossipsub::IdentTopic,
    topic_name: String,
    store: Arc<Store>,
    invalidations: broadcast::Sender<Vec<String>>,
    seen: lru::LruCache<[u8; 16], ()>,
    holders: lru::LruCache<ResourceId, PeerId>,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) last_lag_ms: Option<i64>,
}

impl Announcements {
    pub(crate) fn new(
        key: [u8; 32],
        topic_name: String,
        store: Arc<Store>,
        invalidations: broadcast::Sender<Vec<String>>,
    ) -> Self {
        let cap = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Announcements {
            key,
            topic: gossipsub::IdentTopic::new(topic_name.clone()),
            topic_name,
            store,
            invalidations,
            seen: lru::LruCache::new(cap(SEEN_IDS)),
            holders: lru::LruCache::new(cap(HOLDER_HINTS)),
            sent: 0,
            received: 0,
            last_lag_ms: None,
        }
    }

    pub(crate) fn topic(&self) -> &gossipsub::IdentTopic {
        &self.topic
    }

    /// The peer that last announced a version of `resource`.
    pub(crate) fn holder(&mut self, resource: &ResourceId) -> Option<PeerId> {
        self.holders.get(resource).copied()
    }

    /// The verdict on a received announcement.
    pub(crate) fn check(&mut self, data: &[u8]) -> Result<Announcement, Reject> {
        if data.len() > MAX_ANNOUNCE_BYTES {
            return Err(Reject::Oversized);
        }
        let opened = open_message(&self.key, &self.topic_name, data)?;
        let ann: Announcement =
            serde_json::from_slice(&opened.plaintext).map_err(|_| Reject::Malformed)?;
        if ann.header() != (opened.resource, opened.cid) {
            return Err(Reject::Malformed);
        }
        let now = now_ms();
        if now.saturating_sub(ann.time_ms) > MAX_ANNOUNCE_AGE_MS
            || ann.time_ms.saturating_sub(now) > MAX_ANNOUNCE_AGE_MS
        {
            return Err(Reject::Replayed);
        }
        if self.seen.put(ann.id, ()).is_some() {
            return Err(Reject::Replayed);
        }
        Ok(ann)
    }

    /// Applies an accepted announcement by `author`: a new version marks
    /// our copy stale, an invalidation goes to the proxy.
    pub(crate) fn apply(&mut self, ann: Announcement, author: Option<PeerId>) {
        if let (AnnounceKind::Version { resource, .. }, Some(author)) = (&ann.kind, author) {
            self.holders.put(*resource, author);
        }
        self.received += 1;
        self.last_lag_ms = Some(now_ms() as i64 - ann.time_ms as i64);
        match ann.kind {
            AnnounceKind::Version { resource, cid, .. } => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some((_, hit)) = store.get_any(&resource)
                        && hit.meta.body_cid != cid
                    {
                        store.mark_stale(&resource);
                    }
                });
            }
            AnnounceKind::Invalidate { paths } => {
                let _ = self.invalidations.send(paths);
            }
        }
    }
}
