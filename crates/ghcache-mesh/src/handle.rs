//! The [`Mesh`] handle: what the daemon and the proxy hold. The Swarm lives
//! in the event loop's task; the handle sends it [`Command`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_peer::{
    Claimed, ClaimedFuture, LookupEnd, MeshStats, PeerCopy, PeerFuture, PeerSource, PeerStatus,
    StatusFuture,
};
use ghcache_store::Store;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::command::EntryNote;
use crate::command::{Command, Reply, Wanted};
use crate::config::MeshConfig;
use crate::envelope::seal_message;
use crate::error::MeshError;
use crate::event_loop::{EventLoop, Parts};
use crate::keys::{ClusterKeys, derive_keys};
use crate::swarm;
use crate::wire::{
    AnnounceKind, Announcement, ClaimAsk, FETCH_REQUEST_AAD, announce_topic,
    encode_claimed_request, encode_request,
};

/// `hold` calls waiting for the event loop.
const MAX_HOLDS_WAITING: usize = 65_536;

struct Shared {
    peer_id: PeerId,
    cmd: mpsc::Sender<Command>,
    keys: ClusterKeys,
    topic: String,
    network_id: String,
    fetch_deadline: Duration,
    invalidations: broadcast::Sender<Vec<String>>,
    /// Test hook: delay before answering each fetch request.
    #[cfg(feature = "test-util")]
    serve_delay_ms: Arc<AtomicU64>,
    /// `hold` calls, on their own deep queue so a burst of stores never
    /// competes with fetches for the command queue.
    holds: mpsc::Sender<ResourceId>,
    holds_dropped: AtomicU64,
    /// The proxy's upstream fetches under way (`share_flights`), read by
    /// the server to tell later claimants to wait.
    flights: Arc<std::sync::OnceLock<Arc<ghcache_peer::Flights>>>,
    /// Members' answer times, which stretch lookup deadlines.
    rtt: Arc<crate::rtt::Rtt>,
    fetch_deadline_max: Duration,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The swarm's libp2p-metrics (`libp2p_*`), for the daemon's `/metrics`.
    registry: Arc<libp2p::metrics::Registry>,
}

/// A cheap, cloneable handle on the mesh. The Swarm lives in one task; this
/// sends it commands.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("peer_id", &self.inner.peer_id)
            .field("network_id", &self.inner.network_id)
            .finish_non_exhaustive()
    }
}

impl Mesh {
    /// Derives the cluster keys, loads or creates the identity, builds the
    /// swarm, starts listening and runs the event loop in a new task.
    /// Returns once at least one listen address is up.
    pub async fn start(config: MeshConfig, store: Arc<Store>) -> Result<Mesh, MeshError> {
        config.validate()?;
        let secret = config.cluster_secret.clone();
        let net = config.network_id.clone();
        let keys = tokio::task::spawn_blocking(move || {
            derive_keys(secrecy::ExposeSecret::expose_secret(&secret), &net)
        })
        .await
        .map_err(|source| MeshError::Task {
            what: "key derivation",
            source,
        })?;
        let identity_path = config.identity_path.clone();
        let keypair =
            tokio::task::spawn_blocking(move || crate::identity::load_or_create(&identity_path))
                .await
                .map_err(|source| MeshError::Task {
                    what: "identity",
                    source,
                })??;
        let peer_id = keypair.public().to_peer_id();
        let topic = announce_topic(&config.network_id);
        if config.private_network && config.quic {
            tracing::info!("private network (pre-shared key) mode: TCP only, QUIC is off");
        }
        let mut swarm = swarm::build(&config, &keys, keypair, &topic)?;
        let mut registry = libp2p::metrics::Registry::default();
        let metrics = libp2p::metrics::Metrics::new(&mut registry);
        swarm::listen(&mut swarm, &config)?;

        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (holds_tx, holds_rx) = mpsc::channel(MAX_HOLDS_WAITING);
        let (inv_tx, _) = broadcast::channel(256);
        let serve_delay_ms = Arc::new(AtomicU64::new(0));
        let network_id = config.network_id.clone();
        let fetch_deadline = config.fetch_deadline;
        let fetch_deadline_max = config.fetch_deadline_max;
        let flights = Arc::new(std::sync::OnceLock::new());
        let rtt = Arc::new(crate::rtt::Rtt::default());
        let task = EventLoop::start(
            Parts {
                swarm,
                store,
                keys: keys.clone(),
                peer_id,
                topic: topic.clone(),
                invalidations: inv_tx.clone(),
                serve_delay_ms: serve_delay_ms.clone(),
                flights: flights.clone(),
                rtt: rtt.clone(),
                config,
                metrics,
            },
            cmd_rx,
            holds_rx,
        )
        .await?;
        Ok(Mesh {
            inner: Arc::new(Shared {
                peer_id,
                cmd: cmd_tx,
                keys,
                topic,
                network_id,
                fetch_deadline,
                invalidations: inv_tx,
                #[cfg(feature = "test-util")]
                serve_delay_ms,
                holds: holds_tx,
                holds_dropped: AtomicU64::new(0),
                flights,
                rtt,
                fetch_deadline_max,
                task: parking_lot::Mutex::new(Some(task)),
                registry: Arc::new(registry),
            }),
        })
    }

