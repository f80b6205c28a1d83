//! Coalescing across partitions: a request of another token for a resource
//! being fetched waits for that fetch, then confirms the stored body with its
//! own token (a free `304`) — and gets GitHub's own answer whenever GitHub
//! would not have given it that body. Real proxy, fake GitHub, loopback.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Rig, rig};
use ghcache_fakehub::{FakeHubConfig, FaultConfig, LatencyProfile};

fn slow() -> FakeHubConfig {
    FakeHubConfig {
        latency: LatencyProfile::uniform(Duration::from_millis(400), Duration::ZERO),
        ..FakeHubConfig::default()
    }
}

/// Until the proxy has taken `n` requests into its pipeline (the first one
/// has then claimed its resource: claiming happens before its first await).
async fn entered(rig: &Rig, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.proxy_stats().await["requests"].as_u64().unwrap_or(0) < n {
        assert!(
            Instant::now() < deadline,
            "the proxy never took the request"
        );
        tokio::task::yield_now().await;
    }
}

/// `leader`'s request for `path`, and `waiter`'s sent once the leader's is
/// in the pipeline (so it finds the resource claimed).
async fn leader_then_waiter(
    rig: &Rig,
    path: &str,
    leader: &str,
    waiter: &str,
) -> (common::Reply, common::Reply) {
    let first = rig.get(path, Some(leader));
    let second = async {
        entered(rig, 1).await;
        rig.get(path, Some(waiter)).await
    };
    tokio::join!(first, second)
}

#[tokio::test]
async fn another_tokens_request_waits_for_the_fetch_and_confirms_for_free() {
    let rig = rig(slow()).await;
    let world = rig.hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let path = format!("/repos/{}/actions/runs", world.public_repo());
    let (a, b) = leader_then_waiter(&rig, &path, &alice, &bob).await;
    assert_eq!((a.status, a.outcome()), (200, "MISS"));
    assert_eq!((b.status, b.outcome()), (200, "SYNTHESIZED"));
    assert_eq!(a.body, b.body);
    let stats = rig.hub.stats();
    assert_eq!(stats.identity("user:alice").units_consumed, 1);
    let bob_stats = stats.identity("user:bob");
    assert_eq!((bob_stats.status_304, bob_stats.units_consumed), (1, 0));
    assert_ne!(a.header("etag"), b.header("etag"), "bob's ETag is his own");
}

#[tokio::test]
async fn a_waiter_that_cannot_see_the_resource_gets_githubs_404_never_the_body() {
    let rig = rig(slow()).await;
    let world = rig.hub.world();
    let private = world.private_repo().to_owned();
    let insider = world.github_token(&private).to_owned();
    let outsider = world.outsider_pat().to_owned();
    let path = format!("/repos/{private}/actions/runs");
    let (ok, denied) = leader_then_waiter(&rig, &path, &insider, &outsider).await;
    assert_eq!(ok.status, 200);
    assert_eq!(denied.status, 404);
    assert_eq!(denied.json()["message"], "Not Found");
    assert_ne!(denied.body, ok.body);
    // The outsider's own request reached GitHub, which refused it.
    let outsider_stats = rig
        .hub
        .stats()
        .identity(&format!("user:{}", world.outsider_login()));
    assert_eq!((outsider_stats.requests, outsider_stats.status_4xx), (1, 1));
}

#[tokio::test]
async fn a_leader_failing_upstream_does_not_poison_its_waiters() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let path = format!("/repos/{}/actions/runs", world.public_repo());
    // Alice's exchange hangs, then the connection closes unanswered.
    rig.hub.set_faults(FaultConfig {
        timeout_rate: 1.0,
        timeout_hang: Duration::from_millis(800),
        ..FaultConfig::none()
    });
    let first = rig.get(&path, Some(&alice));
    let second = async {
        // Alice's request is hanging at GitHub: later ones are answered.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rig.hub.stats().identity("user:alice").timeouts == 0 {
            assert!(Instant::now() < deadline, "alice's request never arrived");
            tokio::task::yield_now().await;
        }
        rig.hub.set_faults(FaultConfig::none());
        rig.get(&path, Some(&bob)).await
    };
    let (a, b) = tokio::join!(first, second);
    assert!(a.status >= 500, "alice's failure is hers: {}", a.status);
    assert_eq!((b.status, b.outcome()), (200, "MISS"));
    assert!(b.json()["workflow_runs"].is_array());
    let bob_stats = rig.hub.stats().identity("user:bob");
    assert_eq!((bob_stats.requests, bob_stats.status_200), (1, 1));
}

#[tokio::test]
async fn a_leader_refused_by_github_does_not_poison_its_waiters() {
    let rig = rig(slow()).await;
    let world = rig.hub.world();
    let private = world.private_repo().to_owned();
    let insider = world.github_token(&private).to_owned();
    let outsider = world.outsider_pat().to_owned();
    let path = format!("/repos/{private}/actions/runs");
    let (denied, ok) = leader_then_waiter(&rig, &path, &outsider, &insider).await;
    assert_eq!(denied.status, 404);
    assert_eq!((ok.status, ok.outcome()), (200, "MISS"));
    assert!(ok.json()["workflow_runs"].is_array());
}
