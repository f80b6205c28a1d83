//! The mesh's error type. Inner errors are kept as `#[source]` (their text
//! is also in the message, as `PrivateFileError` does, for plain `{}`).

use std::path::PathBuf;

use libp2p::Multiaddr;

/// A boxed inner error (transport set-up, listeners).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors starting or talking to the mesh. Never contains the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    #[error("mesh identity: {source}")]
    IdentityFile {
        #[source]
        source: ghcache_core::private_file::PrivateFileError,
    },
    #[error(
        "mesh identity {path}: not a libp2p keypair ({source}); move it aside and a new identity will be created"
    )]
    IdentityKey {
        path: PathBuf,
        #[source]
        source: libp2p::identity::DecodingError,
    },
    #[error("mesh configuration: {0}")]
    Config(String),
    #[error("mesh start-up: the {what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("mesh transport: {source}")]
    Transport {
        #[source]
        source: BoxError,
    },
    #[error(
        "cannot listen on {addr}: {source} (is another ghcache daemon using the port? set CACHE_LISTEN_PORT)"
    )]
    Listen {
        addr: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot listen on {addr}: no listen address came up within 10 s")]
    ListenTimeout { addr: String },
    #[error("cannot dial {addr}: {source}")]
    Dial {
        addr: Multiaddr,
        #[source]
        // Boxed: a DialError is large, and every Result<_, MeshError> would carry it.
        source: Box<libp2p::swarm::DialError>,
    },
    #[error("the mesh has shut down")]
    Closed,
}
