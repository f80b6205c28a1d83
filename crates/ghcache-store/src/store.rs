use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId, private_file};
use parking_lot::RwLock;
use redb::Database;

use crate::StoreError;
use crate::mem::{Change, Mem};
use crate::persist;
use crate::types::{EntryMeta, HeldEntry, Hit, MAX_META_BYTES, StoreConfig, StoreStats};

/// Bodies kept in memory at most (persistent mode: a quarter of `max_bytes`,
/// capped); the rest are read from redb on demand and verified. Memory-only
/// stores keep every body, up to `max_bytes`.
const HOT_BYTES_MAX: u64 = 64 << 20;
/// How often a degraded store retries writing to disk.
const RETRY_EVERY: Duration = Duration::from_secs(30);
/// Upper bounds for one group commit.
const MAX_BATCH_CHANGES: usize = 8192;
const MAX_BATCH_BYTES: u64 = 64 << 20;

enum Msg {
    Change(Change),
    Flush(mpsc::SyncSender<()>),
    /// Wake the writer to evict (memory-only stores send no changes).
    Kick,
    Shutdown,
}

struct Shared {
    /// Tells stores apart in each thread's remembered entries (tests run
    /// many per process).
    id: u64,
    mem: Mem,
    config: StoreConfig,
    path: Option<PathBuf>,
    /// `Arc` so cold reads clone it and do I/O without holding this lock.
    db: RwLock<Option<Arc<Database>>>,
    persist_errors: AtomicU64,
    degraded: AtomicBool,
    hot_budget: u64,
}

/// The response store. Cheap to share behind an `Arc`; all methods take
/// `&self` and are safe to call from async code (none blocks on disk writes;
/// only a cold body read touches the file).
pub struct Store {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

mod recent;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Opens `dir/store.redb` (creating `dir` and the file if needed), or a
    /// memory-only store when `config.persistence` is false (`dir` unused).
    ///
    /// A corrupt or foreign file gives [`StoreError::Corrupt`], a file from
    /// a newer ghcache [`StoreError::NewerVersion`]; the file is not modified.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        let mem = Mem::new();
        if !config.persistence {
            return Ok(Self::start(mem, config, None, None, Vec::new()));
        }
        // Cached private responses: only the daemon's user may read them.
        private_file::create_private_dir(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = persist::store_path(dir);
        match private_file::make_private_file(&path) {
            Ok(None) => {}
            Ok(Some(mode)) => tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "store file was readable by other users; narrowed it to 0600"
            ),
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        let db = persist::open_db(&path)?;
        let cleanup = persist::load(&path, &db, &mem)?;
        if !cleanup.is_empty() {
            tracing::warn!(
                path = %path.display(),
                dropped = mem.corrupt_dropped.load(Relaxed),
                "store: dropped unreadable or incomplete records at open"
            );
        }
        Ok(Self::start(mem, config, Some(path), Some(db), cleanup))
    }

    /// Like [`Store::open`], but an unusable file (corrupt, foreign, or from
    /// a newer version) is renamed to `store.redb.corrupt-<unix-seconds>`,
    /// with a warning naming it, and an empty store is started. Nothing is
    /// ever deleted.
    pub fn open_recovering(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        match Store::open(dir, config.clone()) {
            Err(e @ (StoreError::Corrupt { .. } | StoreError::NewerVersion { .. })) => {
                let path = persist::store_path(dir);
                let moved = quarantine(&path)?;
                tracing::warn!(
                    error = %e,
                    moved_to = %moved.display(),
                    "store file was unusable; moved it aside and starting with an empty cache"
                );
                Store::open(dir, config)
            }
            other => other,
        }
    }

    fn start(
        mem: Mem,
        config: StoreConfig,
        path: Option<PathBuf>,
        db: Option<Database>,
        initial: Vec<Change>,
    ) -> Store {
        let hot_budget = if config.persistence {
            (config.max_bytes / 4).min(HOT_BYTES_MAX)
        } else {
            u64::MAX
        };
        static IDS: AtomicU64 = AtomicU64::new(0);
        let shared = Arc::new(Shared {
            id: IDS.fetch_add(1, Relaxed),
            mem,
            config,
            path,
            db: RwLock::new(db.map(Arc::new)),
            persist_errors: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            hot_budget,
        });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("ghcache-store-writer".into())
            .spawn(move || Writer::new(s, initial).run(rx));
        let writer = match writer {
            Ok(h) => Some(h),
            Err(e) => {
                // No thread, no persistence: say so once and keep serving.
                tracing::warn!(error = %e, "store: cannot start writer thread; memory-only");
                shared.degraded.store(true, Relaxed);
                None
            }
        };
        let store = Store { shared, tx, writer };
        store.kick(); // evict at once if the limits shrank since last run
        store
    }

    fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_err() && !self.shared.degraded.swap(true, Relaxed) {
            self.shared.persist_errors.fetch_add(1, Relaxed);
            tracing::warn!("store writer thread is gone; continuing memory-only");
        }
    }

    fn kick(&self) {
        self.send(Msg::Kick);
    }

    /// Where memory mutations report their redb changes.
    fn sink(&self) -> impl FnMut(Change) + '_ {
        let persist = self.shared.config.persistence;
        move |c| {
            if persist {
                self.send(Msg::Change(c));
            }
        }
    }

    /// The entry for (resource, partition), if held and its body is
    /// readable. Hot entries are answered from memory only.
    pub fn get(&self, rid: &ResourceId, partition: &Partition) -> Option<Hit> {
        self.get_held(rid, partition).map(|held| held.to_hit())
    }

    /// [`Store::get`] without copying the metadata (the hit path).
    pub fn get_held(&self, rid: &ResourceId, partition: &Partition) -> Option<HeldEntry> {
        self.get_held_at(rid, partition, now_ms())
    }

    /// [`Store::get_held`] read at `now_ms` (unix ms; the caller's clock).
    pub fn get_held_at(
        &self,
        rid: &ResourceId,
        partition: &Partition,
        now_ms: u64,
    ) -> Option<HeldEntry> {
        self.lookup(rid, partition, now_ms)
            .map(|found| match found {
                Ok((held, _)) | Err(held) => held,
            })
    }

    /// The entry and its resident body with the body's LRU clock, or
    /// (`Err`) the entry and its body read back from disk, which a thread
    /// must not remember: what stays in memory is the store's to budget.
    fn lookup(
        &self,
        rid: &ResourceId,
        partition: &Partition,
        now_ms: u64,
    ) -> Option<Result<(HeldEntry, Arc<AtomicU64>), HeldEntry>> {
        let entry = self.shared.mem.lookup(rid, partition)?;
        self.shared.mem.touch(&entry, now_ms);
        let cid = entry.meta.body_cid;
        Some(match self.shared.mem.resident_body(&cid)? {
            Ok((body, tick)) => Ok((HeldEntry { entry, body }, tick)),
            Err(generation) => Err(HeldEntry {
                entry,
                body: self.cold_body(&cid, generation)?,
            }),
        })
    }

    /// Every resource the store holds an entry for (any partition), in no
    /// particular order. Memory only: no disk read.
    pub fn resource_ids(&self) -> Vec<ResourceId> {
        self.shared.mem.resource_ids()
    }

    /// A body held for `rid` under any partition, the most recently stored
    /// first (for ETag synthesis: the caller revalidates with its own token).
    pub fn get_any(&self, rid: &ResourceId) -> Option<(Partition, Hit)> {
        let now = now_ms();
        for (p, entry) in self.shared.mem.lookup_all(rid) {
            self.shared.mem.touch(&entry, now);
            if let Some(body) = self.body(&entry.meta.body_cid) {
                let meta = entry.snapshot();
                return Some((p, Hit { meta, body }));
            }
        }
        None
    }

    /// Stores (or replaces) an entry. `meta.body_cid` must be the CID of
    /// `body`; `body_len` and `last_access_ms` are filled in here.
    pub fn put(
        &self,
        rid: ResourceId,
        partition: Partition,
        mut meta: EntryMeta,
        body: Bytes,
    ) -> Result<(), StoreError> {
        let actual = ContentId::of(&body);
        if actual != meta.body_cid {
            return Err(StoreError::BodyMismatch {
                expected: meta.body_cid,
                actual,
            });
        }
        let meta_len = meta.footprint();
        if meta_len > MAX_META_BYTES {
            return Err(StoreError::MetaTooLarge {
                len: meta_len,
                max: MAX_META_BYTES,
            });
        }
        let len = body.len() as u64;
        if len + meta_len > self.shared.config.max_bytes {
            return Err(StoreError::TooLarge {
                len,
                max_bytes: self.shared.config.max_bytes,
            });
        }
        meta.body_len = len;
        meta.last_access_ms = now_ms();
        let mem = &self.shared.mem;
        let entry = mem.new_entry(meta, mem.tick());
        mem.insert(rid, partition, entry, &body, &mut self.sink());
        if !self.shared.config.persistence && self.over_limits() {
            self.kick();
        }
        Ok(())
    }

    fn over_limits(&self) -> bool {
        let c = &self.shared.config;
        self.shared.mem.entries.load(Relaxed) > c.max_entries
            || self.shared.mem.total_bytes() > c.max_bytes
    }

    /// Marks every partition's copy of `rid` stale (kept, but must be
    /// revalidated before it is served as fresh).
    pub fn mark_stale(&self, rid: &ResourceId) {
        self.shared.mem.mark_stale(rid, &mut self.sink());
    }

    /// Removes every partition's copy of `rid`. Returns how many went.
    pub fn remove(&self, rid: &ResourceId) -> u64 {
        self.shared
            .mem
            .remove_where(rid, |_, _| true, &mut self.sink())
    }

    /// Persists a write-invalidation record (a 16-byte path hash and when).
    /// The caller owns the records in memory; the store only keeps them
    /// across restarts.
    pub fn put_invalidation(&self, key: [u8; 16], at_ms: u64) {
        if self.shared.config.persistence {
            self.send(Msg::Change(Change::PutInvalidation(key, at_ms)));
        }
    }

    /// Forgets a persisted write-invalidation record.
    pub fn remove_invalidation(&self, key: [u8; 16]) {
        if self.shared.config.persistence {
            self.send(Msg::Change(Change::DelInvalidation(key)));
        }
    }

    /// The write-invalidation records persisted before this start (read
    /// from disk; empty for a memory-only store).
    pub fn invalidations(&self) -> Result<Vec<([u8; 16], u64)>, StoreError> {
        let db = self.shared.db.read().clone();
        match (db, &self.shared.path) {
            (Some(db), Some(path)) => persist::load_invalidations(path, &db),
            _ => Ok(Vec::new()),
        }
    }

    /// A body by content id (verified if it had to be read from disk).
    pub fn get_blob(&self, cid: &ContentId) -> Option<Bytes> {
        self.body(cid)
    }

    pub fn contains_blob(&self, cid: &ContentId) -> bool {
        self.shared.mem.blob_exists(cid)
    }

    pub fn stats(&self) -> StoreStats {
        let m = &self.shared.mem;
        StoreStats {
            entries: m.entries.load(Relaxed),
            bytes: m.bytes.load(Relaxed),
            meta_bytes: m.meta_bytes.load(Relaxed),
            resident_bytes: m.resident.load(Relaxed),
            evictions: m.evictions.load(Relaxed),
            corrupt_dropped: m.corrupt_dropped.load(Relaxed),
            persist_errors: self.shared.persist_errors.load(Relaxed),
            degraded: self.shared.degraded.load(Relaxed),
            path: self.shared.path.clone(),
        }
    }

    /// Blocks until every change made before the call is committed to disk
    /// (and pending eviction is done). A degraded store tries to recover
    /// first; if it cannot, this returns with `stats().degraded` still set.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Msg::Flush(tx));
        let _ = rx.recv();
    }

    fn body(&self, cid: &ContentId) -> Option<Bytes> {
        match self.shared.mem.resident_body(cid)? {
            Ok((body, _)) => Some(body),
            Err(generation) => self.cold_body(cid, generation),
        }
    }

    fn cold_body(&self, cid: &ContentId, generation: u64) -> Option<Bytes> {
        let db = self.shared.db.read().clone()?;
        match persist::read_blob(&db, cid) {
            Ok(Some(v)) if cid.verify(&v) => {
                let body = Bytes::from(v);
                self.shared.mem.install_body(cid, generation, &body);
                Some(body)
            }
            Ok(Some(_)) => {
                self.drop_corrupt(cid, "body does not match its content id");
                None
            }
            Ok(None) => {
                // Only corruption if the slot we saw still exists: otherwise
                // it was removed (and its row deleted) while we looked.
                if self.shared.mem.slot_generation_is(cid, generation) {
                    self.drop_corrupt(cid, "body missing from the store file");
                }
                None
            }
            Err(e) => {
                // I/O trouble is not corruption: a miss now, retried later.
                tracing::debug!(%cid, error = %e, "store: cold body read failed");
                None
            }
        }
    }

    fn drop_corrupt(&self, cid: &ContentId, why: &str) {
        let mut n = 0;
        for (rid, p, e) in self.shared.mem.entries_with_body(cid) {
            n += self.shared.mem.remove_where(
                &rid,
                |q, cur| *q == p && Arc::ptr_eq(cur, &e),
                &mut self.sink(),
            );
        }
        self.shared.mem.corrupt_dropped.fetch_add(n, Relaxed);
        tracing::warn!(%cid, dropped = n, reason = why, "store: corrupt body; dropped its entries");
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// Renames `path` to `path.corrupt-<unix-seconds>` (suffixed if taken).
fn quarantine(path: &Path) -> Result<PathBuf, StoreError> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.corrupt-{ts}", path.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &target).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(target)
}

