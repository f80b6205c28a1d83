//! The credential vault's findings: which master key source is in use,
//! whether the key file is private, and who serves the vault.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use ghcache_vault::KeySource;

use crate::{Finding, Level, finding};

/// `source` is the binary's resolution (the one the daemon and CLI use).
pub fn vault(source: &KeySource, socket: &Path) -> Vec<Finding> {
    let mut out = vec![finding(
        Level::Info,
        "vault",
        format!(
            "master key: {} (OS keyring: not supported)",
            source.describe()
        ),
        "",
    )];
    if let KeySource::File(path) = source {
        match ghcache_core::private_file::wider_than_private(path) {
            Ok(Some(mode)) => out.push(finding(
                Level::Fail,
                "vault",
                format!(
                    "master key file {} is readable by other users (mode {mode:o}); the vault refuses it",
                    path.display()
                ),
                &format!("run `chmod 600 {}`", path.display()),
            )),
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(finding(
                Level::Info,
                "vault",
                format!(
                    "master key file {} does not exist yet: the first vault command creates it (0600)",
                    path.display()
                ),
                "",
            )),
            Err(e) => out.push(finding(
                Level::Fail,
                "vault",
                format!("cannot inspect the master key file {}: {e}", path.display()),
                "check the path (vault.key_file / GHCACHE_VAULT_KEY_FILE)",
            )),
        }
    }
    out.push(match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() && meta.mode() & 0o077 == 0 => finding(
            Level::Ok,
            "vault",
            format!("vault socket {} is private (mode 600)", socket.display()),
            "",
        ),
        Ok(meta) => finding(
            Level::Fail,
            "vault",
            format!(
                "{} is not a private socket (mode {:o})",
                socket.display(),
                meta.mode() & 0o7777
            ),
            "stop the daemon, remove the file and start the daemon again",
        ),
        Err(_) => finding(
            Level::Info,
            "vault",
            format!(
                "no vault socket at {}: no daemon serves the vault; `ghcache creds` opens it itself under its lock",
                socket.display()
            ),
            "",
        ),
    });
    out
}
