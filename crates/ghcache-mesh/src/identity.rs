//! The daemon's persistent libp2p identity (ed25519).

use std::io::{Read, Write};
use std::path::Path;

use libp2p::identity::Keypair;

use crate::MeshError;

/// Loads the keypair at `path`, or creates one (mode 0600, temp file +
/// fsync + hard link, so a crash never leaves half a key and two racing
/// starts agree on one key).
pub fn load_or_create(path: &Path) -> Result<Keypair, MeshError> {
    let io = |e: std::io::Error| MeshError::Identity {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match std::fs::File::open(path) {
        Ok(f) => read_existing(path, f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| MeshError::Identity {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let written = opts.open(&tmp).and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_existing(path, std::fs::File::open(path).map_err(io)?)
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

fn read_existing(path: &Path, mut f: std::fs::File) -> Result<Keypair, MeshError> {
    let bad = |reason: String| MeshError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    let md = f.metadata().map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = md.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "accessible by group or others (mode {mode:o}); run `chmod 600 {}`",
                path.display()
            )));
        }
    }
    if md.len() > 4096 {
        return Err(bad("too large to be a libp2p key".into()));
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|e| bad(e.to_string()))?;
    Keypair::from_protobuf_encoding(&buf).map_err(|e| {
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
