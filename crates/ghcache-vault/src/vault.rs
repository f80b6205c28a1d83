//! The vault directory: `vault.json` (salt and the wrapped data key), one
//! file per record under `records/`, and `.lock` serialising writers.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::record::{RecordInfo, StoredRecord, check_name};
use crate::{Claims, KeySource, MasterKey, Scope, VaultError};
use ghcache_core::aead::{open, seal};

const FORMAT: u32 = 1;
const DATA_KEY_AAD: &[u8] = b"ghcache-vault/v1/data-key";

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    /// For passphrase-derived master keys.
    salt: String,
    nonce: String,
    wrapped_data_key: String,
}

/// An open vault: the data key is in memory, records are read on demand.
pub struct Vault {
    dir: PathBuf,
    /// Zeroed when the vault is dropped.
    data_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a job gets: the values its scope allows, and what was held back.
#[derive(Debug, Default)]
pub struct Selection {
    pub chosen: Vec<(RecordInfo, SecretString)>,
    /// Matching credentials whose newest version has expired: never injected.
    pub expired: Vec<RecordInfo>,
    /// Requested names nothing matched.
    pub missing: Vec<String>,
    /// Records that could not be read or opened (by file), skipped.
    pub problems: Vec<String>,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Vault {
    /// Opens the vault in `dir` (created 0700 on first use, with a fresh
    /// data key wrapped by the master key). A wrong master key is refused
    /// before any record is read.
    pub fn open(dir: &Path, source: &KeySource) -> Result<Vault, VaultError> {
        ghcache_core::private_file::create_private_dir(dir).map_err(VaultError::io(dir))?;
        let records = dir.join("records");
        ghcache_core::private_file::create_private_dir(&records)
            .map_err(VaultError::io(&records))?;
        let header_path = dir.join("vault.json");
        let _lock = lock(dir)?;
        let header = match std::fs::read(&header_path) {
            Ok(bytes) => {
                serde_json::from_slice::<Header>(&bytes).map_err(|e| VaultError::Corrupt {
                    path: header_path.clone(),
                    detail: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut salt = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut salt);
                let master = MasterKey::derive(source, &salt)?;
                let mut data_key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut data_key);
                let (nonce, wrapped) = seal(master.bytes(), DATA_KEY_AAD, &data_key);
                let header = Header {
                    format: FORMAT,
                    salt: hex::encode(salt),
                    nonce: hex::encode(nonce),
                    wrapped_data_key: hex::encode(wrapped),
                };
                write_atomic(
                    dir,
                    &header_path,
                    &serde_json::to_vec_pretty(&header).unwrap_or_default(),
                )?;
                header
            }
            Err(e) => return Err(VaultError::io(&header_path)(e)),
        };
        if header.format != FORMAT {
            return Err(VaultError::Corrupt {
                path: header_path,
                detail: format!("format {} (this ghcache reads {FORMAT})", header.format),
            });
        }
        let corrupt = |detail: &str| VaultError::Corrupt {
            path: header_path.clone(),
            detail: detail.to_owned(),
        };
        let salt = hex::decode(&header.salt).map_err(|_| corrupt("salt is not hex"))?;
        let nonce = hex::decode(&header.nonce).map_err(|_| corrupt("nonce is not hex"))?;
        let wrapped =
            hex::decode(&header.wrapped_data_key).map_err(|_| corrupt("data key is not hex"))?;
        let master = MasterKey::derive(source, &salt)?;
        let data_key = open(master.bytes(), &nonce, DATA_KEY_AAD, &wrapped)
            .map(zeroize::Zeroizing::new)
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
            .map(zeroize::Zeroizing::new)
            .ok_or(VaultError::WrongKey { path: header_path })?;
        Ok(Vault {
            dir: dir.to_path_buf(),
            data_key,
        })
    }

    fn records_dir(&self) -> PathBuf {
        self.dir.join("records")
    }

    /// Every readable record, and a line per file that is not one.
    fn read_all(&self) -> Result<(Vec<StoredRecord>, Vec<String>), VaultError> {
        let dir = self.records_dir();
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(VaultError::io(&dir))? {
            let entry = entry.map_err(VaultError::io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            match std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<StoredRecord>(&b).ok())
            {
                Some(record) if record.file_name() == name => records.push(record),
                Some(_) => problems.push(format!("{name}: its name, scope or version was changed")),
                None => problems.push(format!("{name}: unreadable")),
            }
        }
        records.sort_by(|a, b| (&a.name, &a.scope, a.version).cmp(&(&b.name, &b.scope, b.version)));
        Ok((records, problems))
    }

    /// Metadata of every record (never a value), and unreadable files.
    pub fn list(&self) -> Result<(Vec<RecordInfo>, Vec<String>), VaultError> {
        let (records, problems) = self.read_all()?;
        Ok((records.iter().map(StoredRecord::info).collect(), problems))
    }

    /// Stores a new credential (version 1). Refused if the name already has
    /// a value for this scope, or another scope of the name would tie.
    pub fn set(
        &self,
        name: &str,
        scope: &Scope,
        value: &SecretString,
        ttl: Option<Duration>,
        description: Option<&str>,
    ) -> Result<RecordInfo, VaultError> {
        check_name(name)?;
        check_value(value)?;
        if let Some(text) = description
            && (text.chars().count() > 200 || text.chars().any(char::is_control))
        {
            return Err(VaultError::BadValue(
                "a description is one line of at most 200 characters".into(),
            ));
        }
        let _lock = lock(&self.dir)?;
        let (records, _) = self.read_all()?;
        let same_name = records.iter().filter(|r| r.name == name);
        for existing in same_name {
            if &existing.scope == scope {
                return Err(VaultError::Exists {
                    name: name.to_owned(),
                    scope: scope.to_string(),
                });
            }
            if existing.scope.ties_with(scope) {
                return Err(VaultError::Tie {
                    name: name.to_owned(),
                    new: scope.to_string(),
                    existing: existing.scope.to_string(),
                });
            }
        }
        self.write_version(name, scope, 1, value, ttl, description)
    }

    /// A new version of an existing credential; the previous newest expires
    /// after `grace` (or keeps an earlier expiry).
    pub fn rotate(
        &self,
        name: &str,
        scope: &Scope,
        value: &SecretString,
        ttl: Option<Duration>,
        grace: Duration,
    ) -> Result<RecordInfo, VaultError> {
        check_name(name)?;
        check_value(value)?;
        let _lock = lock(&self.dir)?;
        let (records, _) = self.read_all()?;
        let Some(previous) = records
            .iter()
            .filter(|r| r.name == name && &r.scope == scope)
            .max_by_key(|r| r.version)
        else {
            return Err(VaultError::NotFound {
                name: name.to_owned(),
                scope: scope.to_string(),
            });
        };
        let info = self.write_version(
            name,
            scope,
            previous.version + 1,
            value,
            ttl,
            previous.description.as_deref(),
        )?;
        let until = now_secs().saturating_add(grace.as_secs());
        let mut retired = previous.clone();
        retired.expires = Some(retired.expires.map_or(until, |at| at.min(until)));
        self.write_record(&retired)?;
        Ok(info)
    }

    /// Removes every version of `name` for `scope`; returns how many.
    pub fn remove(&self, name: &str, scope: &Scope) -> Result<usize, VaultError> {
        let _lock = lock(&self.dir)?;
        let (records, _) = self.read_all()?;
        let mut removed = 0;
        for record in records
            .iter()
            .filter(|r| r.name == name && &r.scope == scope)
        {
            let path = self.records_dir().join(record.file_name());
            std::fs::remove_file(&path).map_err(VaultError::io(&path))?;
            removed += 1;
        }
        if removed == 0 {
            return Err(VaultError::NotFound {
                name: name.to_owned(),
                scope: scope.to_string(),
            });
        }
        Ok(removed)
    }

    /// The values a job with `claims` gets: for each name (all, or those
    /// asked for), the newest version at the most specific matching scope.
    pub fn select(
        &self,
        claims: &Claims,
        names: Option<&[String]>,
    ) -> Result<Selection, VaultError> {
        let (records, problems) = self.read_all()?;
        let now = now_secs();
        let mut selection = Selection {
            problems,
            ..Selection::default()
        };
        let mut by_name: BTreeMap<&str, Vec<&StoredRecord>> = BTreeMap::new();
        for record in records.iter().filter(|r| r.scope.matches(claims)) {
            by_name.entry(&record.name).or_default().push(record);
        }
        if let Some(names) = names {
            selection.missing = names
                .iter()
                .filter(|n| !by_name.contains_key(n.as_str()))
                .cloned()
                .collect();
            by_name.retain(|n, _| names.iter().any(|w| w == n));
        }
        for candidates in by_name.values() {
            let top = candidates
                .iter()
                .map(|r| r.scope.specificity())
                .max()
                .unwrap_or(0);
            let mut top_scopes = candidates
                .iter()
                .filter(|r| r.scope.specificity() == top)
                .map(|r| &r.scope);
            let first = top_scopes.next();
            if let Some(other) = top_scopes.find(|s| Some(*s) != first) {
                // Refused at write; here only if records were edited by hand.
                selection.problems.push(format!(
                    "{}: scopes {} and {} tie for this job; neither is injected",
                    candidates[0].name,
                    first.map(ToString::to_string).unwrap_or_default(),
                    other
                ));
                continue;
            }
            let Some(newest) = candidates
                .iter()
                .filter(|r| r.scope.specificity() == top)
                .max_by_key(|r| r.version)
            else {
                continue;
            };
            if newest.info().expired(now) {
                selection.expired.push(newest.info());
                continue;
            }
            match self.open_value(newest) {
                Some(value) => selection.chosen.push((newest.info(), value)),
                None => selection.problems.push(format!(
                    "{}: does not open (tampered, corrupt, or sealed under another name or scope)",
                    newest.file_name()
                )),
            }
        }
        Ok(selection)
    }

    /// One value, explicitly (for scripts): the newest unexpired version.
    pub fn get(&self, name: &str, scope: &Scope) -> Result<(RecordInfo, SecretString), VaultError> {
        let (records, _) = self.read_all()?;
        let now = now_secs();
        let record = records
            .iter()
            .filter(|r| r.name == name && &r.scope == scope && !r.info().expired(now))
            .max_by_key(|r| r.version)
            .ok_or_else(|| VaultError::NotFound {
                name: name.to_owned(),
                scope: scope.to_string(),
            })?;
        let value = self
            .open_value(record)
            .ok_or_else(|| VaultError::RecordTampered {
                file: record.file_name(),
            })?;
        Ok((record.info(), value))
    }

    fn open_value(&self, record: &StoredRecord) -> Option<SecretString> {
        let nonce = hex::decode(&record.nonce).ok()?;
        let ciphertext = hex::decode(&record.ciphertext).ok()?;
        let aad = StoredRecord::aad(&record.name, &record.scope, record.version);
        let plain = open(&self.data_key, &nonce, &aad, &ciphertext)?;
        String::from_utf8(plain).ok().map(SecretString::from)
    }

    fn write_version(
        &self,
        name: &str,
        scope: &Scope,
        version: u32,
        value: &SecretString,
        ttl: Option<Duration>,
        description: Option<&str>,
    ) -> Result<RecordInfo, VaultError> {
        let now = now_secs();
        let aad = StoredRecord::aad(name, scope, version);
        let (nonce, ciphertext) = seal(&self.data_key, &aad, value.expose_secret().as_bytes());
        let record = StoredRecord {
            name: name.to_owned(),
            scope: scope.clone(),
            version,
            created: now,
            expires: ttl.map(|t| now.saturating_add(t.as_secs())),
            description: description.map(str::to_owned),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        };
        self.write_record(&record)?;
        Ok(record.info())
    }

    fn write_record(&self, record: &StoredRecord) -> Result<(), VaultError> {
        let path = self.records_dir().join(record.file_name());
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        write_atomic(&self.records_dir(), &path, &bytes)
    }
}

/// Values go into environment variables: text, not empty, bounded.
fn check_value(value: &SecretString) -> Result<(), VaultError> {
    let len = value.expose_secret().len();
    if len == 0 {
        return Err(VaultError::BadValue(
            "the value is empty (nothing on stdin, or an empty --value-file?)".into(),
        ));
    }
    if len > crate::wire::MAX_VALUE_BYTES {
        return Err(VaultError::BadValue(format!(
            "the value is {len} bytes; at most {} are accepted",
            crate::wire::MAX_VALUE_BYTES
        )));
    }
    Ok(())
}

/// Serialises writers across processes; released when dropped.
fn lock(dir: &Path) -> Result<File, VaultError> {
    let path = dir.join(".lock");
    let file = lock_file(&path)?;
    file.lock().map_err(VaultError::io(&path))?;
    Ok(file)
}

/// The file a `flock` is taken on (created empty, never truncated).
pub(crate) fn lock_file(path: &Path) -> Result<File, VaultError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(VaultError::io(path))
}

/// A random-named 0600 temp file in `dir`, fsynced, renamed over `path`.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(VaultError::io(dir))?;
    tmp.write_all(bytes).map_err(VaultError::io(path))?;
    tmp.as_file().sync_all().map_err(VaultError::io(path))?;
    tmp.persist(path)
        .map_err(|e| VaultError::io(path)(e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
