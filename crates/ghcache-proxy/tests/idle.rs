//! Idle connections are closed by the accept loop's sweeper (it replaced
//! hyper's per-request header timer): a client that never finishes its
//! head goes; a keep-alive client between requests stays within the limit;
//! a response still being sent is never cut, however slow its reader.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::origin::origin;
use http::Response;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: Duration = Duration::from_millis(300);

/// Reads until the proxy closes the socket (bounded); the bytes read.
async fn read_to_close(socket: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out))
        .await
        .expect("the proxy closed the connection within 10 s")
        .ok();
    out
}

#[tokio::test]
async fn a_client_dribbling_its_head_is_closed_after_the_idle_timeout() {
    let up = origin(|_| Response::new(Full::new(Bytes::from_static(b"{}")))).await;
    let state = tempfile::tempdir().unwrap();
    let (proxy, _store) =
        common::start_proxy(&up.base_url(), state.path(), |c| c.idle_timeout = IDLE).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    let start = Instant::now();
    socket
        .write_all(b"GET /repos/o/r HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut socket).await;
    assert!(answer.is_empty(), "no answer to half a head");
    assert!(start.elapsed() >= IDLE, "closed before the idle timeout");
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn keep_alive_requests_within_the_timeout_share_one_connection() {
    let up = origin(|_| Response::new(Full::new(Bytes::from_static(b"{}")))).await;
    let state = tempfile::tempdir().unwrap();
    let (proxy, _store) =
        common::start_proxy(&up.base_url(), state.path(), |c| c.idle_timeout = IDLE).await;
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut buf = vec![0u8; 64 << 10];
    // Four requests spread over more than the idle timeout, each gap within it.
    for _ in 0..4 {
        socket
            .write_all(b"GET /_ghcache/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = socket.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "served on the same connection"
        );
        tokio::time::sleep(IDLE / 3).await;
    }
    // Left alone, it is closed.
    assert!(read_to_close(&mut socket).await.is_empty());
}

#[tokio::test]
async fn a_response_still_being_sent_is_not_cut_by_the_idle_timeout() {
    const LEN: usize = 8 << 20;
    let up = origin(|_| Response::new(Full::new(Bytes::from(vec![b'x'; LEN])))).await;
    let state = tempfile::tempdir().unwrap();
    let (proxy, _store) = common::start_proxy(&up.base_url(), state.path(), |c| {
        c.idle_timeout = IDLE;
        c.max_cacheable_body = 1 << 20;
    })
    .await;
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    socket
        .write_all(b"GET /repos/o/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 16 << 10];
    let n = socket.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // A slow reader: the socket buffers fill and the proxy waits, with the
    // response unfinished, for longer than the idle timeout.
    tokio::time::sleep(IDLE * 3).await;
    let rest = read_to_close(&mut socket).await;
    let head_end = first[..n]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    let body = n - head_end + rest.len();
    assert_eq!(body, LEN, "the whole body arrived");
}
