//! The proxy's rules, each checked against the fake GitHub over real sockets.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{rig, rig_with};
use ghcache_core::{ContentId, Partition, PartitionSecret, ResourceId};
use ghcache_fakehub::{FakeHubConfig, FaultConfig, LatencyProfile};
use ghcache_proxy::{PeerFuture, PeerSource, Proxy, ProxyConfig};
use ghcache_store::{Store, StoreConfig};

fn runs(repo: &str) -> String {
    format!("/repos/{repo}/actions/runs?per_page=30")
}

#[tokio::test]
async fn fresh_same_token_hit_makes_no_request() {
    let rig = rig(FakeHubConfig::default()).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = format!("/repos/{}", rig.hub.world().public_repo());
    let first = rig.get(&path, Some(&alice)).await;
    let second = rig.get(&path, Some(&alice)).await;
    assert_eq!((first.status, first.outcome()), (200, "MISS"));
    assert_eq!((second.status, second.outcome()), (200, "HIT"));
    assert_eq!(first.body, second.body);
    assert_eq!(rig.hub.stats().identity("user:alice").requests, 1);
}

#[tokio::test]
async fn another_token_gets_the_body_only_after_a_free_304_for_its_synthesised_etag() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let path = runs(world.public_repo());
    let a = rig.get(&path, Some(&alice)).await;
    let b = rig.get(&path, Some(&bob)).await;
    assert_eq!(a.outcome(), "MISS");
    assert_eq!((b.status, b.outcome()), (200, "SYNTHESIZED"));
    assert_eq!(a.body, b.body);
    let bob_stats = rig.hub.stats().identity("user:bob");
    assert_eq!(bob_stats.requests, 1, "bob's request did reach GitHub");
    assert_eq!(bob_stats.status_304, 1);
    assert_eq!(bob_stats.units_consumed, 0);
    // Bob's ETag is his own, not alice's.
    assert_ne!(a.header("etag"), b.header("etag"));
    // And now bob holds a fresh entry of his own.
    assert_eq!(rig.get(&path, Some(&bob)).await.outcome(), "HIT");
}

#[tokio::test]
async fn token_specific_bodies_are_never_shared() {
    // The repository object carries per-user `permissions`: the synthesised
    // ETag cannot match and bob pays for his own body.
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let path = format!("/repos/{}", world.public_repo());
    let a = rig.get(&path, Some(world.pat("alice"))).await;
    let b = rig.get(&path, Some(world.pat("bob"))).await;
    assert_eq!(b.outcome(), "MISS");
    assert_eq!(a.json()["full_name"], b.json()["full_name"]);
    assert_eq!(rig.hub.stats().identity("user:bob").status_200, 1);
}

#[tokio::test]
async fn a_private_repository_is_never_served_to_an_outsider() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let private = world.private_repo().to_owned();
    let insider = world.github_token(&private).to_owned();
    let outsider = world.outsider_pat().to_owned();
    for path in [format!("/repos/{private}"), runs(&private)] {
        let ok = rig.get(&path, Some(&insider)).await;
        assert_eq!(ok.status, 200, "{path}");
        let denied = rig.get(&path, Some(&outsider)).await;
        assert_eq!(denied.status, 404, "{path}");
        assert_eq!(denied.json()["message"], "Not Found");
        assert_ne!(denied.body, ok.body);
        let anonymous = rig.get(&path, None).await;
        assert_eq!(anonymous.status, 404, "{path}");
    }
    let outsider_login = format!("user:{}", world.outsider_login());
    assert_eq!(rig.hub.stats().identity(&outsider_login).status_4xx, 2);
}

#[tokio::test]
async fn fifty_concurrent_identical_requests_make_one_upstream_request() {
    let rig = rig(FakeHubConfig {
        latency: LatencyProfile::uniform(Duration::from_millis(300), Duration::ZERO),
        ..FakeHubConfig::default()
    })
    .await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = runs(rig.hub.world().public_repo());
    let replies = futures_join(50, || rig.get(&path, Some(&alice))).await;
    assert!(
        replies
            .iter()
            .all(|r| r.status == 200 && r.body == replies[0].body)
    );
    assert_eq!(rig.hub.stats().identity("user:alice").requests, 1);
    let coalesced = replies
        .iter()
        .filter(|r| r.outcome() == "COALESCED")
        .count();
    let missed = replies.iter().filter(|r| r.outcome() == "MISS").count();
    assert_eq!(missed, 1);
    assert!(coalesced > 0, "no request shared the flight");
    assert_eq!(
        coalesced + missed + replies.iter().filter(|r| r.outcome() == "HIT").count(),
        50
    );
}

/// A mesh that has no copies and counts what the proxy tells it.
#[derive(Default)]
struct CountingPeers {
    announced: AtomicUsize,
    held: AtomicUsize,
}

