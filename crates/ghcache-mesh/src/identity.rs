//! The daemon's persistent libp2p identity (ed25519).

use std::path::Path;

use ghcache_core::private_file::read_or_create;
use libp2p::identity::Keypair;

use crate::error::MeshError;

/// Loads the keypair at `path`, or creates one (mode 0600, atomically, so
/// a crash never leaves half a key and two racing starts agree on one key).
pub fn load_or_create(path: &Path) -> Result<Keypair, MeshError> {
    // A fresh key always encodes; an empty file would be refused below.
    let fresh = || {
        Keypair::generate_ed25519()
            .to_protobuf_encoding()
            .unwrap_or_default()
    };
    let (bytes, _) =
        read_or_create(path, 4096, fresh).map_err(|source| MeshError::IdentityFile { source })?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|source| MeshError::IdentityKey {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("a/identity.key");
        let a = load_or_create(&p).expect("create");
        let b = load_or_create(&p).expect("load");
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(&p, b"junk").expect("w");
        let err = load_or_create(&p).expect_err("junk");
        // The decoding error is kept as the source, not flattened to text.
        let source = std::error::Error::source(&err).expect("source");
        assert!(source.is::<libp2p::identity::DecodingError>(), "{err}");
        assert!(err.to_string().contains("move it aside"), "{err}");
        // An unreadable path (a directory) keeps the file error.
        let err = load_or_create(dir.path()).expect_err("a directory");
        assert!(matches!(err, MeshError::IdentityFile { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
