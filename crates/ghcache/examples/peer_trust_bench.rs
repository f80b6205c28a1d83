//! What verifying peer copies costs (docs/BENCHMARKS.md): two daemons
//! (mesh + proxy) in front of the fake GitHub with realistic latency. A
//! fetches N resources; B then asks for each with the same token. Run once
//! per `peer_trust` policy, side by side in one run.
//!
//! ```sh
//! cargo run --release -p ghcache --example peer_trust_bench -- [resources]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ghcache_core::PartitionSecret;
use ghcache_fakehub::{FakeHub, FakeHubConfig};
use ghcache_mesh::{Mesh, MeshConfig};
use ghcache_proxy::{PeerTrust, Proxy, ProxyConfig, RunningProxy};
use ghcache_store::{Store, StoreConfig};

struct Node {
    mesh: Mesh,
    proxy: RunningProxy,
}

async fn node(root: &std::path::Path, name: &str, upstream: &str, trust: PeerTrust) -> Node {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(Store::open(&dir.join("cache"), StoreConfig::default()).unwrap());
    let mut mesh_config = MeshConfig::new(
        "bench",
        b"peer trust benchmark secret".to_vec(),
        dir.join("identity.key"),
    );
    mesh_config.listen_ip = "127.0.0.1".parse().unwrap();
    mesh_config.listen_port = 0;
    mesh_config.mdns = false;
    let mesh = Mesh::start(mesh_config, store.clone()).await.unwrap();
    let secret = PartitionSecret::from_key(*mesh.cluster_keys().partition_key());
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
    config.peer_trust = trust;
    config.peer_deadline = Duration::from_millis(200);
    let proxy = Proxy::new(config, store, secret)
        .unwrap()
        .with_peers(Arc::new(mesh.clone()))
        .unwrap()
        .serve()
        .await
        .unwrap();
    Node { mesh, proxy }
}

struct Row {
    trust: &'static str,
    p50: Duration,
    p99: Duration,
    outcomes: std::collections::BTreeMap<String, usize>,
    upstream: u64,
    units: u64,
}

async fn run(trust: PeerTrust, label: &'static str, resources: usize) -> Row {
    let hub = FakeHub::start(FakeHubConfig::realistic()).await.unwrap();
    let world = hub.world();
    let alice = world.pat("alice").to_owned();
    let repo = world.public_repo().to_owned();
    let root = tempfile::tempdir().unwrap();
    let a = node(root.path(), "a", &hub.base_url(), trust).await;
    let b = node(root.path(), "b", &hub.base_url(), trust).await;
    let addr = a.mesh.listen_addrs().await.into_iter().next().unwrap();
    b.mesh.connect(addr).await.unwrap();
    let client = reqwest::Client::new();
    let get = |base: String, path: String| {
        let client = client.clone();
        let alice = alice.clone();
        async move {
            let started = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .header("authorization", format!("token {alice}"))
                .header("accept", "application/vnd.github+json")
                .send()
                .await
                .unwrap();
            let outcome = r.headers()["x-ghcache"].to_str().unwrap().to_owned();
            r.bytes().await.unwrap();
            (started.elapsed(), outcome)
        }
    };
    let paths: Vec<String> = (1..=resources)
        .map(|n| format!("/repos/{repo}/issues?per_page={n}"))
        .collect();
    // Membership is confirmed within a round trip: wait for the first
    // peer-served answer on a resource outside the measured set.
    let warm = format!("/repos/{repo}/pulls");
    get(a.proxy.base_url(), warm.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, outcome) = get(b.proxy.base_url(), warm.clone()).await;
        if outcome != "MISS" {
            break;
        }
        assert!(Instant::now() < deadline, "the daemons never shared");
        // The warm-up resource is now B's own: use a new variant each try.
        get(a.proxy.base_url(), format!("{warm}?state=open")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in &paths {
        get(a.proxy.base_url(), path.clone()).await;
    }
    let before = hub.stats().identity("user:alice");
    let mut latencies = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    for path in &paths {
        let (took, outcome) = get(b.proxy.base_url(), path.clone()).await;
        latencies.push(took);
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    let after = hub.stats().identity("user:alice");
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Row {
        trust: label,
        p50: pct(0.5),
        p99: pct(0.99),
        outcomes,
        upstream: after.requests - before.requests,
        units: after.units_consumed - before.units_consumed,
    }
}

fn main() {
    let resources: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let rows = [
            run(PeerTrust::Verify, "verify (default)", resources).await,
            run(PeerTrust::Members, "members", resources).await,
        ];
        println!(
            "| peer_trust | B's requests | outcomes | p50 | p99 | upstream requests | rate-limit units |"
        );
        println!("|---|---|---|---|---|---|---|");
        for r in rows {
            let outcomes: Vec<String> = r
                .outcomes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!(
                "| {} | {resources} | {} | {:.1} ms | {:.1} ms | {} | {} |",
                r.trust,
                outcomes.join(", "),
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.upstream,
                r.units,
            );
        }
    });
}
