//! The mesh's error type.

use std::path::PathBuf;

/// Errors starting or talking to the mesh. Never contains the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    #[error("mesh identity {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("mesh configuration: {0}")]
    Config(String),
    #[error("mesh transport: {0}")]
    Transport(String),
    #[error(
        "cannot listen on {addr}: {reason} (is another ghcache daemon using the port? set CACHE_LISTEN_PORT)"
    )]
    Listen { addr: String, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("the mesh has shut down")]
    Closed,
}