impl PeerSource for CountingPeers {
    fn lookup<'a>(&'a self, _: &'a ResourceId, _: &'a Partition, _: Duration) -> PeerFuture<'a> {
        Box::pin(std::future::ready(None))
    }
    fn announce_version(&self, _: &ResourceId, _: &ContentId, _: Option<&str>, _: u64) {
        self.announced.fetch_add(1, Ordering::SeqCst);
    }
    fn announce_invalidation(&self, _: &[String]) {}
    fn hold(&self, _: &ResourceId) {
        self.held.fetch_add(1, Ordering::SeqCst);
    }
}

/// A slow fake GitHub and a proxy whose mesh counts what it is told.
struct Counted {
    hub: ghcache_fakehub::FakeHub,
    proxy: ghcache_proxy::RunningProxy,
    peers: Arc<CountingPeers>,
    _dir: tempfile::TempDir,
}

impl Counted {
    async fn start(tweak: impl FnOnce(&mut ProxyConfig)) -> Counted {
        let hub = ghcache_fakehub::FakeHub::start(FakeHubConfig {
            latency: LatencyProfile::uniform(Duration::from_millis(300), Duration::ZERO),
            ..FakeHubConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(&dir.path().join("cache"), StoreConfig::default()).unwrap());
        let peers = Arc::new(CountingPeers::default());
        let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), hub.base_url());
        tweak(&mut config);
        let proxy = Proxy::new(config, store, PartitionSecret::generate())
            .unwrap()
            .with_peers(peers.clone())
            .unwrap()
            .serve()
            .await
            .unwrap();
        Counted {
            hub,
            proxy,
            peers,
            _dir: dir,
        }
    }

    /// `n` concurrent requests of alice's for the public repository's
    /// runs: their `X-Ghcache` outcomes.
    async fn alice_runs(&self, n: usize) -> Vec<String> {
        let client = reqwest::Client::new();
        let url = format!(
            "{}{}",
            self.proxy.base_url(),
            runs(self.hub.world().public_repo())
        );
        let alice = format!("token {}", self.hub.world().pat("alice"));
        futures_util::future::join_all((0..n).map(|_| async {
            let response = client
                .get(&url)
                .header("authorization", &alice)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["x-ghcache"].to_str().unwrap().to_owned()
        }))
        .await
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.peers.announced.load(Ordering::SeqCst),
            self.peers.held.load(Ordering::SeqCst),
        )
    }
}

#[tokio::test]
async fn a_shared_answer_is_stored_and_announced_once() {
    let counted = Counted::start(|_| {}).await;
    let outcomes = counted.alice_runs(20).await;
    assert_eq!(counted.hub.stats().identity("user:alice").requests, 1);
    let coalesced = outcomes.iter().filter(|o| *o == "COALESCED").count();
    assert!(coalesced > 0, "no request shared the flight: {outcomes:?}");
    // Each coalesced request used to store the answer again and announce
    // the same version to the fleet once more.
    assert_eq!(counted.counts(), (1, 1), "{outcomes:?}");
}

#[tokio::test]
async fn a_shared_not_modified_refreshes_the_entry_once() {
    // Stale at once: every request after the first revalidates.
    let counted = Counted::start(|c| {
        c.operation_ttls = ghcache_proxy::OperationTtls::new([("actions/runs", Duration::ZERO)]);
    })
    .await;
    assert_eq!(counted.alice_runs(1).await, ["MISS"]);
    assert_eq!(counted.counts(), (1, 1));
    let outcomes = counted.alice_runs(20).await;
    // One conditional request, answered 304, shared by all.
    assert_eq!(counted.hub.stats().identity("user:alice").requests, 2);
    assert!(outcomes.contains(&"COALESCED".to_owned()), "{outcomes:?}");
    // The entry refreshed once (a hold), the same version not announced.
    assert_eq!(counted.counts(), (1, 2), "{outcomes:?}");
}

async fn futures_join<F, Fut>(n: usize, make: F) -> Vec<common::Reply>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = common::Reply>,
{
    futures_util::future::join_all((0..n).map(|_| make())).await
}

#[tokio::test]
async fn outage_with_a_held_copy_serves_it_marked_stale() {
    let rig = rig_with(FakeHubConfig::default(), |c| {
        c.operation_ttls = ghcache_proxy::OperationTtls::new([("actions/runs", Duration::ZERO)]);
    })
    .await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = runs(rig.hub.world().public_repo());
    let fresh = rig.get(&path, Some(&alice)).await;
    assert_eq!(fresh.outcome(), "MISS");
    rig.hub.set_faults(FaultConfig::outage());
    let stale = rig.get(&path, Some(&alice)).await;
    assert_eq!((stale.status, stale.outcome()), (200, "STALE"));
    assert_eq!(stale.body, fresh.body);
    assert!(stale.header("warning").unwrap().starts_with("110"));
    // Nothing held for this one: the client gets GitHub's own answer.
    let other = rig
        .get(
            &format!("/repos/{}", rig.hub.world().public_repo()),
            Some(&alice),
        )
        .await;
    assert_eq!(other.status, 503);
    assert_eq!(other.outcome(), "MISS");
}

