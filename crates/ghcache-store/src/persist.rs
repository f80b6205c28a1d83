//! The redb side: file format, validation at open, loading, batched commits.

// redb::Error is large, but it only travels on rare failure paths (commit
// failure, cold read failure), once per batch; boxing buys nothing here.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ghcache_core::{ContentId, Partition, ResourceId};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::StoreError;
use crate::mem::{Change, Entry, Mem};
use crate::types::{EntryMeta, HEAD_FORMAT};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("ghcache_meta");
/// key: resource id (32) ++ partition bytes (0 or 32); value: JSON EntryMeta.
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// key: sha2-256 digest of the body (the CID's digest); value: the body.
const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
/// key: 16-byte hash of a path a write invalidated; value: unix ms (the
/// proxy's write-invalidation record, kept so that a restart forgets none).
/// Files written before it existed lack it; it is created on first write.
const INVALIDATIONS: TableDefinition<&[u8], u64> = TableDefinition::new("invalidations");

const MAGIC: &[u8] = b"ghcache-store";
pub(crate) const FORMAT_VERSION: u32 = 1;
/// redb's own page cache. Our hot layer caches bodies already, so keep this
/// small instead of redb's large default.
const REDB_CACHE_BYTES: usize = 16 << 20;

pub(crate) fn db_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Maps an error met while reading the file to Corrupt when the file itself
/// is bad, to Database otherwise.
fn read_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(d) => corrupt(path, format!("redb reports corruption: {d}")),
        redb::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            corrupt(path, format!("unreadable redb data: {io}"))
        }
        other => db_err(path, other),
    }
}

/// Opens (creating if absent) and validates the store file.
pub(crate) fn open_db(path: &Path) -> Result<Database, StoreError> {
    let db = Database::builder()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.to_path_buf(),
            },
            redb::DatabaseError::UpgradeRequired(v) => corrupt(
                path,
                format!("redb file format {v} is older than this redb supports"),
            ),
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if !matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                StoreError::Io {
                    path: path.to_path_buf(),
                    source: io,
                }
            }
            other => corrupt(path, format!("not a readable redb database ({other})")),
        })?;
    validate(path, &db)?;
    Ok(db)
}

