#![allow(clippy::unwrap_used)]
//! Claims across the mesh: a member fetching a resource upstream under an
//! earlier claim is waited for, and its stored copy handed over; a later
//! claimant is never waited for; a claim released with nothing stored
//! leaves the waiter to fetch on its own. Real swarms on 127.0.0.1, real
//! redb stores; every wait polls with a bounded deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, PartitionSecret, ResourceId, ResourceKey};
use ghcache_mesh::{Mesh, MeshConfig};
use ghcache_peer::{Claim, Flights, Joined, LookupEnd, PeerSource};
use ghcache_store::{EntryMeta, Store, StoreConfig};

struct Node {
    mesh: Mesh,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

async fn start() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut c = MeshConfig::new(
        "claims-net",
        b"claims secret".to_vec(),
        dir.path().join("identity.key"),
    );
    c.listen_ip = "127.0.0.1".parse().unwrap();
    c.listen_port = 0;
    c.mdns = false;
    c.kademlia = false;
    let store = Arc::new(Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap());
    let mesh = Mesh::start(c, store.clone()).await.unwrap();
    Node {
        mesh,
        store,
        _dir: dir,
    }
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `b` connected to `a`, both confirmed members; `a` shares its flights.
async fn pair() -> (Node, Node, Arc<Flights>) {
    let (a, b) = (start().await, start().await);
    let addr = a.mesh.listen_addrs().await[0].clone();
    b.mesh.dial(addr).await.unwrap();
    until("membership", async || {
        let member =
            |s: ghcache_mesh::MeshStats| s.connected_peers.iter().any(|p| p.member == Some(true));
        member(a.mesh.stats().await) && member(b.mesh.stats().await)
    })
    .await;
    let flights = Flights::new();
    a.mesh.share_flights(flights.clone());
    (a, b, flights)
}

fn rid() -> ResourceId {
    ResourceId::compute(&ResourceKey {
        host: "api.github.com",
        method: "GET",
        path: "/repos/o/r/actions/runs",
        query: "",
        accept: None,
        api_version: None,
    })
}

fn partitions() -> (Partition, Partition) {
    let secret = PartitionSecret::generate();
    (
        secret.partition_for(Some("token a")),
        secret.partition_for(Some("token b")),
    )
}

fn claim(flights: &Arc<Flights>, p: &Partition) -> Claim {
    match flights.join_or_claim(&rid(), p) {
        Joined::Leader(claim) => claim,
        _ => panic!("nobody else claimed it"),
    }
}

fn put(store: &Store, p: Partition, body: &[u8]) {
    let meta = EntryMeta {
        etag: Some(format!("W/\"{}\"", ContentId::of(body))),
        ttl_ms: 60_000,
        ..EntryMeta::for_body(body)
    };
    store
        .put(rid(), p, meta, Bytes::copy_from_slice(body))
        .unwrap();
}

/// B's claimed fetch, under a claim later than A's `held`, spawned; returns
/// once A has told B its fetch is under way (an answer without the entry).
async fn wait_behind(
    a: &Node,
    b: &Node,
    held: &Claim,
    pb: Partition,
) -> tokio::task::JoinHandle<ghcache_peer::Claimed> {
    let answered = a.mesh.stats().await.fetches_not_found;
    let later = held.value() + 1;
    let mesh = b.mesh.clone();
    let waiting = tokio::spawn(async move {
        mesh.fetch_claimed(
            &rid(),
            &pb,
            later,
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await
    });
    until("the in-flight answer", async || {
        a.mesh.stats().await.fetches_not_found > answered
    })
    .await;
    waiting
}

#[tokio::test]
async fn a_member_fetching_under_an_earlier_claim_is_waited_for() {
    let (a, b, flights) = pair().await;
    let (pa, pb) = partitions();
    let held = claim(&flights, &pa);
    let waiting = wait_behind(&a, &b, &held, pb).await;
    // Plain lookups (no claim, as before claims) still get "not found".
    assert!(
        b.mesh
            .fetch(&rid(), &pb, Duration::from_secs(5))
            .await
            .is_none()
    );
    put(&a.store, pa, b"the body A fetched");
    drop(held);
    let got = waiting.await.unwrap();
    assert_eq!(got.end, LookupEnd::Found);
    let copy = got.copy.unwrap();
    assert_eq!(copy.partition, pa);
    assert_eq!(copy.body.as_ref(), b"the body A fetched");
}

#[tokio::test]
async fn an_earlier_claimant_is_never_told_to_wait() {
    let (_a, b, flights) = pair().await;
    let (pa, pb) = partitions();
    let held = claim(&flights, &pa);
    let earlier = held.value() - 1;
    let got = b
        .mesh
        .fetch_claimed(
            &rid(),
            &pb,
            earlier,
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(got.end, LookupEnd::NotHeld);
    assert!(got.copy.is_none());
    drop(held);
}

#[tokio::test]
async fn a_claim_released_with_nothing_stored_ends_the_wait_empty() {
    let (a, b, flights) = pair().await;
    let (pa, pb) = partitions();
    let held = claim(&flights, &pa);
    let waiting = wait_behind(&a, &b, &held, pb).await;
    // A's fetch failed: it stores nothing and releases its claim.
    drop(held);
    let got = waiting.await.unwrap();
    assert_eq!(got.end, LookupEnd::WaitedInVain);
    assert!(got.copy.is_none());
}
