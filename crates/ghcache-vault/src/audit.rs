//! The audit log: append-only JSON lines, never a value. Each line carries
//! the hash of the one before, and `audit.head` the hash and count of the
//! last, so `verify` finds an edited, removed, reordered or truncated line.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Claims, VaultError};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    Ok,
    Refused,
    Expired,
    NotFound,
    Error,
}

/// One event, as the caller describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// `set`, `get`, `inject`, `rotate`, `rm`, …
    pub action: String,
    pub name: String,
    pub scope: Option<String>,
    pub version: Option<u32>,
    /// Who asked (repository, workflow, runner, run id) and whether that
    /// was verified.
    pub actor: Claims,
    pub outcome: AuditOutcome,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    seq: u64,
    /// Unix seconds.
    time: u64,
    #[serde(flatten)]
    entry: AuditEntry,
    claims_verified: bool,
    prev: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Head {
    count: u64,
    hash: String,
}

/// What `verify` found on a sound log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub lines: u64,
}

#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
}

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// The log `audit.jsonl` (and its `audit.head`) in `dir`.
    pub fn new(dir: &Path) -> AuditLog {
        AuditLog {
            path: dir.join("audit.jsonl"),
            head: dir.join("audit.head"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, detail: impl Into<String>) -> VaultError {
        VaultError::Audit {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn read_head(&self) -> Result<Head, VaultError> {
        match std::fs::read(&self.head) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| self.err(format!("audit.head is unreadable: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Head {
                count: 0,
                hash: GENESIS.into(),
            }),
            Err(e) => Err(VaultError::io(&self.head)(e)),
        }
    }

    /// Appends one line, chained to the last (serialised by a lock file).
    pub fn append(&self, entry: AuditEntry) -> Result<(), VaultError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let lock_path = dir.join(".audit.lock");
        let lock = crate::vault::lock_file(&lock_path)?;
        lock.lock().map_err(VaultError::io(&lock_path))?;
        let head = self.read_head()?;
        let line = Line {
            seq: head.count + 1,
            time: crate::vault::now_secs(),
            claims_verified: entry.actor.verified,
            entry,
            prev: head.hash,
        };
        let text = serde_json::to_string(&line).map_err(|e| self.err(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(VaultError::io(&self.path))?;
        file.write_all(format!("{text}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(VaultError::io(&self.path))?;
        let new_head = Head {
            count: line.seq,
            hash: hash_line(&text),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(VaultError::io(dir))?;
        tmp.write_all(&serde_json::to_vec(&new_head).unwrap_or_default())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(VaultError::io(&self.head))?;
        tmp.persist(&self.head)
            .map_err(|e| VaultError::io(&self.head)(e.error))?;
        Ok(())
    }

    /// The last `n` lines as written (JSON, never a value).
    pub fn last_lines(&self, n: usize) -> Result<Vec<String>, VaultError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(VaultError::io(&self.path)(e)),
        };
        let mut tail = std::collections::VecDeque::with_capacity(n.min(4096));
        for line in BufReader::new(file).lines() {
            tail.push_back(line.map_err(VaultError::io(&self.path))?);
            if tail.len() > n {
                tail.pop_front();
            }
        }
        Ok(tail.into())
    }

    /// Checks the chain from the first line to `audit.head`.
    pub fn verify(&self) -> Result<Verified, VaultError> {
        let head = self.read_head()?;
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && head.count == 0 => {
                return Ok(Verified { lines: 0 });
            }
            Err(e) => return Err(VaultError::io(&self.path)(e)),
        };
        let mut prev = GENESIS.to_owned();
        let mut count = 0u64;
        for (index, text) in BufReader::new(file).lines().enumerate() {
            let n = index + 1;
            let text = text.map_err(VaultError::io(&self.path))?;
            let line: Line = serde_json::from_str(&text)
                .map_err(|e| self.err(format!("line {n} is not an audit record: {e}")))?;
            if line.prev != prev {
                return Err(self.err(format!(
                    "line {n} does not follow line {} (edited, removed or reordered lines)",
                    n - 1
                )));
            }
            if line.seq != count + 1 {
                return Err(self.err(format!(
                    "line {n} has sequence {} (expected {})",
                    line.seq,
                    count + 1
                )));
            }
            prev = hash_line(&text);
            count += 1;
        }
        if count != head.count || prev != head.hash {
            return Err(self.err(format!(
                "the log ends after {count} lines but {} were written (truncated, or its last line edited)",
                head.count
            )));
        }
        Ok(Verified { lines: count })
    }
}