fn validate(path: &Path, db: &Database) -> Result<(), StoreError> {
    let rtx = db.begin_read().map_err(|e| read_err(path, e))?;
    let tables: Vec<String> = rtx
        .list_tables()
        .map_err(|e| read_err(path, e))?
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    if !tables.iter().any(|t| t == "ghcache_meta") {
        if !tables.is_empty() {
            return Err(corrupt(
                path,
                format!(
                    "a redb database without ghcache metadata (foreign file; tables: {})",
                    tables.join(", ")
                ),
            ));
        }
        drop(rtx);
        // A brand-new (or never-committed) file: stamp it as ours.
        let init = || -> Result<(), redb::Error> {
            let mut wtx = db.begin_write()?;
            wtx.set_durability(Durability::Immediate);
            {
                let mut meta = wtx.open_table(META)?;
                meta.insert("magic", MAGIC)?;
                meta.insert("format_version", FORMAT_VERSION.to_be_bytes().as_slice())?;
                wtx.open_table(ENTRIES)?;
                wtx.open_table(BLOBS)?;
            }
            wtx.commit()?;
            Ok(())
        };
        return init().map_err(|e| match e {
            redb::Error::Io(source) => StoreError::Io {
                path: path.to_path_buf(),
                source,
            },
            other => db_err(path, other),
        });
    }
    let meta = rtx.open_table(META).map_err(|e| read_err(path, e))?;
    let magic = meta.get("magic").map_err(|e| read_err(path, e))?;
    if magic.as_ref().map(|m| m.value()) != Some(MAGIC) {
        return Err(corrupt(
            path,
            "ghcache_meta table has a wrong or missing magic",
        ));
    }
    let version = meta
        .get("format_version")
        .map_err(|e| read_err(path, e))?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| corrupt(path, "ghcache_meta table has no readable format_version"))?;
    if version > FORMAT_VERSION {
        return Err(StoreError::NewerVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < 1 {
        return Err(corrupt(
            path,
            format!("impossible format_version {version}"),
        ));
    }
    for t in ["entries", "blobs"] {
        if !tables.iter().any(|x| x == t) {
            return Err(corrupt(path, format!("table {t} is missing")));
        }
    }
    Ok(())
}

/// Fills `mem` from the file. Unreadable entries, entries whose body is
/// missing, and bodies nobody references are counted and cleaned up by the
/// returned changes (applied by the writer's first commit).
pub(crate) fn load(path: &Path, db: &Database, mem: &Mem) -> Result<Vec<Change>, StoreError> {
    let rtx = db.begin_read().map_err(|e| read_err(path, e))?;
    let blobs = rtx.open_table(BLOBS).map_err(|e| read_err(path, e))?;
    let entries = rtx.open_table(ENTRIES).map_err(|e| read_err(path, e))?;
    let mut cleanup = Vec::new();

    let mut blob_lens: HashMap<ContentId, u64> = HashMap::new();
    for row in blobs.iter().map_err(|e| read_err(path, e))? {
        let (k, v) = row.map_err(|e| read_err(path, e))?;
        match <[u8; 32]>::try_from(k.value()) {
            Ok(d) => {
                blob_lens.insert(ContentId::from_digest(d), v.value().len() as u64);
            }
            Err(_) => cleanup.push(Change::DelBlobRaw(k.value().to_vec())),
        }
    }

    let mut loaded: Vec<(ResourceId, Partition, EntryMeta)> =
        Vec::with_capacity(entries.len().unwrap_or(0) as usize);
    let mut referenced: HashSet<ContentId> = HashSet::new();
    let mut outdated = 0u64;
    for row in entries.iter().map_err(|e| read_err(path, e))? {
        let (k, v) = row.map_err(|e| read_err(path, e))?;
        let key = k.value();
        let parsed = (key.len() >= 32)
            .then(|| {
                let rid = ResourceId::from_slice(&key[..32]).ok()?;
                let p = Partition::from_bytes(&key[32..]).ok()?;
                let meta: EntryMeta = serde_json::from_slice(v.value()).ok()?;
                Some((rid, p, meta))
            })
            .flatten();
        match parsed {
            // Stored by an older version with only a few of its headers:
            // replaying it would not be the answer GitHub gave, so it is
            // dropped (a miss) rather than served.
            Some((_, _, meta)) if meta.head_format < HEAD_FORMAT => {
                outdated += 1;
                cleanup.push(Change::DelEntry(key.to_vec()));
            }
            Some((rid, p, meta)) if blob_lens.contains_key(&meta.body_cid) => {
                referenced.insert(meta.body_cid);
                loaded.push((rid, p, meta));
            }
            _ => {
                mem.corrupt_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                cleanup.push(Change::DelEntry(key.to_vec()));
            }
        }
    }
    if outdated > 0 {
        tracing::info!(
            entries = outdated,
            "dropped entries stored by an older version without their full header set; each is a miss once"
        );
    }
    for (cid, len) in blob_lens {
        if referenced.contains(&cid) {
            mem.insert_loaded_blob(cid, len);
        } else {
            cleanup.push(Change::DelBlob(cid));
        }
    }
    // Oldest access first, so the LRU clock reflects the persisted order.
    loaded.sort_by_key(|(_, _, m)| m.last_access_ms);
    for (rid, p, meta) in loaded {
        let entry = mem.new_entry(meta, mem.tick());
        mem.insert_loaded(rid, p, entry);
    }
    Ok(cleanup)
}

/// The persisted write-invalidation records (none in older files).
pub(crate) fn load_invalidations(
    path: &Path,
    db: &Database,
) -> Result<Vec<([u8; 16], u64)>, StoreError> {
    let rtx = db.begin_read().map_err(|e| read_err(path, e))?;
    let table = match rtx.open_table(INVALIDATIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(read_err(path, e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| read_err(path, e))? {
        let (k, v) = row.map_err(|e| read_err(path, e))?;
        if let Ok(key) = <[u8; 16]>::try_from(k.value()) {
            out.push((key, v.value()));
        }
    }
    Ok(out)
}

/// Reads and returns a body from redb (unverified; the caller verifies).
pub(crate) fn read_blob(db: &Database, cid: &ContentId) -> Result<Option<Vec<u8>>, redb::Error> {
    let rtx = db.begin_read()?;
    let t = rtx.open_table(BLOBS)?;
    Ok(t.get(cid.digest().as_slice())?.map(|v| v.value().to_vec()))
}

/// Applies one batch in one transaction.
///
/// Durability::Immediate (fsync on commit): the writer batches every change
/// queued while the previous commit was running, so one fsync covers many
/// puts, and `flush()` can promise durability. redb's copy-on-write commit
/// means a crash (even kill -9 mid-commit) leaves the last committed state;
/// never a half-written entry. Quick repair keeps reopening after a crash
/// fast instead of a full file walk.
pub(crate) fn commit(db: &Database, changes: &[Change]) -> Result<(), redb::Error> {
    let mut wtx = db.begin_write()?;
    wtx.set_durability(Durability::Immediate);
    wtx.set_quick_repair(true);
    {
        let mut entries = wtx.open_table(ENTRIES)?;
        let mut blobs = wtx.open_table(BLOBS)?;
        for c in changes {
            match c {
                Change::PutEntry(k, e) => {
                    entries.insert(k.as_slice(), encode_meta(e).as_slice())?;
                }
                Change::DelEntry(k) => {
                    entries.remove(k.as_slice())?;
                }
                Change::PutBlob(cid, _, body) => {
                    blobs.insert(cid.digest().as_slice(), body.as_ref())?;
                }
                Change::DelBlob(cid) => {
                    blobs.remove(cid.digest().as_slice())?;
                }
                Change::DelBlobRaw(k) => {
                    blobs.remove(k.as_slice())?;
                }
                Change::PutInvalidation(k, at) => {
                    wtx.open_table(INVALIDATIONS)?.insert(k.as_slice(), *at)?;
                }
                Change::DelInvalidation(k) => {
                    wtx.open_table(INVALIDATIONS)?.remove(k.as_slice())?;
                }
            }
        }
    }
    wtx.commit()?;
    Ok(())
}

/// Rewrites the file to match memory exactly (after a persistence outage).
pub(crate) fn resync(
    db: &Database,
    entries_now: &[(Vec<u8>, Arc<Entry>)],
    blobs_now: &[(ContentId, u64, Option<bytes::Bytes>)],
) -> Result<(), redb::Error> {
    let mut wtx = db.begin_write()?;
    wtx.set_durability(Durability::Immediate);
    wtx.set_quick_repair(true);
    {
        let mut entries = wtx.open_table(ENTRIES)?;
        let keep: HashSet<&[u8]> = entries_now.iter().map(|(k, _)| k.as_slice()).collect();
        let mut drop_keys = Vec::new();
        for row in entries.iter()? {
            let (k, _) = row?;
            if !keep.contains(k.value()) {
                drop_keys.push(k.value().to_vec());
            }
        }
        for k in drop_keys {
            entries.remove(k.as_slice())?;
        }
        for (k, e) in entries_now {
            entries.insert(k.as_slice(), encode_meta(e).as_slice())?;
        }

        let mut blobs = wtx.open_table(BLOBS)?;
        let keep: HashSet<[u8; 32]> = blobs_now.iter().map(|(c, _, _)| *c.digest()).collect();
        let mut drop_keys = Vec::new();
        for row in blobs.iter()? {
            let (k, _) = row?;
            if <[u8; 32]>::try_from(k.value()).map_or(true, |d| !keep.contains(&d)) {
                drop_keys.push(k.value().to_vec());
            }
        }
        for k in drop_keys {
            blobs.remove(k.as_slice())?;
        }
        for (cid, _, body) in blobs_now {
            if let Some(body) = body {
                blobs.insert(cid.digest().as_slice(), body.as_ref())?;
            }
        }
    }
    wtx.commit()?;
    Ok(())
}

fn encode_meta(e: &Entry) -> Vec<u8> {
    // Serialising a plain struct of strings and integers cannot fail.
    serde_json::to_vec(&e.snapshot()).unwrap_or_default()
}

/// True for "no space left" (ENOSPC), quota (EDQUOT) and friends.
pub(crate) fn is_storage_full(e: &redb::Error) -> bool {
    let io = match e {
        redb::Error::Io(io) => io,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::StorageFull
        || io.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(io.raw_os_error(), Some(28 | 122))
}

pub(crate) fn store_path(dir: &Path) -> PathBuf {
    dir.join("store.redb")
}
