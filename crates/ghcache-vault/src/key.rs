//! The master key: from a 0600 key file, `GHCACHE_MASTER_KEY`, or a
//! passphrase stretched with PBKDF2-HMAC-SHA256 under the vault's salt.

use std::path::{Path, PathBuf};

use ghcache_core::private_file::{PrivateFileError, read_or_create};
use rand::RngCore;
use sha2::Sha256;

use crate::VaultError;

/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// The master key itself (64 hex digits) or a passphrase to stretch.
pub const MASTER_KEY_ENV: &str = "GHCACHE_MASTER_KEY";
/// A passphrase (at least 12 characters), stretched with the vault's salt.
pub const PASSPHRASE_ENV: &str = "GHCACHE_VAULT_PASSPHRASE";

/// Where the master key comes from, in the order [`KeySource::resolve`]
/// tries them (no OS keyring: see the README's Credentials section).
#[derive(Clone)]
pub enum KeySource {
    /// 32 random bytes (or 64 hex digits) in a file readable only by its owner;
    /// created on first use.
    File(PathBuf),
    /// `GHCACHE_MASTER_KEY`: 64 hex digits are the key itself; anything else
    /// is stretched like a passphrase.
    Env(String),
    Passphrase(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// The first source that exists: the key file (when present, or
    /// configured explicitly), `GHCACHE_MASTER_KEY`, `GHCACHE_VAULT_PASSPHRASE`;
    /// with none of them, the key file, created on first use.
    pub fn resolve(
        key_file: &Path,
        key_file_configured: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> KeySource {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if key_file_configured || key_file.exists() {
            return KeySource::File(key_file.to_path_buf());
        }
        if let Some(key) = set(MASTER_KEY_ENV) {
            return KeySource::Env(key);
        }
        if let Some(passphrase) = set(PASSPHRASE_ENV) {
            return KeySource::Passphrase(passphrase);
        }
        KeySource::File(key_file.to_path_buf())
    }

    /// What `doctor` shows: the kind and the file, never the key.
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(path) => format!("key file {}", path.display()),
            KeySource::Env(_) => "GHCACHE_MASTER_KEY (environment)".into(),
            KeySource::Passphrase(_) => {
                format!(
                    "{PASSPHRASE_ENV} passphrase (PBKDF2-HMAC-SHA256, {PBKDF2_ITERATIONS} iterations)"
                )
            }
        }
    }
}

/// The key that wraps the vault's data key.
pub struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..redacted..)")
    }
}

impl MasterKey {
    /// Resolves `source`; `salt` is the vault's own (passphrases only).
    pub fn derive(source: &KeySource, salt: &[u8]) -> Result<MasterKey, VaultError> {
        match source {
            KeySource::File(path) => {
                let generate = || {
                    let mut key = [0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut key);
                    key.to_vec()
                };
                let (bytes, _) = read_or_create(path, 4096, generate).map_err(|e| match e {
                    PrivateFileError::Permissions { path, mode } => {
                        VaultError::KeyPermissions { path, mode }
                    }
                    PrivateFileError::Io { path, source } => VaultError::Io { path, source },
                    PrivateFileError::TooLarge { path, len, .. } => VaultError::BadKey(format!(
                        "{} holds {len} bytes; a master key file holds 32 bytes or 64 hex digits",
                        path.display()
                    )),
                })?;
                raw_or_hex(&bytes).ok_or_else(|| {
                    VaultError::BadKey(format!(
                        "{} is not 32 bytes or 64 hex digits",
                        path.display()
                    ))
                })
            }
            KeySource::Env(value) => {
                match raw_or_hex(value.trim().as_bytes()).filter(|_| value.trim().len() == 64) {
                    Some(key) => Ok(key),
                    None => passphrase(value, MASTER_KEY_ENV, salt),
                }
            }
            KeySource::Passphrase(value) => passphrase(value, PASSPHRASE_ENV, salt),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn passphrase(value: &str, from: &str, salt: &[u8]) -> Result<MasterKey, VaultError> {
    if value.chars().count() < 12 {
        return Err(VaultError::BadKey(format!(
            "{from} is not 64 hex digits, so it is a passphrase, and a passphrase needs at least 12 characters"
        )));
    }
    Ok(stretch(value, salt))
}

fn stretch(secret: &str, salt: &[u8]) -> MasterKey {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt, PBKDF2_ITERATIONS, &mut key);
    MasterKey(key)
}

/// 32 raw bytes, or 64 hex digits (with or without a trailing newline).
fn raw_or_hex(bytes: &[u8]) -> Option<MasterKey> {
    if let Ok(key) = <[u8; 32]>::try_from(bytes) {
        return Some(MasterKey(key));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).ok()?;
    Some(MasterKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_source_that_exists_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vault.key");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let both = env(&[
            (MASTER_KEY_ENV, "from-the-environment"),
            (PASSPHRASE_ENV, "a long passphrase"),
        ]);
        assert!(matches!(
            KeySource::resolve(&file, false, both),
            KeySource::Env(_)
        ));
        let pass = env(&[(PASSPHRASE_ENV, "a long passphrase")]);
        assert!(matches!(
            KeySource::resolve(&file, false, pass),
            KeySource::Passphrase(_)
        ));
        assert!(matches!(
            KeySource::resolve(&file, true, both),
            KeySource::File(_)
        ));
        assert!(matches!(
            KeySource::resolve(&file, false, env(&[])),
            KeySource::File(_)
        ));
        std::fs::write(&file, [7u8; 32]).expect("write");
        assert!(matches!(
            KeySource::resolve(&file, false, both),
            KeySource::File(_)
        ));
    }

    #[test]
    fn a_short_environment_key_is_refused() {
        let err = MasterKey::derive(&KeySource::Env("short".into()), b"salt").unwrap_err();
        assert!(err.to_string().contains("at least 12"), "{err}");
    }
}
