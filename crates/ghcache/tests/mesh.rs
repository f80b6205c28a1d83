//! Two real daemons on loopback sharing one fake GitHub through the mesh.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Daemon, eventually, mesh_daemon, mesh_daemon_with, peers};
use ghcache_fakehub::{FakeHub, FakeHubConfig};

const SECRET: &str = "test-cluster-secret-0123456789abcdef";

struct Reply {
    status: u16,
    outcome: String,
    body: bytes::Bytes,
}

async fn get(client: &reqwest::Client, base: &str, path: &str, token: &str) -> Reply {
    let response = client
        .get(format!("{base}{path}"))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .unwrap();
    Reply {
        status: response.status().as_u16(),
        outcome: response
            .headers()
            .get("x-ghcache")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: response.bytes().await.unwrap(),
    }
}

async fn connected(client: &reqwest::Client, daemon: &Daemon) -> usize {
    peers(client, daemon).await["connected_peers"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_fetched_on_one_host_is_shared_with_the_other() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let world = hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let repo = world.public_repo().to_owned();
    let registry = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A checks every peer copy with GitHub (the default); B, opted in,
    // serves members' copies on their word.
    let a = mesh_daemon(state_a.path(), registry.path(), &hub.base_url(), SECRET);
    let b = mesh_daemon_with(
        state_b.path(),
        registry.path(),
        &hub.base_url(),
        SECRET,
        &[("GHCACHE_PEER_TRUST", "members")],
    );
    let client = reqwest::Client::new();
    eventually(
        "the daemons to connect",
        Duration::from_secs(20),
        || async { connected(&client, &a).await == 1 && connected(&client, &b).await == 1 },
    )
    .await;

    let (code, shown) = common::doctor(&a.base, state_a.path());
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("1 confirmed members"), "{shown}");
    // `ghcache peers` reads the same typed status.
    let (code, shown) = common::ask(&a.base, state_a.path(), "peers");
    assert_eq!(code, Some(0), "{shown}");
    let member_row = shown
        .lines()
        .skip_while(|l| !l.starts_with("CONNECTED PEER"))
        .nth(1)
        .unwrap_or_default();
    assert!(member_row.contains(" yes "), "{shown}");
    assert!(shown.contains("key fingerprint"), "{shown}");

    // Same token on the other host, trusting members: served from the
    // peer, no request at all.
    let runs = format!("/repos/{repo}/actions/runs?per_page=30");
    let on_a = get(&client, &a.base, &runs, &alice).await;
    assert_eq!(on_a.outcome, "MISS");
    let on_b = get(&client, &b.base, &runs, &alice).await;
    assert_eq!((on_b.status, on_b.outcome.as_str()), (200, "HIT"));
    assert_eq!(on_a.body, on_b.body);
    assert_eq!(hub.stats().identity("user:alice").requests, 1);

    // The other way, by default: the peer's bytes are served only after a
    // free 304 from GitHub for alice's own ETag of them.
    let branches = format!("/repos/{repo}/pulls?state=closed");
    assert_eq!(
        get(&client, &b.base, &branches, &alice).await.outcome,
        "MISS"
    );
    let on_a = get(&client, &a.base, &branches, &alice).await;
    assert_eq!((on_a.status, on_a.outcome.as_str()), (200, "SYNTHESIZED"));
    let alice_stats = hub.stats().identity("user:alice");
    assert_eq!(
        (alice_stats.requests, alice_stats.status_304),
        (3, 1),
        "one free 304 confirmed the peer's copy"
    );

    // Another token on the other host: one free 304 for its own ETag.
    let pulls = format!("/repos/{repo}/pulls");
    assert_eq!(get(&client, &a.base, &pulls, &alice).await.outcome, "MISS");
    let bob_on_b = get(&client, &b.base, &pulls, &bob).await;
    assert_eq!(
        (bob_on_b.status, bob_on_b.outcome.as_str()),
        (200, "SYNTHESIZED")
    );
    let bob_stats = hub.stats().identity("user:bob");
    assert_eq!(
        (
            bob_stats.requests,
            bob_stats.status_304,
            bob_stats.units_consumed
        ),
        (1, 1, 0)
    );

    // A write through A makes B's copy stale.
    let token = world.github_token(&repo).to_owned();
    let issues = format!("/repos/{repo}/issues");
    let before = get(&client, &b.base, &issues, &token).await;
    assert_eq!(get(&client, &b.base, &issues, &token).await.outcome, "HIT");
    let created = client
        .post(format!("{}{issues}", a.base))
        .header("authorization", format!("token {token}"))
        .json(&serde_json::json!({"title": "fleet-wide invalidation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let reply = get(&client, &b.base, &issues, &token).await;
        if reply.outcome != "HIT" {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B kept serving the stale list"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_ne!(after.body, before.body);
    assert!(String::from_utf8_lossy(&after.body).contains("fleet-wide invalidation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_with_the_wrong_secret_gets_no_data() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let alice = hub.world().pat("alice").to_owned();
    let runs = format!("/repos/{}/actions/runs", hub.world().public_repo());
    let registry = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = mesh_daemon(state_a.path(), registry.path(), &hub.base_url(), SECRET);
    let b = mesh_daemon(
        state_b.path(),
        registry.path(),
        &hub.base_url(),
        "a-different-secret-entirely-42",
    );
    let client = reqwest::Client::new();
    eventually(
        "the daemons to connect",
        Duration::from_secs(20),
        || async { connected(&client, &b).await == 1 },
    )
    .await;
    // The daemon with the wrong secret says why, before anything is cached or announced
    // (the membership probe sent on connection fails to decrypt).
    eventually("B to name the reason", Duration::from_secs(10), || async {
        peers(&client, &b).await["last_rejection"]["reason"] == "decrypt"
    })
    .await;
    assert_eq!(get(&client, &a.base, &runs, &alice).await.outcome, "MISS");
    let on_b = get(&client, &b.base, &runs, &alice).await;
    assert_eq!(on_b.outcome, "MISS", "no data may cross between clusters");
    assert_eq!(hub.stats().identity("user:alice").requests, 2);
    let peers_a = peers(&client, &a).await;
    let peers_b = peers(&client, &b).await;
    assert_ne!(peers_a["key_fingerprint"], peers_b["key_fingerprint"]);
    // `ghcache doctor` on B fails, names the cause and the fix.
    let (code, shown) = common::doctor(&b.base, state_b.path());
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("different cluster secret")
            && shown.contains(peers_b["key_fingerprint"].as_str().unwrap())
            && shown.contains("GHCACHE_CLUSTER_SECRET"),
        "{shown}"
    );
    assert!(!shown.contains(SECRET) && !shown.contains("a-different-secret"));
    assert!(
        peers_b["last_rejection"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("GHCACHE_CLUSTER_SECRET")),
        "{peers_b}"
    );
    let shown = format!("{peers_a}{peers_b}");
    assert!(!shown.contains(SECRET) && !shown.contains("a-different-secret"));
}

async fn announcements(client: &reqwest::Client, daemon: &Daemon) -> (u64, u64) {
    let mesh = &peers(client, daemon).await["mesh"];
    let n = |key: &str| mesh[key].as_u64().unwrap_or(0);
    (n("announcements_sent"), n("announcements_received"))
}

/// Waits until every daemon has received every announcement the others
/// sent (gossip is asynchronous; the next job must see the fleet's news).
async fn gossip_settled(client: &reqwest::Client, daemons: &[Daemon]) {
    eventually(
        "announcements to reach every daemon",
        Duration::from_secs(20),
        || async {
            let mut counts = Vec::new();
            for d in daemons {
                counts.push(announcements(client, d).await);
            }
            let sent: u64 = counts.iter().map(|c| c.0).sum();
            counts.iter().all(|(own, received)| *received == sent - own)
        },
    )
    .await;
}

/// Fleet freshness at the physical limit: 3 meshed daemons, 2 tokens, 10
/// jobs reading 4 resources, one of them changed halfway by a write. Each
/// version of each resource costs one unit fleet-wide: every other read is
/// a hit or a free 304 (a partition's or a peer's copy, or the new version
/// fetched from the peer that announced it, confirmed with a synthesised
/// ETag).
#[tokio::test(flavor = "multi_thread")]
async fn units_spent_equal_the_distinct_versions_the_fleet_observed() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let world = hub.world();
    let tokens = [world.pat("alice").to_owned(), world.pat("bob").to_owned()];
    let repo = world.public_repo().to_owned();
    let registry = tempfile::tempdir().unwrap();
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let daemons: Vec<Daemon> = states
        .iter()
        .map(|s| mesh_daemon(s.path(), registry.path(), &hub.base_url(), SECRET))
        .collect();
    let client = reqwest::Client::new();
    eventually(
        "the daemons to connect",
        Duration::from_secs(30),
        || async {
            let mut all = true;
            for d in &daemons {
                all &= connected(&client, d).await == 2;
            }
            all
        },
    )
    .await;

    let resources = [
        format!("/repos/{repo}"),
        format!("/repos/{repo}/issues"),
        format!("/repos/{repo}/pulls"),
        format!("/repos/{repo}/actions/runs"),
    ];
    let mut versions = std::collections::HashSet::new();
    let mut outcomes = Vec::new();
    for job in 0..10 {
        if job == 5 {
            // Halfway, a write through the first daemon changes the issue
            // list; it is invalidated fleet-wide.
            let writer = world.github_token(&repo).to_owned();
            let created = client
                .post(format!("{}/repos/{repo}/issues", daemons[0].base))
                .header("authorization", format!("token {writer}"))
                .json(&serde_json::json!({"title": "changed halfway"}))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201);
            gossip_settled(&client, &daemons).await;
        }
        let daemon = &daemons[job % 3];
        let token = &tokens[job % 2];
        for path in &resources {
            let reply = get(&client, &daemon.base, path, token).await;
            assert_eq!(reply.status, 200, "job {job} {path}: {}", reply.outcome);
            versions.insert((path.clone(), reply.body));
            outcomes.push(format!("job {job} {path}: {}", reply.outcome));
        }
        gossip_settled(&client, &daemons).await;
    }
    let stats = hub.stats();
    let units =
        stats.identity("user:alice").units_consumed + stats.identity("user:bob").units_consumed;
    println!(
        "fleet: {} reads, {} distinct versions observed, {units} units spent",
        outcomes.len(),
        versions.len()
    );
    assert!(
        versions.len() > resources.len(),
        "the write changed nothing the jobs read"
    );
    assert_eq!(
        units,
        versions.len() as u64,
        "units spent vs distinct versions observed:\n{}",
        outcomes.join("\n")
    );
}
