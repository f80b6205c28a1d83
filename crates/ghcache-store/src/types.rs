use std::path::PathBuf;

use bytes::Bytes;
use ghcache_core::ContentId;
use serde::{Deserialize, Serialize};

use crate::head::StoredHead;

/// Limits and mode of a [`crate::Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Upper bound on unique body bytes (each distinct body counted once).
    pub max_bytes: u64,
    /// Upper bound on entries (resource × partition).
    pub max_entries: u64,
    /// `false`: memory only, nothing written to disk.
    pub persistence: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_bytes: 1 << 30,
            max_entries: 100_000,
            persistence: true,
        }
    }
}

/// Everything kept about one cached response besides its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub status: u16,
    /// The response header block replayed on a hit (the proxy decides
    /// which headers; built once, shared by every read).
    pub headers: StoredHead,
    /// [`HEAD_FORMAT`] for entries stored with every end-to-end header;
    /// 0 (absent) for entries of older versions, which kept only a few.
    #[serde(default)]
    pub head_format: u8,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When the response was stored (unix ms).
    pub stored_at_ms: u64,
    /// Freshness lifetime (RFC 9111 §4.2.1).
    pub ttl_ms: u64,
    /// The response's corrected initial age when stored (RFC 9111 §4.2.3):
    /// its current age is this plus the time since `stored_at_ms`.
    #[serde(default)]
    pub initial_age_ms: u64,
    /// The request's values of the headers its `Vary` names that the key
    /// does not already cover (secondary key, RFC 9111 §4.1), each value's
    /// bytes as Latin-1; `None` when the request had none.
    #[serde(default)]
    pub vary: Vec<(String, Option<String>)>,
    /// Set when the fleet announced a newer version or a write went through.
    pub stale: bool,
    pub body_cid: ContentId,
    pub body_len: u64,
    /// Last read (unix ms). Kept in memory on every hit; persisted with the
    /// entry's other writes, so after a restart it may be slightly old.
    pub last_access_ms: u64,
}

/// The current [`EntryMeta::head_format`].
pub const HEAD_FORMAT: u8 = 1;

/// Most metadata one entry may carry (headers, validators); a response with
/// more is served but not stored.
pub const MAX_META_BYTES: u64 = 32 << 10;
/// Per-entry bookkeeping beyond its strings, counted against the byte limit.
const ENTRY_OVERHEAD: u64 = 160;

impl EntryMeta {
    /// Bytes this metadata holds (what the store's byte limit counts).
    pub fn footprint(&self) -> u64 {
        let strings: usize = self.headers.footprint()
            + self
                .vary
                .iter()
                .map(|(n, v)| n.len() + v.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + self.etag.as_ref().map_or(0, String::len)
            + self.last_modified.as_ref().map_or(0, String::len);
        strings as u64 + ENTRY_OVERHEAD
    }

    /// A `200` for `body` with nothing else set (no headers, no validators,
    /// TTL 0): the base to fill in with `..EntryMeta::for_body(body)`.
    pub fn for_body(body: &[u8]) -> EntryMeta {
        EntryMeta {
            status: 200,
            headers: StoredHead::default(),
            head_format: HEAD_FORMAT,
            etag: None,
            last_modified: None,
            stored_at_ms: 0,
            ttl_ms: 0,
            initial_age_ms: 0,
            vary: Vec::new(),
            stale: false,
            body_cid: ContentId::of(body),
            body_len: body.len() as u64,
            last_access_ms: 0,
        }
    }
}

/// A cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub meta: EntryMeta,
    pub body: Bytes,
}

/// A held entry as the store keeps it, shared rather than copied: the
/// proxy's fresh-hit path reads it without cloning the metadata's strings.
/// [`HeldEntry::to_hit`] makes the owned [`Hit`] when one is needed.
#[derive(Clone)]
pub struct HeldEntry {
    pub(crate) entry: std::sync::Arc<crate::mem::Entry>,
    pub(crate) body: Bytes,
}

impl HeldEntry {
    /// The metadata as stored. Its `stale` and `last_access_ms` are those
    /// of the store call: read [`HeldEntry::is_stale`] for the live flag.
    pub fn meta(&self) -> &EntryMeta {
        &self.entry.meta
    }

    /// Whether the fleet or a write has marked it stale since it was stored.
    pub fn is_stale(&self) -> bool {
        self.entry.meta.stale || self.entry.stale.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The owned snapshot (live `stale` and `last_access_ms`).
    pub fn to_hit(&self) -> Hit {
        Hit {
            meta: self.entry.snapshot(),
            body: self.body.clone(),
        }
    }
}

impl std::fmt::Debug for HeldEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldEntry")
            .field("meta", &self.entry.meta)
            .field("stale", &self.is_stale())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Counters for `stats`, `doctor` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StoreStats {
    pub entries: u64,
    /// Unique body bytes (a body shared by many entries counts once).
    pub bytes: u64,
    /// Entry metadata bytes (headers, validators); `bytes + meta_bytes` is
    /// what `max_bytes` bounds.
    pub meta_bytes: u64,
    /// Body bytes currently held in memory.
    pub resident_bytes: u64,
    pub evictions: u64,
    /// Entries dropped because their body failed CID verification or was
    /// missing or their metadata was unreadable.
    pub corrupt_dropped: u64,
    /// Failed attempts to write to disk (each commit or recovery attempt).
    pub persist_errors: u64,
    /// True while persistence has failed and the store runs from memory.
    pub degraded: bool,
    /// The redb file, or `None` for a memory-only store.
    pub path: Option<PathBuf>,
}
