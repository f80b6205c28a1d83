use std::path::PathBuf;

use ghcache_core::ContentId;

/// Errors from opening or writing the store. Each message names the file and
/// the next step; none ever includes request or token data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "store file {path} is not a usable ghcache store: {detail}. It was left untouched. \
         To start with an empty cache, move it aside: `mv {path} {path}.corrupt-$(date +%s)`"
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "store file {path} has format version {found}, but this ghcache supports up to {supported}; \
         it was written by a newer ghcache. Run that version, or move the file aside \
         (`mv {path} {path}.corrupt-$(date +%s)`) to start with an empty cache"
    )]
    NewerVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "store file {path} is already open in another process (is a ghcache daemon already \
         running with this state directory?)"
    )]
    Locked { path: PathBuf },

    #[error("store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("store file {path}: database error: {detail}")]
    Database { path: PathBuf, detail: String },

    #[error("body does not match its content id: expected {expected}, body hashes to {actual}")]
    BodyMismatch {
        expected: ContentId,
        actual: ContentId,
    },

    #[error("body of {len} bytes is larger than the whole store ({max_bytes} bytes); not cached")]
    TooLarge { len: u64, max_bytes: u64 },

    #[error(
        "response headers of {len} bytes exceed the {max} bytes an entry may carry; not cached"
    )]
    MetaTooLarge { len: u64, max: u64 },
}
