//! The local channel on a real Unix socket: one owner, a private socket,
//! bounded frames, and the fallback when no daemon listens.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use ghcache_vault::client::{self, Via};
use ghcache_vault::server::{ChannelError, VaultServer};
use ghcache_vault::wire::{Envelope, Request, Response, WireSecret};
use ghcache_vault::{Claims, KeySource, Service, VaultError};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn key() -> KeySource {
    KeySource::Env(KEY.into())
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

async fn ask(socket: &Path, vault: &Path, request: Request) -> (Response, Via) {
    let envelope = Envelope {
        claims: Claims::default(),
        request,
    };
    client::call(socket, vault, || Ok(key()), envelope)
        .await
        .unwrap()
}

fn set(name: &str, value: &str) -> Request {
    Request::Set {
        name: name.into(),
        scope: "global".parse().unwrap(),
        value: WireSecret(value.to_owned().into()),
        ttl_secs: None,
        description: None,
    }
}

#[tokio::test]
async fn the_daemon_owns_the_vault_and_serves_it_on_a_private_socket() {
    let dir = private_dir();
    let vault = dir.path().join("vault");
    let socket = dir.path().join("vault.sock");
    let service = Service::open(&vault, &key(), Duration::ZERO).unwrap();
    let server = VaultServer::start(service, &socket).unwrap();

    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600);

    // One owner: a second opener waits, then gives up saying why.
    let busy = Service::open(&vault, &key(), Duration::from_millis(100)).unwrap_err();
    assert!(matches!(busy, VaultError::Busy { .. }), "{busy}");
    // And a second server on the same socket is refused.
    let dir2 = private_dir();
    let other = Service::open(&dir2.path().join("vault"), &key(), Duration::ZERO).unwrap();
    let refused = VaultServer::start(other, &socket).unwrap_err();
    assert!(
        matches!(refused, ChannelError::AlreadyServed { .. }),
        "{refused}"
    );

    let (answer, via) = ask(&socket, &vault, set("TOKEN", "v1-value")).await;
    assert_eq!(via, Via::Daemon);
    assert!(matches!(answer, Response::Record { .. }), "{answer:?}");
    let (answer, _) = ask(
        &socket,
        &vault,
        Request::Get {
            name: "TOKEN".into(),
            scope: "global".parse().unwrap(),
        },
    )
    .await;
    let Response::Value { value, record } = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(value.0.expose_secret(), "v1-value");
    assert_eq!(record.version, 1);
    let (answer, _) = ask(&socket, &vault, Request::Select { names: None }).await;
    let Response::Selection { chosen, .. } = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(chosen.len(), 1);
    assert_eq!(
        server
            .counters()
            .credentials_injected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // After shutdown the socket is gone and the client opens the vault itself.
    server.shutdown().await;
    assert!(!socket.exists());
    let (answer, via) = ask(&socket, &vault, Request::List).await;
    assert_eq!(via, Via::Local);
    let Response::Records { records, problems } = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(records.len(), 1);
    assert!(problems.is_empty());
}

#[tokio::test]
async fn oversized_and_garbage_frames_are_refused_and_the_server_keeps_serving() {
    let dir = private_dir();
    let vault = dir.path().join("vault");
    let socket = dir.path().join("vault.sock");
    let service = Service::open(&vault, &key(), Duration::ZERO).unwrap();
    let server = VaultServer::start(service, &socket).unwrap();

    for frame in [
        u32::MAX.to_be_bytes().to_vec(),
        [&7u32.to_be_bytes()[..], b"garbage"].concat(),
    ] {
        let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        stream.write_all(&frame).await.unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.unwrap();
        let answer: Response = serde_json::from_slice(&body).unwrap();
        let Response::Error { message, usage } = answer else {
            panic!("{answer:?}")
        };
        assert!(usage && message.starts_with("bad request"), "{message}");
    }
    let (answer, via) = ask(&socket, &vault, set("AFTER", "still-served")).await;
    assert_eq!(via, Via::Daemon);
    assert!(matches!(answer, Response::Record { .. }), "{answer:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_socket_directory_others_can_write_is_refused() {
    let dir = private_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let service = Service::open(&dir.path().join("vault"), &key(), Duration::ZERO).unwrap();
    let err = VaultServer::start(service, &dir.path().join("vault.sock")).unwrap_err();
    assert!(
        matches!(err, ChannelError::UnsafeDirectory { mode: 0o777, .. }),
        "{err}"
    );
    assert!(!dir.path().join("vault.sock").exists());
}
