//! The local channel: a Unix socket `vault.sock` in the state directory,
//! 0600 and owned by the daemon's user, bound in a private directory and
//! renamed into place so it is never reachable with wider permissions.
//! Every connection's peer uid (SO_PEERCRED) must be the daemon's or root's.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};

use crate::Service;
use crate::wire::{Envelope, FrameError, MAX_FRAME_BYTES, Response, read_frame, write_frame};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client has this long to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(
        "refusing to serve the vault on {}: its directory {} is writable by group or others (mode {mode:o}), who could replace the socket; run `chmod go-w {}`",
        socket.display(), dir.display(), dir.display()
    )]
    UnsafeDirectory {
        socket: PathBuf,
        dir: PathBuf,
        mode: u32,
    },
    #[error(
        "refusing to serve the vault on {}: its directory {} belongs to uid {owner}, not to this user (uid {me}) or root",
        socket.display(), dir.display()
    )]
    ForeignDirectory {
        socket: PathBuf,
        dir: PathBuf,
        owner: u32,
        me: u32,
    },
    #[error(
        "refusing to serve the vault on {}: the socket came out with mode {mode:o} or owner uid {owner}; expected 600 and uid {me}",
        socket.display()
    )]
    UnsafeSocket {
        socket: PathBuf,
        mode: u32,
        owner: u32,
        me: u32,
    },
    #[error(
        "another process already serves the vault on {}; stop it first (one owner per vault)",
        socket.display()
    )]
    AlreadyServed { socket: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChannelError + '_ {
    move |source| ChannelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A served vault; the socket is removed on `shutdown`.
#[derive(Debug)]
pub struct VaultServer {
    socket: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

/// What the channel has done, for stats and metrics (never names or values).
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub refused_peers: AtomicU64,
    pub credentials_injected: AtomicU64,
}

impl VaultServer {
    /// Checks the socket's directory, binds the socket and starts serving.
    pub fn start(service: Service, socket: &Path) -> Result<VaultServer, ChannelError> {
        let dir = socket.parent().unwrap_or(Path::new(".")).to_path_buf();
        // A fresh private directory beside the socket: bind there (0700, so
        // nobody can connect before the chmod), then rename into place.
        let staging = tempfile::Builder::new()
            .prefix(".vault-sock-")
            .tempdir_in(&dir)
            .map_err(io(&dir))?;
        let me = std::fs::metadata(staging.path())
            .map_err(io(staging.path()))?
            .uid();
        check_directory(socket, &dir, me)?;
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(ChannelError::AlreadyServed {
                socket: socket.to_path_buf(),
            });
        }
        let staged = staging.path().join("vault.sock");
        let listener = std::os::unix::net::UnixListener::bind(&staged).map_err(io(&staged))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
            .map_err(io(&staged))?;
        std::fs::rename(&staged, socket).map_err(io(socket))?;
        drop(staging);
        let meta = std::fs::symlink_metadata(socket).map_err(io(socket))?;
        if meta.mode() & 0o077 != 0 || meta.uid() != me {
            return Err(ChannelError::UnsafeSocket {
                socket: socket.to_path_buf(),
                mode: meta.mode() & 0o7777,
                owner: meta.uid(),
                me,
            });
        }
        listener.set_nonblocking(true).map_err(io(socket))?;
        let listener = UnixListener::from_std(listener).map_err(io(socket))?;
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::new(service),
            me,
            stopped,
            counters.clone(),
        ));
        tracing::info!(socket = %socket.display(), "vault served on its local socket (mode 600)");
        Ok(VaultServer {
            socket: socket.to_path_buf(),
            stop,
            task,
            counters,
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting, removes the socket and releases the vault.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn check_directory(socket: &Path, dir: &Path, me: u32) -> Result<(), ChannelError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(ChannelError::UnsafeDirectory {
            socket: socket.to_path_buf(),
            dir: dir.to_path_buf(),
            mode,
        });
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Err(ChannelError::ForeignDirectory {
            socket: socket.to_path_buf(),
            dir: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    Ok(())
}

async fn accept_loop(
    listener: UnixListener,
    service: Arc<Service>,
    me: u32,
    mut stopped: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "vault socket: accept failed");
                    // EMFILE and the like: give the process a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let service = service.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            serve_one(stream, service, me, &counters).await;
            drop(permit);
        });
    }
}

async fn serve_one(mut stream: UnixStream, service: Arc<Service>, me: u32, counters: &Counters) {
    let peer = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(e) => {
            tracing::warn!(error = %e, "vault socket: cannot read the caller's credentials; refused");
            return;
        }
    };
    if peer.uid() != me && peer.uid() != 0 {
        counters.refused_peers.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            uid = peer.uid(),
            pid = peer.pid(),
            "vault socket: refused a caller of another user"
        );
        let refusal = Response::Error {
            message: format!(
                "this vault is served only to uid {me} (the daemon's user) and root; you are uid {}",
                peer.uid()
            ),
            usage: false,
        };
        let _ = write_frame(&mut stream, &refusal).await;
        return;
    }
    let envelope: Envelope =
        match tokio::time::timeout(REQUEST_DEADLINE, read_frame(&mut stream)).await {
            Ok(Ok(envelope)) => envelope,
            Ok(Err(FrameError::Closed)) => return,
            Ok(Err(e)) => {
                let message = format!("bad request: {e}");
                let _ = write_frame(
                    &mut stream,
                    &Response::Error {
                        message,
                        usage: true,
                    },
                )
                .await;
                return;
            }
            Err(_) => return,
        };
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let action = envelope.request.action();
    tracing::debug!(action, uid = peer.uid(), "vault request");
    let response = match tokio::task::spawn_blocking(move || service.handle(envelope)).await {
        Ok(response) => response,
        Err(e) => Response::Error {
            message: format!("the vault failed while answering: {e}"),
            usage: false,
        },
    };
    if let Response::Selection { chosen, .. } = &response {
        counters
            .credentials_injected
            .fetch_add(chosen.len() as u64, Ordering::Relaxed);
    }
    let sent = match write_frame(&mut stream, &response).await {
        // Too many large values for one frame: say so rather than hang up.
        Err(FrameError::TooLarge(_)) => {
            let message = format!(
                "the answer is over the {MAX_FRAME_BYTES}-byte frame bound; ask for fewer names at once"
            );
            write_frame(
                &mut stream,
                &Response::Error {
                    message,
                    usage: true,
                },
            )
            .await
        }
        other => other,
    };
    if let Err(e) = sent {
        tracing::debug!(action, error = %e, "vault socket: the caller left before the answer");
    }
}