    /// The swarm's metrics registry (libp2p-metrics: connections,
    /// identify, Kademlia, gossipsub, ping), filled by the event loop.
    pub fn metrics_registry(&self) -> Arc<libp2p::metrics::Registry> {
        self.inner.registry.clone()
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The configured default fetch deadline.
    pub fn fetch_deadline(&self) -> Duration {
        self.inner.fetch_deadline
    }

    /// The cluster keys derived at start (for the daemon's partition secret).
    pub fn cluster_keys(&self) -> &ClusterKeys {
        &self.inner.keys
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.inner.cmd.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.ask(Command::ListenAddrs).await.unwrap_or_default()
    }

    pub async fn connected_peers(&self) -> Vec<PeerId> {
        self.ask(Command::ConnectedPeers).await.unwrap_or_default()
    }

    /// Starts dialling `addr` (returns once the dial is under way).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), MeshError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Command::Dial { addr, reply: tx })
            .await
            .map_err(|_| MeshError::Closed)?;
        rx.await.map_err(|_| MeshError::Closed)?
    }

    /// Dials `addr` and waits for the outcome: the peer's id once the
    /// connection (transport, Noise, Yamux) is up, or why it failed.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Command::Connect { addr, reply: tx })
            .await
            .map_err(|_| MeshError::Closed)?;
        rx.await.map_err(|_| MeshError::Closed)?
    }

    /// The best copy connected members (then providers) hold of
    /// `resource`: one of `partition` that is not marked stale is taken at
    /// once; otherwise the best of what every asked peer sent (own
    /// partition first, then not stale) once all answered, or when
    /// `deadline` passes.
    pub async fn fetch(
        &self,
        resource: &ResourceId,
        partition: &Partition,
        deadline: Duration,
    ) -> Option<PeerCopy> {
        self.fetch_best(resource, partition, None, deadline, None)
            .await
            .copy
    }

    /// As [`Mesh::fetch`], for a caller holding `claim` on the resource (it
    /// is about to fetch it upstream): when no member holds a copy but some
    /// fetch it under an earlier claim, the earliest is asked to answer once
    /// its fetch is stored, waiting at most `wait` more.
    pub async fn fetch_claimed(
        &self,
        resource: &ResourceId,
        partition: &Partition,
        claim: u64,
        deadline: Duration,
        wait: Duration,
    ) -> Claimed {
        self.fetch_best(resource, partition, None, deadline, Some((claim, wait)))
            .await
    }

    /// As [`Mesh::fetch`], for a body other than `held`: a newer version
    /// than the stale one the caller holds (its announcer is asked first).
    pub async fn fetch_newer(
        &self,
        resource: &ResourceId,
        partition: &Partition,
        held: &ContentId,
        deadline: Duration,
    ) -> Option<PeerCopy> {
        self.fetch_best(resource, partition, Some(held), deadline, None)
            .await
            .copy
    }

    async fn fetch_best(
        &self,
        resource: &ResourceId,
        partition: &Partition,
        not: Option<&ContentId>,
        deadline: Duration,
        claim: Option<(u64, Duration)>,
    ) -> Claimed {
        const IDEAL: u8 = 3;
        let rank = |copy: &PeerCopy| -> Option<u8> {
            (not != Some(&copy.meta.body_cid))
                .then(|| u8::from(copy.partition == *partition) * 2 + u8::from(!copy.meta.stale))
        };
        let mut best: Option<(u8, PeerCopy)> = None;
        // The earliest claim under way at a member, earlier than ours.
        let mut earliest: Option<(PeerId, u64)> = None;
        let ask = claim.map(|(claim, _)| ClaimAsk { claim, wait_ms: 0 });
        let mut rx = self.entry_fetch(resource, partition, ask, None).await;
        let collect = async {
            while let Some(note) = rx.recv().await {
                let copy = match note {
                    EntryNote::Copy(copy) => copy,
                    EntryNote::InFlight(peer, theirs) => {
                        if claim.is_some_and(|(ours, _)| theirs < ours)
                            && earliest.is_none_or(|(_, e)| theirs < e)
                        {
                            earliest = Some((peer, theirs));
                        }
                        continue;
                    }
                };
                let Some(r) = rank(&copy) else { continue };
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
                    best = Some((r, copy));
                }
                if r == IDEAL {
                    return;
                }
            }
        };
        let mut end = match tokio::time::timeout(deadline, collect).await {
            Err(_) => LookupEnd::Deadline,
            Ok(()) => LookupEnd::NotHeld,
        };
        if best.is_none()
            && let (Some((peer, _)), Some((ours, wait))) = (earliest, claim)
        {
            // Nobody holds it, and a member fetches it under an earlier
            // claim: ask it to answer once that fetch is stored.
            let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            let ask = ClaimAsk {
                claim: ours,
                wait_ms,
            };
            let mut rx = self
                .entry_fetch(resource, partition, Some(ask), Some(peer))
                .await;
            let waited = async {
                while let Some(note) = rx.recv().await {
                    if let EntryNote::Copy(copy) = note
                        && let Some(r) = rank(&copy)
                    {
                        return Some((r, copy));
                    }
                }
                None
            };
            best = tokio::time::timeout(wait, waited).await.ok().flatten();
            end = LookupEnd::WaitedInVain;
        }
        match best {
            Some((_, copy)) => Claimed {
                copy: Some(copy),
                end: LookupEnd::Found,
            },
            None => Claimed { copy: None, end },
        }
    }

    /// Hands an entry fetch to the event loop (only to `only`, when
    /// named); its notes arrive on the receiver, closed when it ends (at
    /// once when the loop is gone: the command and its sender are dropped).
    async fn entry_fetch(
        &self,
        resource: &ResourceId,
        partition: &Partition,
        ask: Option<ClaimAsk>,
        only: Option<PeerId>,
    ) -> mpsc::UnboundedReceiver<EntryNote> {
        let (tx, rx) = mpsc::unbounded_channel();
        let plain = match ask {
            Some(ask) => encode_claimed_request(partition, ask),
            None => encode_request(partition),
        };
        let request = seal_message(
            self.inner.keys.envelope_key(),
            FETCH_REQUEST_AAD,
            Some(resource),
            None,
            &plain,
        );
        let command = Command::Fetch {
            wanted: Wanted::Entry(*resource),
            request,
            reply: Reply::Entries(tx),
            only,
        };
        let _ = self.inner.cmd.send(command).await;
        rx
    }

    /// Asks connected members for the body with content id `cid` (any
    /// resource); the body is checked against the CID. `None` past
    /// `deadline` or when nobody holds it.
    pub async fn fetch_blob(&self, cid: &ContentId, deadline: Duration) -> Option<Bytes> {
        let (tx, rx) = oneshot::channel();
        let request = seal_message(
            self.inner.keys.envelope_key(),
            FETCH_REQUEST_AAD,
            None,
            Some(cid),
            &[],
        );
        self.run_fetch(Wanted::Blob(*cid), request, Reply::Blob(tx), rx, deadline)
            .await
    }

    /// Hands a fetch to the event loop and waits for its answer, at most
    /// `deadline`.
    async fn run_fetch<T>(
        &self,
        wanted: Wanted,
        request: Vec<u8>,
        reply: Reply,
        answer: oneshot::Receiver<Option<T>>,
        deadline: Duration,
    ) -> Option<T> {
        let work = async {
            self.inner
                .cmd
                .send(Command::Fetch {
                    wanted,
                    request,
                    reply,
                    only: None,
                })
                .await
                .ok()?;
            answer.await.ok().flatten()
        };
        tokio::time::timeout(deadline, work).await.ok().flatten()
    }

    /// Tells the fleet we stored a new version of `resource`.
    pub fn announce_version(
        &self,
        resource: &ResourceId,
        cid: &ContentId,
        etag: Option<&str>,
        size: u64,
    ) {
        self.publish(AnnounceKind::Version {
            resource: *resource,
            cid: *cid,
            etag: etag.map(str::to_owned),
            size,
        });
    }

    /// Records that we hold `resource` (publishes a Kademlia provider record
    /// once; a no-op without Kademlia).
    pub fn hold(&self, resource: &ResourceId) {
        if self.inner.holds.try_send(*resource).is_err() {
            self.inner.holds_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tells the fleet these paths changed (a write went through us).
    pub fn announce_invalidation(&self, paths: &[String]) {
        if paths.is_empty() {
            return;
        }
        self.publish(AnnounceKind::Invalidate {
            paths: paths.to_vec(),
        });
    }

    fn publish(&self, kind: AnnounceKind) {
        let sealed =
            Announcement::new(kind).seal(self.inner.keys.envelope_key(), &self.inner.topic);
        if self.inner.cmd.try_send(Command::Publish(sealed)).is_err() {
            tracing::warn!("mesh command queue full or closed: announcement dropped");
        }
    }

    /// Path invalidations received from peers (verified).
    pub fn invalidations(&self) -> broadcast::Receiver<Vec<String>> {
        self.inner.invalidations.subscribe()
    }

    pub async fn stats(&self) -> MeshStats {
        match self.ask(Command::Stats).await {
            Some(mut s) => {
                s.provides_dropped += self.inner.holds_dropped.load(Ordering::Relaxed);
                s
            }
            None => MeshStats {
                peer_id: self.inner.peer_id.to_string(),
                key_fingerprint: self.inner.keys.fingerprint(),
                ..MeshStats::default()
            },
        }
    }

    /// Stops the event loop, removes our registry record and closes all
    /// connections. Other handles then get empty answers.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.cmd.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self.inner.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Test hook: kills the event loop abruptly (like a crash: connections
    /// drop, the registry record stays).
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub fn abort(&self) {
        if let Some(t) = self.inner.task.lock().take() {
            t.abort();
        }
    }

    /// Test hook: delay before answering each fetch request.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub fn set_serve_delay(&self, delay: Duration) {
        self.inner
            .serve_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Test hook: sends raw bytes as a fetch request to `peer` and returns
    /// the raw response bytes.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub async fn raw_request(
        &self,
        peer: PeerId,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        tokio::time::timeout(
            timeout,
            self.ask(|reply| Command::Raw { peer, bytes, reply }),
        )
        .await
        .ok()
        .flatten()
        .flatten()
    }

    /// Test hook: every provider Kademlia knows for `resource` (a full
    /// `get_providers` query).
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub async fn providers_of(&self, resource: &ResourceId) -> Vec<PeerId> {
        self.ask(|reply| Command::Providers {
            resource: *resource,
            reply,
        })
        .await
        .unwrap_or_default()
    }

    /// Test hook: publishes raw bytes on the announcement topic.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub async fn raw_publish(&self, bytes: Vec<u8>) {
        let _ = self.inner.cmd.send(Command::Publish(bytes)).await;
    }
}

