use std::path::PathBuf;

/// Errors from parsing identifiers or loading the partition secret.
///
/// Messages never include token material; they name the offending input and
/// say what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error(
        "invalid content id {input:?}: {reason} (expected a CIDv1 string such as \"bafkrei…\", raw codec 0x55, sha2-256)"
    )]
    InvalidContentId { input: String, reason: String },

    #[error("invalid resource id {input:?}: expected 64 hex characters (32 bytes)")]
    InvalidResourceId { input: String },

    #[error("invalid partition bytes: got {len} bytes, expected 0 (anonymous) or 32 (keyed HMAC)")]
    InvalidPartitionBytes { len: usize },

    #[error("invalid partition {input:?}: expected \"anon\" or 64 hex characters")]
    InvalidPartition { input: String },

    #[error("partition secret {path}: {source} (check that the directory exists and is writable)")]
    SecretIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "partition secret {path} holds {len} bytes, expected exactly 32; it is not a ghcache secret \
         or was truncated. Move it aside (mv {path} {path}.bad) and a new one will be created \
         (cached entries then become unreachable and are refetched)"
    )]
    SecretBadLength { path: PathBuf, len: u64 },

    #[error(
        "partition secret {path} is accessible by group or others (mode {mode:o}); \
         run `chmod 600 {path}` so only the daemon's user can read it"
    )]
    SecretPermissions { path: PathBuf, mode: u32 },
}
