//! One sealed value on disk, and what may be shown of it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Scope, VaultError};

/// The file form of a record: metadata in clear, the value sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    pub name: String,
    pub scope: Scope,
    pub version: u32,
    /// Unix seconds.
    pub created: u64,
    pub expires: Option<u64>,
    pub description: Option<String>,
    pub nonce: String,
    pub ciphertext: String,
}

/// What `list` shows: never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    pub name: String,
    pub scope: Scope,
    pub version: u32,
    pub created: u64,
    pub expires: Option<u64>,
    pub description: Option<String>,
}

impl RecordInfo {
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// `never`, or the expiry in UTC as HTTP dates read.
    pub fn expiry_text(&self) -> String {
        self.expires.map_or_else(|| "never".into(), time_text)
    }
}

/// Unix seconds as an HTTP date (UTC).
pub fn time_text(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

impl StoredRecord {
    pub fn info(&self) -> RecordInfo {
        RecordInfo {
            name: self.name.clone(),
            scope: self.scope.clone(),
            version: self.version,
            created: self.created,
            expires: self.expires,
            description: self.description.clone(),
        }
    }

    /// The associated data: a ciphertext opens only as the record it was
    /// sealed for (same name, scope and version).
    pub fn aad(name: &str, scope: &Scope, version: u32) -> Vec<u8> {
        format!("ghcache-vault/v1\0{name}\0{scope}\0{version}").into_bytes()
    }

    pub fn file_name(&self) -> String {
        let scope = Sha256::digest(self.scope.to_string().as_bytes());
        format!(
            "{}.{}.v{}.json",
            self.name,
            hex::encode(&scope[..8]),
            self.version
        )
    }
}

/// Names are environment-variable names: that is where values go.
pub(crate) fn check_name(name: &str) -> Result<(), VaultError> {
    let bad = |why| VaultError::BadName {
        name: name.to_owned(),
        why,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(bad("empty")),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return Err(bad("must start with a letter or _"));
        }
        _ => {}
    }
    if name.len() > 128 {
        return Err(bad("longer than 128 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(
            "letters, digits and _ only (it becomes an environment variable)",
        ));
    }
    Ok(())
}
