//! Mesh benchmarks (docs/BENCHMARKS.md): peer-hit latency with 5 daemons,
//! announcement reach across 20, and a 50-daemon mesh (memory, convergence).
//!
//! ```sh
//! cargo run --release -p ghcache-mesh --example mesh_bench -- all
//! cargo run --release -p ghcache-mesh --example mesh_bench -- peer-hit [daemons] [fetches] [body bytes] [requesters]
//! cargo run --release -p ghcache-mesh --example mesh_bench -- announce [daemons] [rounds]
//! cargo run --release -p ghcache-mesh --example mesh_bench -- fleet [daemons]
//! ```
//!
//! Every daemon is a real `Mesh` with its own redb store, its own identity
//! and its own single-threaded tokio runtime on its own OS thread (as close
//! to separate processes as one process gets), talking TCP/QUIC over
//! loopback. Discovery is the shared file registry with production
//! settings. Memory is the process's VmRSS growth divided by the daemons.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_mesh::{Mesh, MeshConfig};
use ghcache_store::{EntryMeta, Store, StoreConfig};

const NET: &str = "bench";
const SECRET: &[u8] = b"mesh benchmark secret";

struct Daemon {
    mesh: Mesh,
    store: Arc<Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a daemon's mesh on its own runtime thread.
fn spawn_daemon(root: &std::path::Path, index: usize, registry: &std::path::Path) -> Daemon {
    let dir = root.join(format!("d{index}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = MeshConfig::new(NET, SECRET.to_vec(), dir.join("identity.key"));
    config.listen_ip = "127.0.0.1".parse().unwrap();
    config.listen_port = 0;
    config.mdns = false;
    config.registry_dir = Some(registry.to_path_buf());
    let store = Arc::new(Store::open(&dir.join("store"), StoreConfig::default()).unwrap());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread_store = store.clone();
    let thread = std::thread::Builder::new()
        .name(format!("daemon-{index}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mesh = Mesh::start(config, thread_store).await.unwrap();
                ready_tx.send(mesh.clone()).unwrap();
                let _ = stop_rx.await;
                mesh.shutdown().await;
            });
        })
        .unwrap();
    let mesh = ready_rx.recv().unwrap();
    Daemon {
        mesh,
        store,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

fn spawn_fleet(n: usize) -> (tempfile::TempDir, Vec<Daemon>, Duration) {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let registry = root.path().join("registry");
    std::fs::create_dir_all(&registry).unwrap();
    let daemons: Vec<Daemon> = (0..n)
        .map(|i| spawn_daemon(root.path(), i, &registry))
        .collect();
    (root, daemons, started.elapsed())
}

/// Waits until every daemon is connected to all others and subscribed
/// peers on the announcement topic are all others; returns how long it took.
async fn converge(daemons: &[Daemon], limit: Duration) -> Duration {
    let start = Instant::now();
    let want = daemons.len() - 1;
    loop {
        let mut done = true;
        for d in daemons {
            let s = d.mesh.stats().await;
            if s.connected_peers.len() < want || s.announce_peers < want {
                done = false;
                break;
            }
        }
        if done {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the mesh did not converge within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn rid(i: usize) -> ResourceId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    b[8] = 0xbe;
    ResourceId::from_bytes(b)
}

fn meta(body: &[u8]) -> EntryMeta {
    EntryMeta {
        headers: vec![("content-type".into(), "application/json".into())].into(),
        etag: Some(format!("W/\"{}\"", ContentId::of(body))),
        ttl_ms: 60_000,
        ..EntryMeta::for_body(body)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Daemon 0 holds the entries; the others fetch them concurrently, one
/// request at a time each, through the production lookup (`PeerSource`).
async fn peer_hit(n: usize, fetches: usize, body_len: usize, requesters: usize) {
    let (_root, daemons, _) = spawn_fleet(n);
    let took = converge(&daemons, Duration::from_secs(60)).await;
    println!("peer-hit: {n} daemons converged in {}", show(took));
    let body = Bytes::from(vec![b'x'; body_len]);
    for i in 0..fetches {
        daemons[0]
            .store
            .put(rid(i), Partition::Anonymous, meta(&body), body.clone())
            .unwrap();
    }
    daemons[0].store.flush();
    // Publish provider records, as the proxy does when it stores an entry
    // (needed once there are more peers than the fan-out).
    for i in 0..fetches {
        daemons[0].mesh.hold(&rid(i));
    }
    let t = Instant::now();
    loop {
        let s = daemons[0].mesh.stats().await;
        if s.provided_keys >= fetches && s.provides_pending == 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "provider records");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "peer-hit: {fetches} provider records published in {}",
        show(t.elapsed())
    );
    let requesters = requesters.clamp(1, n - 1);
    let mut tasks = Vec::new();
    for (k, d) in daemons.iter().enumerate().skip(1).take(requesters) {
        let mesh = d.mesh.clone();
        tasks.push(tokio::spawn(async move {
            use ghcache_peer::PeerSource;
            let mut lat = Vec::new();
            let mut misses = 0;
            // Each requester takes every `requesters`-th resource: all
            // fetches are first-time fetches of distinct entries.
            for i in ((k - 1)..fetches).step_by(requesters) {
                let t = Instant::now();
                let got = mesh
                    .lookup(&rid(i), &Partition::Anonymous, Duration::from_secs(1))
                    .await;
                lat.push(t.elapsed());
                if got.is_none() {
                    misses += 1;
                }
            }
            (lat, misses)
        }));
    }
    let mut all = Vec::new();
    let mut misses = 0;
    for t in tasks {
        let (lat, m) = t.await.unwrap();
        all.extend(lat);
        misses += m;
    }
    all.sort();
    let within_50ms = all
        .iter()
        .filter(|d| **d <= Duration::from_millis(50))
        .count();
    // True misses: nobody holds these. The lookup must say so quickly, since
    // the proxy waits for it before asking GitHub.
    let mut miss_lat = Vec::new();
    for i in 0..200 {
        use ghcache_peer::PeerSource;
        let t = Instant::now();
        let got = daemons[1]
            .mesh
            .lookup(
                &rid(1_000_000 + i),
                &Partition::Anonymous,
                Duration::from_secs(1),
            )
            .await;
        assert!(got.is_none());
        miss_lat.push(t.elapsed());
    }
    miss_lat.sort();
    println!(
        "peer-hit: 200 true misses (nobody holds them): p50 {}, p99 {}, max {}",
        show(percentile(&miss_lat, 0.5)),
        show(percentile(&miss_lat, 0.99)),
        show(percentile(&miss_lat, 1.0)),
    );
    let mut provider_hits = 0;
    for d in &daemons {
        provider_hits += d.mesh.stats().await.provider_hits;
    }
    println!(
        "peer-hit: {} fetches of {} B by {requesters} daemons at once: p50 {}, p90 {}, p99 {}, max {}; \
         misses {misses}; via provider records {provider_hits}; within the 50 ms production deadline {:.2} %",
        all.len(),
        body_len,
        show(percentile(&all, 0.5)),
        show(percentile(&all, 0.9)),
        show(percentile(&all, 0.99)),
        show(percentile(&all, 1.0)),
        within_50ms as f64 * 100.0 / all.len().max(1) as f64,
    );
}

/// Time from `announce_invalidation` on one daemon until every other daemon
/// has received it.
async fn announce(daemons: &[Daemon], rounds: usize, label: &str) {
    let n = daemons.len();
    let mut reach = Vec::new();
    for round in 0..rounds {
        let sender = round % n;
        let path = format!("/bench/round/{round}");
        let mut waits = Vec::new();
        for (i, d) in daemons.iter().enumerate() {
            if i == sender {
                continue;
            }
            let mut rx = d.mesh.invalidations();
            let path = path.clone();
            waits.push(tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(paths) if paths.contains(&path) => return Some(Instant::now()),
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return None,
                    }
                }
            }));
        }
        let t = Instant::now();
        daemons[sender]
            .mesh
            .announce_invalidation(std::slice::from_ref(&path));
        let mut last = t;
        let mut missing = 0;
        for w in waits {
            match tokio::time::timeout(Duration::from_secs(10), w).await {
                Ok(Ok(Some(at))) => last = last.max(at),
                _ => missing += 1,
            }
        }
        assert_eq!(missing, 0, "round {round}: {missing} daemons never got it");
        reach.push(last - t);
    }
    reach.sort();
    println!(
        "{label}: announcement reached all {} other daemons: p50 {}, p99 {}, max {} ({rounds} rounds, senders rotating)",
        n - 1,
        show(percentile(&reach, 0.5)),
        show(percentile(&reach, 0.99)),
        show(percentile(&reach, 1.0)),
    );
}

async fn announce_bench(n: usize, rounds: usize) {
    let (_root, daemons, _) = spawn_fleet(n);
    let took = converge(&daemons, Duration::from_secs(60)).await;
    println!("announce: {n} daemons converged in {}", show(took));
    // Let gossipsub graft its mesh (heartbeat 1 s) before timing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    announce(&daemons, rounds, "announce").await;
}

async fn fleet(n: usize) {
    let before = rss_kib();
    let stores_only = {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<Store> = (0..n)
            .map(|i| {
                Store::open(&dir.path().join(format!("s{i}")), StoreConfig::default()).unwrap()
            })
            .collect();
        let with_stores = rss_kib();
        drop(stores);
        with_stores.saturating_sub(before)
    };
    let before = rss_kib();
    let (_root, daemons, spawn_time) = spawn_fleet(n);
    let took = converge(&daemons, Duration::from_secs(120)).await;
    let stats = daemons[0].mesh.stats().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    println!(
        "fleet: {n} daemons started in {}, fully connected {} after the last start \
         (each sees {} peers); RSS {} MiB → {} MiB: {:.1} MiB per daemon \
         (of which an empty store {:.1} MiB)",
        show(spawn_time),
        show(took),
        stats.connected_peers.len(),
        before / 1024,
        after / 1024,
        (after.saturating_sub(before)) as f64 / 1024.0 / n as f64,
        stores_only as f64 / 1024.0 / n as f64
    );
    announce(&daemons, 10, "fleet").await;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let num =
        |i: usize, default: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match what {
            "peer-hit" => {
                let n = num(1, 5);
                peer_hit(n, num(2, 2000), num(3, 15_000), num(4, n - 1)).await
            }
            "announce" => announce_bench(num(1, 20), num(2, 40)).await,
            "fleet" => fleet(num(1, 50)).await,
            "all" => {
                peer_hit(5, 2000, 15_000, 4).await;
                peer_hit(50, 2000, 15_000, 4).await;
                announce_bench(20, 40).await;
                fleet(50).await;
            }
            other => {
                eprintln!("unknown benchmark {other:?}: use peer-hit, announce, fleet or all");
                std::process::exit(2);
            }
        }
    });
}
