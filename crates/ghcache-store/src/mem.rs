//! The in-memory side: sharded entry index and blob table, counters, and the
//! LRU bookkeeping. Every mutation reports the redb change it implies to a
//! sink *while still holding the shard lock*, so the writer sees changes to
//! one key in the same order memory did.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, Release},
};

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId};
use parking_lot::RwLock;

use crate::types::EntryMeta;

const SHARDS: usize = 64;

pub(crate) struct Entry {
    /// Immutable after insert except the fields mirrored by the atomics.
    pub meta: EntryMeta,
    pub stale: AtomicBool,
    /// Set (under the shard lock) when the index lets go of this entry:
    /// replaced or removed. A thread's remembered copy is used only while
    /// it is unset.
    pub gone: AtomicBool,
    pub last_access_ms: AtomicU64,
    /// Logical LRU clock: ms timestamps tie too often to order evictions.
    pub tick: AtomicU64,
    /// Insertion order, for "most recently stored" in `get_any`.
    pub seq: u64,
}

impl Entry {
    /// What this entry's metadata costs, counted against the byte limit.
    pub fn meta_len(&self) -> u64 {
        self.meta.footprint()
    }

    pub fn snapshot(&self) -> EntryMeta {
        let mut m = self.meta.clone();
        m.stale = self.stale.load(Relaxed);
        m.last_access_ms = self.last_access_ms.load(Relaxed);
        m
    }
}

pub(crate) struct BlobSlot {
    pub refs: u64,
    pub len: u64,
    /// `None` once trimmed from memory; then it is in redb.
    pub body: Option<Bytes>,
    /// In redb. Only durable bodies may be trimmed from memory.
    pub durable: bool,
    /// Distinguishes a re-created slot from an earlier one with the same CID.
    pub generation: u64,
    /// Shared with the threads that remember this body, so that their
    /// hits keep it recently used.
    pub tick: Arc<AtomicU64>,
}

/// A redb change implied by a memory mutation.
pub(crate) enum Change {
    PutEntry(Vec<u8>, Arc<Entry>),
    DelEntry(Vec<u8>),
    PutBlob(ContentId, u64, Bytes),
    DelBlob(ContentId),
    /// A malformed blob key found at load.
    DelBlobRaw(Vec<u8>),
    /// A write marked a path (by its hash) stale at this unix ms.
    PutInvalidation([u8; 16], u64),
    DelInvalidation([u8; 16]),
}

type EntryList = Vec<(Partition, Arc<Entry>)>;

pub(crate) fn entry_key(rid: &ResourceId, p: &Partition) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(rid.as_bytes());
    k.extend_from_slice(p.as_bytes());
    k
}

/// Keys are SHA-256 digests: a fast keyed hash is enough (every hit looks
/// up two; the default SipHash costs more than the rest of the lookup).
type Hasher = foldhash::fast::RandomState;

pub(crate) struct Mem {
    index: Box<[RwLock<HashMap<ResourceId, EntryList, Hasher>>]>,
    blobs: Box<[RwLock<HashMap<ContentId, BlobSlot, Hasher>>]>,
    /// Logical LRU clocks, one per order: entries and bodies are evicted
    /// by their own orders, and a touch of one must not age the other.
    clock: AtomicU64,
    blob_clock: AtomicU64,
    seq: AtomicU64,
    generation: AtomicU64,
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    /// Bytes of entry metadata (headers, validators): bounded with `bytes`,
    /// so that huge headers cannot grow the store past its limit.
    pub meta_bytes: AtomicU64,
    pub resident: AtomicU64,
    pub evictions: AtomicU64,
    pub corrupt_dropped: AtomicU64,
}

/// Gives `tick` the newest value of `clock`, unless it holds it already
/// (nothing was touched since): then the order is unchanged without a write.
fn touch_tick(tick: &AtomicU64, clock: &AtomicU64) {
    if tick.load(Relaxed).wrapping_add(1) != clock.load(Relaxed) {
        tick.store(clock.fetch_add(1, Relaxed), Relaxed);
    }
}

fn shard_of(bytes: &[u8]) -> usize {
    // Keys are hashes already: their first bytes are uniform.
    (usize::from(bytes[0]) << 8 | usize::from(bytes[1])) % SHARDS
}

impl Mem {
    pub fn new() -> Mem {
        Mem {
            index: (0..SHARDS).map(|_| RwLock::default()).collect(),
            blobs: (0..SHARDS).map(|_| RwLock::default()).collect(),
            clock: AtomicU64::new(1),
            blob_clock: AtomicU64::new(1),
            seq: AtomicU64::new(1),
            generation: AtomicU64::new(1),
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            meta_bytes: AtomicU64::new(0),
            resident: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            corrupt_dropped: AtomicU64::new(0),
        }
    }