#[tokio::test]
async fn dead_upstream_without_a_copy_is_a_clear_502() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _store) = common::start_proxy(&dead, dir.path(), |_| {}).await;
    let client = reqwest::Client::new();
    let reply = common::send(
        &client,
        &proxy.base_url(),
        reqwest::Method::GET,
        "/user",
        Some("ghp_x"),
        &[],
        None,
    )
    .await;
    assert_eq!(reply.status, 502);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("ghcache: "), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    assert!(!message.contains("ghp_x"));
    assert_eq!(
        reply.json()["documentation_url"],
        "https://docs.github.com/rest"
    );
}

#[tokio::test]
async fn client_no_cache_revalidates_and_no_store_bypasses() {
    let rig = rig(FakeHubConfig::default()).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = runs(rig.hub.world().public_repo());
    rig.get(&path, Some(&alice)).await;
    let revalidated = rig
        .request(
            reqwest::Method::GET,
            &path,
            Some(&alice),
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(revalidated.outcome(), "REVALIDATED");
    let stats = rig.hub.stats().identity("user:alice");
    assert_eq!((stats.status_304, stats.units_consumed), (1, 1));
    let bypass = rig
        .request(
            reqwest::Method::GET,
            &path,
            Some(&alice),
            &[("cache-control", "no-store")],
        )
        .await;
    assert_eq!(bypass.outcome(), "BYPASS");
    assert_eq!(rig.hub.stats().identity("user:alice").status_200, 2);
}

#[tokio::test]
async fn a_write_invalidates_the_collection_above_it() {
    let rig = rig(FakeHubConfig::default()).await;
    let repo = rig.hub.world().public_repo().to_owned();
    let token = rig.hub.world().github_token(&repo).to_owned();
    let issues = format!("/repos/{repo}/issues");
    let before = rig.get(&issues, Some(&token)).await;
    assert_eq!(rig.get(&issues, Some(&token)).await.outcome(), "HIT");
    let created = rig
        .post(
            &issues,
            &token,
            serde_json::json!({"title": "cache me not"}),
        )
        .await;
    assert_eq!((created.status, created.outcome()), (201, "BYPASS"));
    let after = rig.get(&issues, Some(&token)).await;
    assert_eq!(
        after.outcome(),
        "MISS",
        "the changed list was fetched again"
    );
    assert_ne!(before.body, after.body);
    assert!(String::from_utf8_lossy(&after.body).contains("cache me not"));
}

#[tokio::test]
async fn pagination_stays_on_the_proxy_and_walks_every_page() {
    let rig = rig(FakeHubConfig::default()).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let base = rig.proxy.base_url();
    let mut url = format!("{base}{}", runs(rig.hub.world().public_repo()));
    let mut ids = std::collections::BTreeSet::new();
    let mut total = None;
    let mut pages = 0;
    loop {
        let reply = common::send(
            &rig.client,
            "",
            reqwest::Method::GET,
            &url,
            Some(&alice),
            &[],
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{url}");
        let json = reply.json();
        total = total.or(json["total_count"].as_u64());
        for run in json["workflow_runs"].as_array().unwrap() {
            assert!(ids.insert(run["id"].as_u64().unwrap()), "duplicate run");
        }
        pages += 1;
        let Some(next) = reply.header("link").and_then(next_link) else {
            break;
        };
        assert!(next.starts_with(&base), "link left the proxy: {next}");
        url = next;
    }
    assert!(pages > 1);
    assert_eq!(ids.len() as u64, total.unwrap());
}

fn next_link(link: &str) -> Option<String> {
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .map(|part| {
            part.trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
}

#[tokio::test]
async fn an_exhausted_token_is_held_back_until_its_reset() {
    let mut hub = FakeHubConfig::default();
    hub.limits.pat = 2;
    let rig = rig(hub).await;
    let world = rig.hub.world();
    let alice = world.pat("alice").to_owned();
    let repo = world.public_repo().to_owned();
    let held = runs(&repo);
    assert_eq!(rig.get(&held, Some(&alice)).await.status, 200);
    let last = rig
        .get(&format!("/repos/{repo}/issues"), Some(&alice))
        .await;
    assert_eq!(last.header("x-ratelimit-remaining"), Some("0"));
    let before = rig.hub.stats().identity("user:alice").requests;
    let refused = rig.get(&format!("/repos/{repo}/pulls"), Some(&alice)).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(refused.header("x-ghcache-reason"), Some("quota-exhausted"));
    let served = rig
        .request(
            reqwest::Method::GET,
            &held,
            Some(&alice),
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!((served.status, served.outcome()), (200, "STALE"));
    assert_eq!(
        rig.hub.stats().identity("user:alice").requests,
        before,
        "no request was sent"
    );
}

#[tokio::test]
async fn head_and_client_conditionals_are_answered_locally() {
    let rig = rig(FakeHubConfig::default()).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = runs(rig.hub.world().public_repo());
    let full = rig.get(&path, Some(&alice)).await;
    let head = rig
        .request(reqwest::Method::HEAD, &path, Some(&alice), &[])
        .await;
    assert_eq!((head.status, head.outcome()), (200, "HIT"));
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );
    let etag = full.header("etag").unwrap().to_owned();
    let conditional = rig
        .request(
            reqwest::Method::GET,
            &path,
            Some(&alice),
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!((conditional.status, conditional.outcome()), (304, "HIT"));
    assert_eq!(rig.hub.stats().identity("user:alice").requests, 1);
}

#[tokio::test]
async fn graphql_passes_through() {
    let rig = rig(FakeHubConfig::default()).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let reply = rig
        .post(
            "/graphql",
            &alice,
            serde_json::json!({"query": "query { viewer { login } }"}),
        )
        .await;
    assert_eq!((reply.status, reply.outcome()), (200, "BYPASS"));
    assert_eq!(reply.json()["data"]["viewer"]["login"], "alice");
    assert_eq!(reply.header("x-ratelimit-resource"), Some("graphql"));
}

#[tokio::test]
async fn oversized_bodies_are_streamed_not_cached() {
    let rig = rig_with(FakeHubConfig::default(), |c| c.max_cacheable_body = 4096).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = runs(rig.hub.world().public_repo());
    let first = rig.get(&path, Some(&alice)).await;
    let second = rig.get(&path, Some(&alice)).await;
    assert_eq!((first.status, first.outcome()), (200, "BYPASS"));
    assert_eq!(second.outcome(), "BYPASS");
    assert!(first.body.len() > 4096);
    assert_eq!(first.body, second.body);
    assert_eq!(first.json()["workflow_runs"].as_array().unwrap().len(), 30);
    assert_eq!(rig.store.stats().entries, 0);
}

#[tokio::test]
async fn stats_and_metrics_count_and_never_show_tokens() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let path = runs(world.public_repo());
    rig.get(&path, Some(&alice)).await; // MISS: 1 spent
    rig.get(&path, Some(&alice)).await; // HIT: 1 saved
    rig.get(&path, Some(&bob)).await; // SYNTHESIZED: 1 saved
    let stats = rig.proxy_stats().await;
    assert_eq!(stats["hits"]["hit"], 1);
    assert_eq!(stats["hits"]["synthesized"], 1);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["rate_limit"]["units_spent"], 1);
    assert_eq!(stats["rate_limit"]["units_saved"], 2);
    assert_eq!(stats["upstream"]["requests"], 2);
    assert_eq!(stats["store"]["entries"], 2);
    assert_eq!(
        stats["rate_limit"]["partitions"].as_array().unwrap().len(),
        2
    );
    let metrics = rig
        .client
        .get(format!("{}/metrics", rig.proxy.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ghcache_responses_total{outcome=\"SYNTHESIZED\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ghcache_rate_limit_units_saved_total 2"));
    let everything = format!("{stats}{metrics}");
    for token in [&alice, &bob] {
        assert!(!everything.contains(token.as_str()));
        assert!(!everything.contains(&token[4..12]));
    }
}

#[tokio::test]
async fn entries_survive_a_restart() {
    let rig = rig(FakeHubConfig::default()).await;
    let alice = rig.hub.world().pat("alice").to_owned();
    let path = runs(rig.hub.world().public_repo());
    let first = rig.get(&path, Some(&alice)).await;
    let common::Rig {
        hub,
        proxy,
        store,
        dir,
        client,
    } = rig;
    proxy.shutdown().await;
    store.flush();
    drop(store);
    let (proxy, _store) = common::start_proxy(&hub.base_url(), dir.path(), |_| {}).await;
    let again = common::send(
        &client,
        &proxy.base_url(),
        reqwest::Method::GET,
        &path,
        Some(&alice),
        &[],
        None,
    )
    .await;
    assert_eq!((again.status, again.outcome()), (200, "HIT"));
    assert_eq!(again.body, first.body);
    assert_eq!(hub.stats().identity("user:alice").requests, 1);
}
