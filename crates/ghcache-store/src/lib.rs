//! The persistent response store behind ghcache's GitHub API cache.
//!
//! What it is for: holding cached responses keyed by ([`ResourceId`],
//! [`Partition`]), with bodies stored once per content ([`ContentId`], CIDv1
//! sha2-256) however many partitions share them, bounded by bytes and entry
//! count (least recently used evicted first), surviving restarts and crashes
//! in a single redb file (`<dir>/store.redb`).
//!
//! How it is built: all entry metadata and the hot bodies live in sharded
//! in-memory maps, so a fresh hit never touches redb or a lock held across
//! I/O. Mutations update memory at once and queue the matching redb writes to
//! one background writer thread, which commits them in batches (group
//! commit) and also does eviction. Cold bodies are read from redb and
//! verified against their CID before use.
//!
//! What it is not for: HTTP semantics (freshness, revalidation, which headers
//! matter — that is `ghcache-proxy`), networking, or secrets. It never sees a
//! raw token: partitions arrive already keyed.
//!
//! Failure behaviour: a corrupt or foreign file is refused with
//! [`StoreError::Corrupt`] and left untouched ([`Store::open_recovering`]
//! renames it aside, never deletes); a full disk degrades the store to
//! memory-only and it recovers by itself once writes succeed again.

mod error;
mod head;
mod mem;
mod persist;
mod store;
mod types;

pub use error::StoreError;
pub use ghcache_core::{ContentId, Partition, ResourceId};
pub use head::StoredHead;
pub use store::Store;
pub use types::{EntryMeta, HEAD_FORMAT, HeldEntry, Hit, MAX_META_BYTES, StoreConfig, StoreStats};