impl PeerSource for Mesh {
    fn lookup<'a>(
        &'a self,
        resource: &'a ResourceId,
        partition: &'a Partition,
        deadline: Duration,
    ) -> PeerFuture<'a> {
        Box::pin(self.fetch(resource, partition, deadline))
    }

    fn lookup_claimed<'a>(
        &'a self,
        resource: &'a ResourceId,
        partition: &'a Partition,
        claim: u64,
        deadline: Duration,
        wait: Duration,
    ) -> ClaimedFuture<'a> {
        Box::pin(self.fetch_claimed(resource, partition, claim, deadline, wait))
    }

    /// Stretched to what members' answers take, at most `fetch_deadline_max`
    /// (never below `configured`).
    fn deadline(&self, configured: Duration) -> Duration {
        self.inner
            .rtt
            .deadline(configured, self.inner.fetch_deadline_max)
    }

    fn share_flights(&self, flights: Arc<ghcache_peer::Flights>) {
        let _ = self.inner.flights.set(flights);
    }

    fn announce_version(
        &self,
        resource: &ResourceId,
        cid: &ContentId,
        etag: Option<&str>,
        size: u64,
    ) {
        Mesh::announce_version(self, resource, cid, etag, size);
    }

    fn announce_invalidation(&self, paths: &[String]) {
        Mesh::announce_invalidation(self, paths);
    }

    fn newer_version<'a>(
        &'a self,
        resource: &'a ResourceId,
        partition: &'a Partition,
        held: &'a ContentId,
        deadline: Duration,
    ) -> PeerFuture<'a> {
        Box::pin(self.fetch_newer(resource, partition, held, deadline))
    }

    fn hold(&self, resource: &ResourceId) {
        Mesh::hold(self, resource);
    }

    fn describe(&self) -> StatusFuture<'_> {
        Box::pin(async move { PeerStatus::mesh(self.stats().await) })
    }
}
