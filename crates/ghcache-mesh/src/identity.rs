//! The daemon's persistent libp2p identity (ed25519).

use std::path::Path;

use ghcache_core::private_file::read_or_create;
use libp2p::identity::Keypair;

use crate::error::MeshError;

/// Loads the keypair at `path`, or creates one (mode 0600, atomically, so
/// a crash never leaves half a key and two racing starts agree on one key).
pub fn load_or_create(path: &Path) -> Result<Keypair, MeshError> {
    let bad = |reason: String| MeshError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    // A fresh key always encodes; an empty file would be refused below.
    let fresh = || {
        Keypair::generate_ed25519()
            .to_protobuf_encoding()
            .unwrap_or_default()
    };
    let (bytes, _) = read_or_create(path, 4096, fresh).map_err(|e| bad(e.to_string()))?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
        bad(format!(
            "not a libp2p keypair ({e}); move it aside and a new identity will be created"
        ))
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
        assert!(load_or_create(&p).is_err());
    }
}
