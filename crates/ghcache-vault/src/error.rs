use std::path::PathBuf;

/// Everything the vault can refuse, each saying what to do about it.
/// No variant ever carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the master key does not open this vault ({}): it was created with another key. Use the key it was created with (key file, GHCACHE_MASTER_KEY or passphrase)",
        path.display()
    )]
    WrongKey { path: PathBuf },
    #[error(
        "master key file {} is readable by group or others (mode {mode:o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("master key: {0}")]
    BadKey(String),
    #[error("{}: not a vault file this ghcache understands ({detail})", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "record {file}: does not open (tampered, corrupt, or sealed under another name or scope)"
    )]
    RecordTampered { file: String },
    #[error("invalid name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("invalid scope {input:?}: {why}")]
    BadScope { input: String, why: String },
    #[error(
        "{name} already has a value for scope {scope}: use `ghcache creds rotate {name} --scope {scope}` to replace it"
    )]
    Exists { name: String, scope: String },
    #[error(
        "{name}: scope {new} would tie with the existing scope {existing} (equally specific, both could match one job); make one more specific"
    )]
    Tie {
        name: String,
        new: String,
        existing: String,
    },
    #[error("no credential {name} with scope {scope}")]
    NotFound { name: String, scope: String },
    #[error("invalid value: {0}")]
    BadValue(String),
    #[error("{name} was changed but the audit log could not record it: {detail}")]
    Unaudited { name: String, detail: String },
    #[error(
        "the vault {} is held by another process (a running daemon, or another ghcache command) and was not released within {waited_secs} s; if a daemon runs, its socket should answer",
        path.display()
    )]
    Busy { path: PathBuf, waited_secs: u64 },
    #[error("audit log {}: {detail}", path.display())]
    Audit { path: PathBuf, detail: String },
}

impl VaultError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> VaultError {
        let path = path.into();
        move |source| VaultError::Io { path, source }
    }
}
