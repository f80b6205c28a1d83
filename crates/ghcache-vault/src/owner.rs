//! One owner at a time: the daemon holds `owner.lock` for as long as it
//! serves the vault; a CLI without a daemon holds it for one command.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::VaultError;

/// Held exclusively (`flock`) until dropped; the kernel releases it if the
/// process dies.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Waits up to `wait` for the current owner (polling; a blocking lock
    /// would hang forever behind a daemon).
    pub fn acquire(dir: &Path, wait: Duration) -> Result<OwnerLock, VaultError> {
        ghcache_core::private_file::create_private_dir(dir).map_err(VaultError::io(dir))?;
        let path = dir.join("owner.lock");
        let file = crate::vault::lock_file(&path)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(OwnerLock { _file: file }),
                Err(TryLockError::Error(e)) => return Err(VaultError::io(&path)(e)),
                Err(TryLockError::WouldBlock) if Instant::now() >= deadline => {
                    return Err(VaultError::Busy {
                        path: dir.to_path_buf(),
                        waited_secs: wait.as_secs(),
                    });
                }
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