    /// Body bytes plus metadata bytes: what the byte limit bounds.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.load(Relaxed) + self.meta_bytes.load(Relaxed)
    }

    fn index_shard(&self, rid: &ResourceId) -> &RwLock<HashMap<ResourceId, EntryList, Hasher>> {
        &self.index[shard_of(rid.as_bytes())]
    }

    fn blob_shard(&self, cid: &ContentId) -> &RwLock<HashMap<ContentId, BlobSlot, Hasher>> {
        &self.blobs[shard_of(cid.digest())]
    }

    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Relaxed)
    }

    fn blob_tick(&self) -> u64 {
        self.blob_clock.fetch_add(1, Relaxed)
    }

    pub fn new_entry(&self, meta: EntryMeta, tick: u64) -> Arc<Entry> {
        Arc::new(Entry {
            stale: AtomicBool::new(meta.stale),
            gone: AtomicBool::new(false),
            last_access_ms: AtomicU64::new(meta.last_access_ms),
            tick: AtomicU64::new(tick),
            seq: self.seq.fetch_add(1, Relaxed),
            meta,
        })
    }

    pub fn lookup(&self, rid: &ResourceId, p: &Partition) -> Option<Arc<Entry>> {
        let shard = self.index_shard(rid).read();
        shard
            .get(rid)?
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, e)| e.clone())
    }

    /// Every resource held (any partition).
    pub fn resource_ids(&self) -> Vec<ResourceId> {
        let mut out = Vec::new();
        for shard in self.index.iter() {
            out.extend(shard.read().keys().copied());
        }
        out
    }

    /// All partitions of `rid`, most recently stored first.
    pub fn lookup_all(&self, rid: &ResourceId) -> Vec<(Partition, Arc<Entry>)> {
        let mut v = self
            .index_shard(rid)
            .read()
            .get(rid)
            .cloned()
            .unwrap_or_default();
        v.sort_by_key(|(_, e)| std::cmp::Reverse(e.seq));
        v
    }

    /// Marks an entry used now. Hot entries are touched by every core on
    /// every hit: what is already current is read, not written again, so
    /// their cache lines are not bounced between cores.
    pub fn touch(&self, e: &Entry, now_ms: u64) {
        touch_tick(&e.tick, &self.clock);
        if e.last_access_ms.load(Relaxed) != now_ms {
            e.last_access_ms.store(now_ms, Relaxed);
        }
    }

    /// The in-memory body if resident, with the slot's LRU clock (for a
    /// thread that remembers the body to touch on its own hits).
    /// `Err(generation)` when the slot exists but its body lives only in
    /// redb.
    pub fn resident_body(&self, cid: &ContentId) -> Option<Result<(Bytes, Arc<AtomicU64>), u64>> {
        let shard = self.blob_shard(cid).read();
        let slot = shard.get(cid)?;
        touch_tick(&slot.tick, &self.blob_clock);
        Some(match &slot.body {
            Some(body) => Ok((body.clone(), slot.tick.clone())),
            None => Err(slot.generation),
        })
    }

    /// Marks a remembered body used now (see [`Mem::resident_body`]).
    pub fn touch_body(&self, tick: &AtomicU64) {
        touch_tick(tick, &self.blob_clock);
    }

    pub fn blob_exists(&self, cid: &ContentId) -> bool {
        self.blob_shard(cid).read().contains_key(cid)
    }

    /// Puts a body read back from redb into memory, if its slot is unchanged.
    /// Returns false when the slot is gone or was re-created meanwhile.
    pub fn install_body(&self, cid: &ContentId, generation: u64, body: &Bytes) -> bool {
        let mut shard = self.blob_shard(cid).write();
        match shard.get_mut(cid) {
            Some(slot) if slot.generation == generation => {
                if slot.body.is_none() {
                    slot.body = Some(body.clone());
                    self.resident.fetch_add(slot.len, Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    /// True if a slot with this generation still exists (used to tell a
    /// missing redb row caused by corruption from one caused by a removal).
    pub fn slot_generation_is(&self, cid: &ContentId, generation: u64) -> bool {
        self.blob_shard(cid)
            .read()
            .get(cid)
            .is_some_and(|s| s.generation == generation)
    }

    fn incref(&self, cid: ContentId, body: &Bytes, sink: &mut dyn FnMut(Change)) {
        let mut shard = self.blob_shard(&cid).write();
        match shard.get_mut(&cid) {
            Some(slot) => {
                slot.refs += 1;
                slot.tick.store(self.blob_tick(), Relaxed);
                if slot.body.is_none() {
                    // We hold verified bytes anyway: keep them hot, and
                    // rewrite the row so a silently damaged copy on disk heals.
                    slot.body = Some(body.clone());
                    self.resident.fetch_add(slot.len, Relaxed);
                    sink(Change::PutBlob(cid, slot.generation, body.clone()));
                }
            }
            None => {
                let generation = self.generation.fetch_add(1, Relaxed);
                let len = body.len() as u64;
                shard.insert(
                    cid,
                    BlobSlot {
                        refs: 1,
                        len,
                        body: Some(body.clone()),
                        durable: false,
                        generation,
                        tick: Arc::new(AtomicU64::new(self.blob_tick())),
                    },
                );
                self.bytes.fetch_add(len, Relaxed);
                self.resident.fetch_add(len, Relaxed);
                sink(Change::PutBlob(cid, generation, body.clone()));
            }
        }
    }

    fn decref(&self, cid: &ContentId, sink: &mut dyn FnMut(Change)) {
        let mut shard = self.blob_shard(cid).write();
        let Some(slot) = shard.get_mut(cid) else {
            return;
        };
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs == 0 {
            let len = slot.len;
            if slot.body.is_some() {
                self.resident.fetch_sub(len, Relaxed);
            }
            shard.remove(cid);
            self.bytes.fetch_sub(len, Relaxed);
            sink(Change::DelBlob(*cid));
        }
    }

    /// Inserts or replaces the entry for (rid, p).
    pub fn insert(
        &self,
        rid: ResourceId,
        p: Partition,
        entry: Arc<Entry>,
        body: &Bytes,
        sink: &mut dyn FnMut(Change),
    ) {
        let cid = entry.meta.body_cid;
        let meta_len = entry.meta_len();
        self.incref(cid, body, sink);
        let replaced = {
            let mut shard = self.index_shard(&rid).write();
            let list = shard.entry(rid).or_default();
            sink(Change::PutEntry(entry_key(&rid, &p), entry.clone()));
            match list.iter_mut().find(|(q, _)| *q == p) {
                Some(slot) => {
                    let old = std::mem::replace(&mut slot.1, entry);
                    old.gone.store(true, Release);
                    Some(old)
                }
                None => {
                    list.push((p, entry));
                    self.entries.fetch_add(1, Relaxed);
                    None
                }
            }
        };
        self.meta_bytes.fetch_add(meta_len, Relaxed);
        if let Some(old) = replaced {
            self.meta_bytes.fetch_sub(old.meta_len(), Relaxed);
            self.decref(&old.meta.body_cid, sink);
        }
    }

    /// Loads an entry from disk at open; its blob slot must exist already.
    pub fn insert_loaded(&self, rid: ResourceId, p: Partition, entry: Arc<Entry>) {
        let cid = entry.meta.body_cid;
        let meta_len = entry.meta_len();
        if let Some(slot) = self.blob_shard(&cid).write().get_mut(&cid) {
            slot.refs += 1;
        }
        self.index_shard(&rid)
            .write()
            .entry(rid)
            .or_default()
            .push((p, entry));
        self.meta_bytes.fetch_add(meta_len, Relaxed);
        self.entries.fetch_add(1, Relaxed);
    }

    /// Registers a body that exists in redb (not resident) at open.
    pub fn insert_loaded_blob(&self, cid: ContentId, len: u64) {
        let generation = self.generation.fetch_add(1, Relaxed);
        self.blob_shard(&cid).write().insert(
            cid,
            BlobSlot {
                refs: 0,
                len,
                body: None,
                durable: true,
                generation,
                tick: Arc::new(AtomicU64::new(0)),
            },
        );
        self.bytes.fetch_add(len, Relaxed);
    }

    /// Removes entries matching `pred`; returns how many went.
    pub fn remove_where(
        &self,
        rid: &ResourceId,
        mut pred: impl FnMut(&Partition, &Arc<Entry>) -> bool,
        sink: &mut dyn FnMut(Change),
    ) -> u64 {
        let removed: Vec<Arc<Entry>> = {
            let mut shard = self.index_shard(rid).write();
            let Some(list) = shard.get_mut(rid) else {
                return 0;
            };
            let mut gone = Vec::new();
            list.retain(|(p, e)| {
                if pred(p, e) {
                    e.gone.store(true, Release);
                    sink(Change::DelEntry(entry_key(rid, p)));
                    gone.push(e.clone());
                    false
                } else {
                    true
                }
            });
            if list.is_empty() {
                shard.remove(rid);
            }
            gone
        };
        self.entries.fetch_sub(removed.len() as u64, Relaxed);
        for e in &removed {
            self.meta_bytes.fetch_sub(e.meta_len(), Relaxed);
            self.decref(&e.meta.body_cid, sink);
        }
        removed.len() as u64
    }

    pub fn mark_stale(&self, rid: &ResourceId, sink: &mut dyn FnMut(Change)) {
        let shard = self.index_shard(rid).read();
        for (p, e) in shard.get(rid).into_iter().flatten() {
            if !e.stale.swap(true, Relaxed) {
                sink(Change::PutEntry(entry_key(rid, p), e.clone()));
            }
        }
    }

    /// Every entry whose body is `cid` (a full scan: only used on corruption).
    pub fn entries_with_body(&self, cid: &ContentId) -> Vec<(ResourceId, Partition, Arc<Entry>)> {
        let mut out = Vec::new();
        for shard in self.index.iter() {
            for (rid, list) in shard.read().iter() {
                for (p, e) in list {
                    if e.meta.body_cid == *cid {
                        out.push((*rid, *p, e.clone()));
                    }
                }
            }
        }
        out
    }

    /// Evicts least recently used entries until both limits are met, with
    /// ~5% headroom so a store at capacity does not rescan on every put.
    pub fn evict(&self, max_entries: u64, max_bytes: u64, sink: &mut dyn FnMut(Change)) {
        let over = |e: u64, b: u64| e > max_entries || b > max_bytes;
        if !over(self.entries.load(Relaxed), self.total_bytes()) {
            return;
        }
        let target_e = max_entries - max_entries / 20;
        let target_b = max_bytes - max_bytes / 20;
        let mut cands: Vec<(u64, ResourceId, Partition, Arc<Entry>)> = Vec::new();
        for shard in self.index.iter() {
            for (rid, list) in shard.read().iter() {
                for (p, e) in list {
                    cands.push((e.tick.load(Relaxed), *rid, *p, e.clone()));
                }
            }
        }
        cands.sort_unstable_by_key(|c| c.0);
        for (tick, rid, p, e) in cands {
            if !(self.entries.load(Relaxed) > target_e || self.total_bytes() > target_b) {
                break;
            }
            // Skip entries replaced or read since the scan.
            let n = self.remove_where(
                &rid,
                |q, cur| *q == p && Arc::ptr_eq(cur, &e) && cur.tick.load(Relaxed) == tick,
                sink,
            );
            self.evictions.fetch_add(n, Relaxed);
        }
    }

    /// Drops least recently used *durable* bodies from memory until resident
    /// bytes are under `budget` (they stay readable from redb).
    pub fn trim_resident(&self, budget: u64) {
        if self.resident.load(Relaxed) <= budget {
            return;
        }
        let target = budget - budget / 10;
        let mut cands: Vec<(u64, ContentId)> = Vec::new();
        for shard in self.blobs.iter() {
            for (cid, s) in shard.read().iter() {
                if s.durable && s.body.is_some() {
                    cands.push((s.tick.load(Relaxed), *cid));
                }
            }
        }
        cands.sort_unstable_by_key(|c| c.0);
        for (_, cid) in cands {
            if self.resident.load(Relaxed) <= target {
                break;
            }
            let mut shard = self.blob_shard(&cid).write();
            if let Some(s) = shard.get_mut(&cid).filter(|s| s.durable)
                && s.body.take().is_some()
            {
                self.resident.fetch_sub(s.len, Relaxed);
            }
        }
    }

    pub fn mark_durable(&self, cid: &ContentId, generation: u64) {
        if let Some(s) = self.blob_shard(cid).write().get_mut(cid)
            && s.generation == generation
        {
            s.durable = true;
        }
    }

    /// Snapshot for a full resync after persistence recovers: every entry
    /// (key, entry) and every body not yet in redb.
    #[allow(clippy::type_complexity)]
    pub fn snapshot(
        &self,
    ) -> (
        Vec<(Vec<u8>, Arc<Entry>)>,
        Vec<(ContentId, u64, Option<Bytes>)>,
    ) {
        let mut entries = Vec::new();
        for shard in self.index.iter() {
            for (rid, list) in shard.read().iter() {
                for (p, e) in list {
                    entries.push((entry_key(rid, p), e.clone()));
                }
            }
        }
        let mut blobs = Vec::new();
        for shard in self.blobs.iter() {
            for (cid, s) in shard.read().iter() {
                let body = if s.durable { None } else { s.body.clone() };
                blobs.push((*cid, s.generation, body));
            }
        }
        (entries, blobs)
    }
}
