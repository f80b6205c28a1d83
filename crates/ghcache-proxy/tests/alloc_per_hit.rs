//! Heap allocations per fresh `HIT`, counted by a wrapping global allocator:
//! the proxy in front of the fake GitHub over loopback, driven by a raw
//! keep-alive HTTP/1.1 client that allocates nothing per request, so every
//! allocation counted is the server's (hyper's and the pipeline's).
//!
//! A load-independent check of the hit path (docs/BENCHMARKS.md records the
//! figures): the body is never copied (bytes allocated per hit stay far below
//! its size) and the allocation count stays under a bound.
//! `cargo nextest run -p ghcache-proxy -E 'test(allocations_per_hit)' --no-capture`
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use ghcache_fakehub::FakeHubConfig;
use ghcache_store::Store;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Hits measured per round (after warm-up), and rounds per path.
const HITS: usize = 500;
const ROUNDS: usize = 4;
/// Ceiling on allocations per hit (hyper's request parsing included).
/// Measured 3.0 for both paths (the clone of the prepared head: its
/// entries, index and extra values) since steps 1-3 run in hyper's
/// service call and answers need no boxed body, and 7.0 under a job's
/// prefix (stripping it makes the path, the base and the URI anew); 7.0
/// and 11 before, 37 at first. The margin absorbs dependency updates.
const MAX_ALLOCS_PER_HIT: usize = 8;
/// Ceiling on bytes allocated per hit: about 2 KB are measured (the head).
/// hyper allocates a new 8 KiB read buffer for every request when the
/// request is still held as it reads on; a copy of the body would add all
/// of it.
const MAX_BYTES_PER_HIT: f64 = 6144.0;

/// One response read off the socket: its status line and head, and the
/// body length. The buffer is reused; nothing is allocated.
fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> (usize, usize) {
    let mut filled = 0;
    let head_end = loop {
        let n = stream.read(&mut buf[filled..]).unwrap();
        assert!(n > 0, "proxy closed the connection");
        filled += n;
        if let Some(at) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = &buf[..head_end];
    let length = head
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"content-length")
                .then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())
                .flatten()
        })
        .expect("a content-length");
    while filled < head_end + length {
        let n = stream.read(&mut buf[filled..]).unwrap();
        assert!(n > 0, "proxy closed the connection mid-body");
        filled += n;
    }
    assert_eq!(filled, head_end + length, "one response at a time");
    (head_end, length)
}

fn is_hit(head: &[u8]) -> bool {
    head.windows(15)
        .any(|w| w.eq_ignore_ascii_case(b"x-ghcache: HIT\r"))
}

/// (allocations, bytes allocated) per hit, and the body length. The
/// store's writer runs in this process too: it is flushed after the
/// warm-up, and each figure's quietest round of a few counts.
fn measure(addr: SocketAddr, request: Vec<u8>, store: &Store) -> (f64, f64, usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let mut body_len = 0;
    let mut last_head = String::new();
    // The first answer is the miss that stores the entry.
    for _ in 0..50 {
        stream.write_all(&request).unwrap();
        let (head, len) = read_response(&mut stream, &mut buf);
        body_len = len;
        last_head = String::from_utf8_lossy(&buf[..head]).into_owned();
    }
    assert!(is_hit(last_head.as_bytes()), "not a HIT:\n{last_head}");
    store.flush();
    let (mut fewest, mut least) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let region = Region::new(GLOBAL);
        for _ in 0..HITS {
            stream.write_all(&request).unwrap();
            let (head, len) = read_response(&mut stream, &mut buf);
            assert!(is_hit(&buf[..head]), "every measured answer is a HIT");
            assert_eq!(len, body_len);
        }
        let change = region.change();
        fewest = fewest.min(change.allocations as f64 / HITS as f64);
        least = least.min(change.bytes_allocated as f64 / HITS as f64);
    }
    (fewest, least, body_len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_per_hit() {
    let rig = common::rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let token = world.pat("alice").to_owned();
    // The benchmark's resources (scripts/bench-proxy): a repository with
    // pull request 1 and at least 30 workflow runs.
    let mut repo = None;
    for candidate in world.repos().iter().filter(|r| r.workflow_runs >= 30) {
        let path = format!("/repos/{}/pulls/1", candidate.full_name);
        if rig.get(&path, Some(&token)).await.status == 200 {
            repo = Some(candidate.full_name.clone());
            break;
        }
    }
    let repo = repo.expect("the fake GitHub has a repository with pull request 1");
    let addr = rig.proxy.addr();
    let mut measured = Vec::new();
    // A job's requests (`setup-github-cache` points clients under
    // `/_job/<id>/`) take the same path after their prefix is stripped.
    for path in [
        format!("/repos/{repo}/pulls/1"),
        format!("/repos/{repo}/actions/runs?per_page=30"),
        format!("/_job/alloc-per-hit/repos/{repo}/pulls/1"),
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: token {token}\r\n\
             Accept: application/vnd.github+json\r\n\r\n"
        )
        .into_bytes();
        let store = rig.store.clone();
        let (allocs, bytes, body_len) =
            tokio::task::spawn_blocking(move || measure(addr, request, &store))
                .await
                .unwrap();
        println!(
            "{path}: {allocs:.1} allocations and {bytes:.0} bytes allocated per HIT \
             (body {body_len} bytes)"
        );
        measured.push((path, allocs, bytes, body_len));
    }
    // A job's prefix costs no allocation: the connection remembers the
    // job's counters, its link base and the last target it stripped.
    let (direct, job) = (measured[0].1, measured[2].1);
    assert!(
        job <= direct,
        "a job's hit allocates {job:.1} times, a direct one {direct:.1}"
    );
    for (path, allocs, bytes, body_len) in measured {
        assert!(
            bytes < MAX_BYTES_PER_HIT,
            "{path}: {bytes:.0} bytes allocated per hit of a {body_len}-byte body: \
             is the body copied, or the request held while hyper reads on?"
        );
        assert!(
            allocs <= MAX_ALLOCS_PER_HIT as f64,
            "{path}: {allocs:.1} allocations per hit, more than {MAX_ALLOCS_PER_HIT}"
        );
    }
}