/// The background thread: group commits, eviction, degraded-mode retries.
struct Writer {
    shared: Arc<Shared>,
    pending: Vec<Change>,
    pending_bytes: u64,
    waiters: Vec<mpsc::SyncSender<()>>,
    shutdown: bool,
    next_retry: Option<Instant>,
}

impl Writer {
    fn new(shared: Arc<Shared>, initial: Vec<Change>) -> Writer {
        Writer {
            shared,
            pending: initial,
            pending_bytes: 0,
            waiters: Vec::new(),
            shutdown: false,
            next_retry: None,
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Change(c) => {
                if let Change::PutBlob(_, _, b) = &c {
                    self.pending_bytes += b.len() as u64;
                }
                self.pending.push(c);
            }
            Msg::Flush(w) => self.waiters.push(w),
            Msg::Kick => {}
            Msg::Shutdown => self.shutdown = true,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            if self.pending.is_empty() && self.waiters.is_empty() && !self.shutdown {
                let msg = match self.next_retry {
                    Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now()))
                    {
                        Ok(m) => Some(m),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Shutdown),
                    },
                    None => Some(rx.recv().unwrap_or(Msg::Shutdown)),
                };
                if let Some(m) = msg {
                    self.take(m);
                }
            }
            while self.pending.len() < MAX_BATCH_CHANGES && self.pending_bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => self.take(m),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.shutdown = true;
                        break;
                    }
                }
            }
            self.step();
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            if self.shutdown {
                return;
            }
        }
    }

    fn step(&mut self) {
        let shared = self.shared.clone();
        let c = &shared.config;
        let pending = &mut self.pending;
        shared.mem.evict(c.max_entries, c.max_bytes, &mut |ch| {
            if c.persistence {
                pending.push(ch);
            }
        });
        self.pending_bytes = 0;
        if !c.persistence {
            self.pending.clear();
            return;
        }
        let changes = std::mem::take(&mut self.pending);
        if shared.degraded.load(Relaxed) {
            // Memory holds everything; a successful retry rewrites the file
            // from memory, so queued changes need not be kept.
            let due = self.next_retry.is_none_or(|t| Instant::now() >= t);
            if due || !self.waiters.is_empty() || self.shutdown {
                self.try_recover();
            }
            return;
        }
        if !changes.is_empty() {
            let db = shared.db.read().clone();
            let result = match &db {
                Some(db) => persist::commit(db, &changes),
                None => Err(redb::Error::Io(std::io::Error::other(
                    "store file not open",
                ))),
            };
            match result {
                Ok(()) => {
                    for ch in &changes {
                        if let Change::PutBlob(cid, generation, _) = ch {
                            shared.mem.mark_durable(cid, *generation);
                        }
                    }
                }
                Err(e) => self.enter_degraded(&e),
            }
        }
        if !shared.degraded.load(Relaxed) {
            shared.mem.trim_resident(shared.hot_budget);
        }
    }

    fn enter_degraded(&mut self, e: &redb::Error) {
        let shared = &self.shared;
        shared.persist_errors.fetch_add(1, Relaxed);
        self.next_retry = Some(Instant::now() + RETRY_EVERY);
        if !shared.degraded.swap(true, Relaxed) {
            let path = shared.path.as_deref().unwrap_or(Path::new("?"));
            if persist::is_storage_full(e) {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "store: disk full; serving from memory only and retrying every {}s",
                    RETRY_EVERY.as_secs()
                );
            } else {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "store: cannot write to disk; serving from memory only and retrying every {}s",
                    RETRY_EVERY.as_secs()
                );
            }
        }
    }

    /// Reopens the file (redb refuses further writes after an I/O error) and
    /// rewrites it to match memory.
    fn try_recover(&mut self) {
        let shared = self.shared.clone();
        let Some(path) = shared.path.clone() else {
            return;
        };
        // Release our handle so the file can be reopened.
        drop(shared.db.write().take());
        let result = persist::open_db(&path).and_then(|db| {
            let (entries, blobs) = shared.mem.snapshot();
            let r = persist::resync(&db, &entries, &blobs).map_err(|e| persist::db_err(&path, e));
            *shared.db.write() = Some(Arc::new(db));
            r.map(|()| blobs)
        });
        match result {
            Ok(blobs) => {
                for (cid, generation, body) in &blobs {
                    if body.is_some() {
                        shared.mem.mark_durable(cid, *generation);
                    }
                }
                shared.degraded.store(false, Relaxed);
                self.next_retry = None;
                tracing::info!(path = %path.display(), "store: persistence recovered; file resynchronised");
            }
            Err(e) => {
                shared.persist_errors.fetch_add(1, Relaxed);
                self.next_retry = Some(Instant::now() + RETRY_EVERY);
                tracing::debug!(error = %e, "store: persistence still failing");
            }
        }
    }
}
