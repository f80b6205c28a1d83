//! The clients' side of the channel: ask the daemon over its socket, or,
//! when no daemon listens there, become the owner for one request.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

use crate::wire::{Envelope, FrameError, Response, read_frame, write_frame};
use crate::{KeySource, Service, VaultError};

/// How long a client waits for the daemon's answer, or for another
/// owner to release the vault.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Daemon,
    /// No daemon listened: this process opened the vault under its lock.
    Local,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot use the vault socket {} (it belongs to the daemon's user: run this as that user, or root)",
        socket.display()
    )]
    Denied {
        socket: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vault socket {}", socket.display())]
    Channel {
        socket: std::path::PathBuf,
        #[source]
        source: FrameError,
    },
    #[error("vault socket {}: no answer within {} s", socket.display(), ANSWER_DEADLINE.as_secs())]
    Timeout { socket: std::path::PathBuf },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Sends `envelope` to the daemon on `socket`; without a daemon there,
/// opens the vault in `vault_dir` with the key `key()` resolves and answers
/// it here, holding the owner lock.
pub async fn call(
    socket: &Path,
    vault_dir: &Path,
    key: impl FnOnce() -> Result<KeySource, VaultError>,
    envelope: Envelope,
) -> Result<(Response, Via), ClientError> {
    match UnixStream::connect(socket).await {
        Ok(mut stream) => {
            let channel = |source| ClientError::Channel {
                socket: socket.to_path_buf(),
                source,
            };
            // A refusal may arrive before the request is taken: read the
            // answer even when writing failed.
            let exchange = async {
                let sent = write_frame(&mut stream, &envelope).await;
                match (sent, read_frame::<_, Response>(&mut stream).await) {
                    (_, Ok(response)) => Ok(response),
                    (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
                }
            };
            match tokio::time::timeout(ANSWER_DEADLINE, exchange).await {
                Ok(Ok(response)) => Ok((response, Via::Daemon)),
                Ok(Err(e)) => Err(channel(e)),
                Err(_) => Err(ClientError::Timeout {
                    socket: socket.to_path_buf(),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(ClientError::Denied {
            socket: socket.to_path_buf(),
            source: e,
        }),
        Err(e) => {
            tracing::debug!(socket = %socket.display(), error = %e, "no daemon serves the vault; opening it here");
            let key = key()?;
            let dir = vault_dir.to_path_buf();
            let answer = tokio::task::spawn_blocking(move || {
                Service::open(&dir, &key, ANSWER_DEADLINE).map(|service| service.handle(envelope))
            })
            .await
            .map_err(|e| VaultError::Io {
                path: vault_dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })??;
            Ok((answer, Via::Local))
        }
    }
}
