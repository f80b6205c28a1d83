//! The event loop that owns the Swarm, and the [`Mesh`] handle.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_peer::{
    ConnectedPeer, DiscoveredPeers, LastRejection, MeshStats, PeerCopy, PeerFuture, PeerSource,
    PeerStatus, RejectedCounts, StatusFuture,
};
use ghcache_store::Store;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, allow_block_list, gossipsub, identify,
    kad, mdns, noise, ping, tcp, yamux,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::envelope::{open_message, seal_message};
use crate::keys::{ClusterKeys, derive_keys};
use crate::registry;
use crate::wire::{
    AnnounceKind, Announcement, FETCH_PROTOCOL, FETCH_REQUEST_AAD, FETCH_RESPONSE_AAD, FetchCodec,
    Frame, KAD_PROTOCOL, Reject, announce_topic, decode_request, decode_response, encode_request,
    encode_response, now_ms,
};
use crate::{MeshConfig, MeshError};

/// Announcements older than this (or this far in the future) are refused.
const MAX_ANNOUNCE_AGE_MS: u64 = 5 * 60 * 1000;
/// Largest announcement accepted.
const MAX_ANNOUNCE_BYTES: usize = 256 * 1024;
/// Announcement ids remembered for replay detection.
const SEEN_IDS: usize = 16_384;
/// Members keep idle connections this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const HOUSEKEEPING: Duration = Duration::from_millis(250);
const KAD_BOOTSTRAP_EVERY: Duration = Duration::from_secs(60);
/// Provider-record publications running at once; the rest wait in a queue.
const MAX_PROVIDES_IN_FLIGHT: usize = 32;
/// Publications waiting; past this, new ones are dropped (and counted): the
/// resource is still found through announcements and connected peers.
const MAX_PROVIDE_QUEUE: usize = MAX_PROVIDED_KEYS;
/// Provider records we keep (ours and other members'), against the default
/// of 1,024 keys: a cache holds far more.
const MAX_PROVIDED_KEYS: usize = 1 << 20;
/// Provider records live this long on other members...
const PROVIDER_TTL: Duration = Duration::from_secs(24 * 3600);
/// ...and we republish ours this often, through our throttled queue (the
/// built-in republication would start one query per record at once).
const PROVIDER_REPUBLISH: Duration = Duration::from_secs(8 * 3600);
/// How often publications that reached nobody are tried again.
const RETRY_PROVIDES: Duration = Duration::from_secs(30);
/// `hold` calls waiting for the event loop.
const MAX_HOLDS_WAITING: usize = 65_536;
/// Resource → the peer that last announced a version of it.
const HOLDER_HINTS: usize = 16_384;
/// Membership probes sent to one peer per connection spell before we stop
/// asking (each lost to a closed connection, a timeout or a stream error).
const MAX_PROBE_ATTEMPTS: u32 = 4;

#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    fetch: request_response::Behaviour<FetchCodec>,
    gossipsub: gossipsub::Behaviour,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Registry,
    Bootstrap,
    Mdns,
    Kademlia,
    Manual,
}

enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), MeshError>>),
    Connect(Multiaddr, oneshot::Sender<Result<PeerId, MeshError>>),
    Fetch {
        wanted: Wanted,
        request: Vec<u8>,
        reply: Reply,
    },
    Publish(Vec<u8>),
    Raw {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    Stats(oneshot::Sender<MeshStats>),
    Providers(ResourceId, oneshot::Sender<Vec<PeerId>>),
    Shutdown(oneshot::Sender<()>),
}

/// Messages from tasks the loop spawned.
enum Internal {
    Respond {
        channel: ResponseChannel<Frame>,
        frame: Frame,
        found: bool,
    },
    Discovered {
        source: Source,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    /// Provider keys of every resource the store holds (start, republish).
    Held(Vec<kad::RecordKey>),
    /// Bootstrap address `index` (a `/dns*` one) resolved to these.
    Resolved { index: usize, addrs: Vec<Multiaddr> },
}

// ---- stats ----------------------------------------------------------------

fn bump(counts: &mut RejectedCounts, r: Reject) {
    match r {
        Reject::Decrypt => counts.decrypt += 1,
        Reject::CidMismatch => counts.cid_mismatch += 1,
        Reject::Oversized => counts.oversized += 1,
        Reject::Malformed => counts.malformed += 1,
        Reject::Replayed => counts.replayed += 1,
    }
}

// ---- the handle -----------------------------------------------------------

struct Shared {
    peer_id: PeerId,
    cmd: mpsc::Sender<Command>,
    keys: ClusterKeys,
    topic: String,
    network_id: String,
    fetch_deadline: Duration,
    invalidations: broadcast::Sender<Vec<String>>,
    serve_delay_ms: Arc<AtomicU64>,
    /// `hold` calls, on their own deep queue so a burst of stores never
    /// competes with fetches for the command queue.
    holds: mpsc::Sender<ResourceId>,
    holds_dropped: AtomicU64,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        validate(&config)?;
        let secret = config.cluster_secret.clone();
        let net = config.network_id.clone();
        let keys = tokio::task::spawn_blocking(move || derive_keys(&secret, &net))
            .await
            .map_err(|e| MeshError::Config(format!("key derivation task failed: {e}")))?;
        let identity_path = config.identity_path.clone();
        let keypair =
            tokio::task::spawn_blocking(move || crate::identity::load_or_create(&identity_path))
                .await
                .map_err(|e| MeshError::Config(format!("identity task failed: {e}")))??;
        let peer_id = keypair.public().to_peer_id();
        let topic = announce_topic(&config.network_id);
        if config.private_network && config.quic {
            tracing::info!("private network (pre-shared key) mode: TCP only, QUIC is off");
        }
        let mut swarm = build_swarm(&config, &keys, keypair, &topic)?;

        let mut listen =
            vec![Multiaddr::from(config.listen_ip).with(Protocol::Tcp(config.listen_port))];
        if config.quic && !config.private_network {
            listen.push(
                Multiaddr::from(config.listen_ip)
                    .with(Protocol::Udp(config.listen_port))
                    .with(Protocol::QuicV1),
            );
        }
        for addr in listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| MeshError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
        }
        for addr in &config.external_addrs {
            swarm.add_external_address(addr.clone());
        }

        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let (holds_tx, holds_rx) = mpsc::channel(MAX_HOLDS_WAITING);
        let (inv_tx, _) = broadcast::channel(256);
        let serve_delay_ms = Arc::new(AtomicU64::new(0));
        let now = Instant::now();
        let network_id = config.network_id.clone();
        let fetch_deadline = config.fetch_deadline;
        let bootstrap = config
            .bootstrap
            .iter()
            .map(|a| BootstrapState {
                addr: a.clone(),
                peer: peer_of_addr(a),
                attempts: 0,
                next: now,
            })
            .collect();
        let mut node = Node {
            swarm,
            store,
            keys: keys.clone(),
            peer_id,
            topic: gossipsub::IdentTopic::new(topic.clone()),
            topic_name: topic.clone(),
            invalidations: inv_tx.clone(),
            internal_tx,
            serve_delay_ms: serve_delay_ms.clone(),
            fetches: HashMap::new(),
            next_fetch: 0,
            provider_queries: HashMap::new(),
            provider_probes: HashMap::new(),
            provide_queries: HashSet::new(),
            provide_queue: std::collections::VecDeque::new(),
            provide_queued: HashSet::new(),
            ours: HashSet::new(),
            provide_retry: Vec::new(),
            retry_next: now + RETRY_PROVIDES,
            republish_next: now + PROVIDER_REPUBLISH,
            holders: lru::LruCache::new(
                NonZeroUsize::new(HOLDER_HINTS).unwrap_or(NonZeroUsize::MIN),
            ),
            members: HashMap::new(),
            probing: HashMap::new(),
            connect_waiters: HashMap::new(),
            pending: HashMap::new(),
            strikes: HashMap::new(),
            bans: HashMap::new(),
            warned_decrypt: HashSet::new(),
            seen: lru::LruCache::new(NonZeroUsize::new(SEEN_IDS).unwrap_or(NonZeroUsize::MIN)),
            discovered: BTreeMap::new(),
            dial_sources: HashMap::new(),
            conns: HashMap::new(),
            bootstrap,
            registry_next: now,
            registry_warned: Arc::new(parking_lot::Mutex::new(HashSet::new())),
            started_ms: now_ms(),
            kad_next: now + Duration::from_secs(1),
            kad_last: now.checked_sub(Duration::from_secs(60)).unwrap_or(now),
            stats: MeshStats::default(),
            config,
        };
        node.wait_listening().await?;
        // Entries kept from before a restart: published again once the
        // routing table has peers (the queue waits for them).
        node.refresh_held();
        let task = tokio::spawn(node.run(cmd_rx, internal_rx, holds_rx));
        Ok(Mesh {
            inner: Arc::new(Shared {
                peer_id,
                cmd: cmd_tx,
                keys,
                topic,
                network_id,
                fetch_deadline,
                invalidations: inv_tx,
                serve_delay_ms,
                holds: holds_tx,
                holds_dropped: AtomicU64::new(0),
                task: parking_lot::Mutex::new(Some(task)),
            }),
        })
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
            .send(Command::Dial(addr, tx))
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
            .send(Command::Connect(addr, tx))
            .await
            .map_err(|_| MeshError::Closed)?;
        rx.await.map_err(|_| MeshError::Closed)?
    }

    /// Asks every connected peer for `resource` (preferring `partition`) in
    /// parallel; the first valid answer wins. `None` past `deadline`.
    pub async fn fetch(
        &self,
        resource: &ResourceId,
        partition: &Partition,
        deadline: Duration,
    ) -> Option<PeerCopy> {
        let (tx, rx) = oneshot::channel();
        let request = seal_message(
            self.inner.keys.envelope_key(),
            FETCH_REQUEST_AAD,
            Some(resource),
            None,
            &encode_request(partition),
        );
        self.run_fetch(
            Wanted::Entry(*resource),
            request,
            Reply::Entry(tx),
            rx,
            deadline,
        )
        .await
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
    #[doc(hidden)]
    pub fn abort(&self) {
        if let Some(t) = self.inner.task.lock().take() {
            t.abort();
        }
    }

    /// Test hook: delay before answering each fetch request.
    #[doc(hidden)]
    pub fn set_serve_delay(&self, delay: Duration) {
        self.inner
            .serve_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Test hook: sends raw bytes as a fetch request to `peer` and returns
    /// the raw response bytes.
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
    #[doc(hidden)]
    pub async fn providers_of(&self, resource: &ResourceId) -> Vec<PeerId> {
        self.ask(|tx| Command::Providers(*resource, tx))
            .await
            .unwrap_or_default()
    }

    /// Test hook: publishes raw bytes on the announcement topic.
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

    fn hold(&self, resource: &ResourceId) {
        Mesh::hold(self, resource);
    }

    fn describe(&self) -> StatusFuture<'_> {
        Box::pin(async move { PeerStatus::mesh(self.stats().await) })
    }
}

fn validate(c: &MeshConfig) -> Result<(), MeshError> {
    if c.cluster_secret.is_empty() {
        return Err(MeshError::Config(
            "GHCACHE_CLUSTER_SECRET is empty: every daemon of the cluster needs the same non-empty secret".into(),
        ));
    }
    if c.network_id.is_empty()
        || !c
            .network_id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        return Err(MeshError::Config(format!(
            "network id {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
            c.network_id
        )));
    }
    if c.max_message_bytes < 4096 {
        return Err(MeshError::Config(
            "max_message_bytes must be at least 4096".into(),
        ));
    }
    if c.registry_ttl < Duration::from_millis(300) {
        return Err(MeshError::Config(
            "registry_ttl must be at least 300 ms".into(),
        ));
    }
    Ok(())
}

type BehaviourResult = Result<Behaviour, Box<dyn std::error::Error + Send + Sync>>;

fn build_swarm(
    config: &MeshConfig,
    keys: &ClusterKeys,
    keypair: libp2p::identity::Keypair,
    topic: &str,
) -> Result<Swarm<Behaviour>, MeshError> {
    let transport = |e: &dyn std::fmt::Display| MeshError::Transport(e.to_string());
    let behaviour = |key: &libp2p::identity::Keypair| make_behaviour(config, key, topic);
    let tcp_config = tcp::Config::default().nodelay(true);
    let builder = SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let swarm = if config.private_network {
        // pnet wraps the raw TCP stream before Noise; QUIC has its own
        // handshake and cannot carry it.
        let psk = libp2p::pnet::PreSharedKey::new(*keys.pnet_key());
        builder
            .with_other_transport(
                |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    use libp2p::Transport;
                    Ok(tcp::tokio::Transport::new(tcp_config)
                        .and_then(move |socket, _| {
                            libp2p::pnet::PnetConfig::new(psk).handshake(socket)
                        })
                        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default())
                        .timeout(Duration::from_secs(20)))
                },
            )
            .map_err(|e| transport(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| transport(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build()
    } else {
        builder
            .with_tcp(tcp_config, noise::Config::new, yamux::Config::default)
            .map_err(|e| transport(&e))?
            .with_quic()
            .with_behaviour(behaviour)
            .map_err(|e| transport(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build()
    };
    Ok(swarm)
}

fn make_behaviour(
    config: &MeshConfig,
    key: &libp2p::identity::Keypair,
    topic: &str,
) -> BehaviourResult {
    let max = config.max_message_bytes;
    let mdns_on = config.mdns;
    let kad_on = config.kademlia;
    let topic = gossipsub::IdentTopic::new(topic);
    let peer_id = key.public().to_peer_id();
    let identify = identify::Behaviour::new(
        identify::Config::new("/ghcache/id/1.0.0".into(), key.public())
            .with_agent_version(format!("ghcache/{}", env!("CARGO_PKG_VERSION")))
            // Only addresses we chose to advertise (external ones).
            .with_hide_listen_addrs(true),
    );
    let fetch = request_response::Behaviour::with_codec(
        FetchCodec { max_bytes: max },
        [(
            StreamProtocol::new(FETCH_PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(256),
    );
    let gs_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_secs(1))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_ANNOUNCE_BYTES + 4096)
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gs_config,
    )
    .map_err(|e| format!("gossipsub: {e}"))?;
    gossipsub
        .subscribe(&topic)
        .map_err(|e| format!("gossipsub subscribe: {e}"))?;
    let kad = kad_on.then(|| {
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_provided_keys: MAX_PROVIDED_KEYS,
                ..Default::default()
            },
        );
        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_config
            .set_provider_record_ttl(Some(PROVIDER_TTL))
            .set_provider_publication_interval(None);
        let mut k = kad::Behaviour::with_config(peer_id, store, kad_config);
        k.set_mode(Some(kad::Mode::Server));
        k
    });
    let mdns = if mdns_on {
        match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "mDNS unavailable; continuing without it");
                None
            }
        }
    } else {
        None
    };
    Ok(Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        identify,
        ping: ping::Behaviour::new(ping::Config::new()),
        fetch,
        gossipsub,
        kad: Toggle::from(kad),
        mdns: Toggle::from(mdns),
    })
}

fn is_dns(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_))
    )
}

/// `/dns4/host/tcp/9100[/p2p/…]` → `/ip4/<each address>/tcp/9100[/p2p/…]`.
/// Empty (with a warning) when the name does not resolve.
async fn resolve(addr: &Multiaddr) -> Vec<Multiaddr> {
    let mut parts = addr.iter();
    let (host, want_v4, want_v6) = match parts.next() {
        Some(Protocol::Dns(h)) => (h.to_string(), true, true),
        Some(Protocol::Dns4(h)) => (h.to_string(), true, false),
        Some(Protocol::Dns6(h)) => (h.to_string(), false, true),
        _ => return Vec::new(),
    };
    let rest: Vec<Protocol<'_>> = parts.collect();
    let port = rest
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) | Protocol::Udp(port) => Some(*port),
            _ => None,
        })
        .unwrap_or(0);
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(found) => {
            let mut out: Vec<Multiaddr> = Vec::new();
            for sa in found {
                let ip = sa.ip();
                if (ip.is_ipv4() && !want_v4) || (ip.is_ipv6() && !want_v6) {
                    continue;
                }
                let mut m = Multiaddr::from(ip);
                for p in &rest {
                    m.push(p.clone());
                }
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            if out.is_empty() {
                tracing::warn!(%addr, "bootstrap name has no address of the requested family");
            }
            out
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot resolve bootstrap address; will retry");
            Vec::new()
        }
    }
}

fn peer_of_addr(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Whether `addr` is worth advertising to remote peers: not loopback,
/// unspecified, link-local or the default docker bridge — unless we listen on
/// loopback ourselves (tests, single-host setups).
fn advertisable(addr: &Multiaddr, listen_ip: IpAddr) -> bool {
    if listen_ip.is_loopback() {
        return true;
    }
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => {
            let o = ip.octets();
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_link_local()
                || (o[0] == 172 && o[1] == 17))
        }
        Some(Protocol::Ip6(ip)) => {
            !(ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xffc0) == 0xfe80)
        }
        _ => true,
    }
}

// ---- the event loop -------------------------------------------------------

/// What a fetch asks for.
#[derive(Clone, Copy)]
enum Wanted {
    /// An entry (metadata and body) of a resource.
    Entry(ResourceId),
    /// A body by content id.
    Blob(ContentId),
}

/// Where a fetch's answer goes.
enum Reply {
    Entry(oneshot::Sender<Option<PeerCopy>>),
    Blob(oneshot::Sender<Option<Bytes>>),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Reply::Entry(tx) => tx.is_closed(),
            Reply::Blob(tx) => tx.is_closed(),
        }
    }

    fn miss(self) {
        match self {
            Reply::Entry(tx) => {
                let _ = tx.send(None);
            }
            Reply::Blob(tx) => {
                let _ = tx.send(None);
            }
        }
    }
}

struct FetchState {
    wanted: Wanted,
    /// The sealed request, resent to providers found later.
    request: Vec<u8>,
    reply: Option<Reply>,
    outstanding: usize,
    asked: HashSet<PeerId>,
    providers: ProviderStep,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProviderStep {
    NotStarted,
    Running(kad::QueryId),
    Done,
}

enum Pending {
    /// A fetch request; `true` when the peer came from a provider record.
    Fetch(u64, bool),
    /// A request for a random resource, sent until a peer has a verdict:
    /// the answer (or a decryption failure) tells whether it shares our
    /// cluster key.
    Probe(ResourceId),
    Raw(oneshot::Sender<Option<Vec<u8>>>),
}

struct BootstrapState {
    addr: Multiaddr,
    peer: Option<PeerId>,
    attempts: u32,
    next: Instant,
}

struct Node {
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    keys: ClusterKeys,
    peer_id: PeerId,
    config: MeshConfig,
    topic: gossipsub::IdentTopic,
    topic_name: String,
    invalidations: broadcast::Sender<Vec<String>>,
    internal_tx: mpsc::Sender<Internal>,
    serve_delay_ms: Arc<AtomicU64>,
    fetches: HashMap<u64, FetchState>,
    next_fetch: u64,
    provider_queries: HashMap<kad::QueryId, u64>,
    /// Test hook queries: providers found so far, and where they go.
    provider_probes: HashMap<kad::QueryId, (Vec<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    provide_queries: HashSet<kad::QueryId>,
    provide_queue: std::collections::VecDeque<kad::RecordKey>,
    provide_queued: HashSet<kad::RecordKey>,
    /// Keys we publish (or are about to): the source of truth for dedup,
    /// republication and withdrawal; libp2p's store may drop our own record
    /// when a key already has its maximum of providers.
    ours: HashSet<kad::RecordKey>,
    /// Publications that reached no peer, retried every RETRY_PROVIDES.
    provide_retry: Vec<kad::RecordKey>,
    retry_next: Instant,
    republish_next: Instant,
    holders: lru::LruCache<ResourceId, PeerId>,
    members: HashMap<PeerId, bool>,
    /// Peers without a verdict yet: the probe in flight and how many were sent.
    probing: HashMap<PeerId, (OutboundRequestId, u32)>,
    connect_waiters: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, MeshError>>)>,
    pending: HashMap<OutboundRequestId, Pending>,
    strikes: HashMap<PeerId, u32>,
    bans: HashMap<PeerId, Instant>,
    warned_decrypt: HashSet<PeerId>,
    seen: lru::LruCache<[u8; 16], ()>,
    discovered: BTreeMap<Source, BTreeSet<PeerId>>,
    dial_sources: HashMap<ConnectionId, (Source, Option<usize>)>,
    conns: HashMap<PeerId, Vec<(ConnectionId, Multiaddr)>>,
    bootstrap: Vec<BootstrapState>,
    registry_next: Instant,
    registry_warned: Arc<parking_lot::Mutex<HashSet<String>>>,
    started_ms: u64,
    kad_next: Instant,
    kad_last: Instant,
    stats: MeshStats,
}

impl Node {
    async fn wait_listening(&mut self) -> Result<(), MeshError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.swarm.listeners().next().is_none() {
            let ev = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| MeshError::Listen {
                    addr: format!("{}:{}", self.config.listen_ip, self.config.listen_port),
                    reason: "no listen address came up within 10 s".into(),
                })?;
            if let SwarmEvent::ListenerClosed { reason: Err(e), .. }
            | SwarmEvent::ListenerError { error: e, .. } = &ev
            {
                return Err(MeshError::Listen {
                    addr: format!("{}:{}", self.config.listen_ip, self.config.listen_port),
                    reason: e.to_string(),
                });
            }
            self.on_swarm_event(ev);
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut internal_rx: mpsc::Receiver<Internal>,
        mut holds_rx: mpsc::Receiver<ResourceId>,
    ) {
        tracing::info!(
            peer_id = %self.peer_id,
            network = %self.config.network_id,
            key_fingerprint = %self.keys.fingerprint(),
            "mesh started"
        );
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.shutdown();
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.shutdown();
                        return;
                    }
                },
                Some(msg) = internal_rx.recv() => self.on_internal(msg),
                Some(rid) = holds_rx.recv() => self.hold(rid),
                _ = tick.tick() => self.housekeeping(),
            }
        }
    }

    fn shutdown(&mut self) {
        if let Some(dir) = &self.config.registry_dir {
            registry::remove_record(dir, &self.peer_id);
        }
        tracing::info!(peer_id = %self.peer_id, "mesh stopped");
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs(tx) => {
                let _ = tx.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers(tx) => {
                let _ = tx.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Dial(addr, tx) => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                let res = self.swarm.dial(opts).map_err(|e| MeshError::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
                if res.is_ok() {
                    self.dial_sources.insert(id, (Source::Manual, None));
                }
                let _ = tx.send(res);
            }
            Command::Connect(addr, tx) => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dial_sources.insert(id, (Source::Manual, None));
                        self.connect_waiters.insert(id, (addr, tx));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(MeshError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Fetch {
                wanted,
                request,
                reply,
            } => self.start_fetch(wanted, request, reply),
            Command::Publish(bytes) => {
                let len = bytes.len() as u64;
                match self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), bytes)
                {
                    Ok(_) => {
                        self.stats.announcements_sent += 1;
                        self.stats.bytes_out += len;
                    }
                    Err(e) => tracing::debug!(error = %e, "announcement not published"),
                }
            }
            Command::Raw { peer, bytes, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_request(&peer, Frame::Bytes(bytes));
                self.pending.insert(id, Pending::Raw(reply));
            }
            Command::Stats(tx) => {
                let _ = tx.send(self.snapshot());
            }
            Command::Providers(rid, tx) => {
                let key = kad::RecordKey::new(&self.keys.provider_key(&rid));
                match self.swarm.behaviour_mut().kad.as_mut() {
                    Some(k) => {
                        let qid = k.get_providers(key);
                        self.provider_probes.insert(qid, (Vec::new(), tx));
                    }
                    None => {
                        let _ = tx.send(Vec::new());
                    }
                }
            }
            Command::Shutdown(_) => {}
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Respond {
                channel,
                frame,
                found,
            } => {
                let len = match &frame {
                    Frame::Bytes(b) => b.len() as u64,
                    _ => 0,
                };
                if self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_response(channel, frame)
                    .is_ok()
                {
                    self.stats.bytes_out += len;
                    if found {
                        self.stats.fetches_served += 1;
                    } else {
                        self.stats.fetches_not_found += 1;
                    }
                }
            }
            Internal::Discovered {
                source,
                peer,
                addrs,
            } => self.discovered(source, peer, addrs),
            Internal::Held(keys) => self.on_held(keys),
            Internal::Resolved { index, addrs } => {
                for addr in addrs {
                    self.dial_bootstrap(index, addr);
                }
            }
        }
    }

    fn discovered(&mut self, source: Source, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == self.peer_id || self.bans.contains_key(&peer) || addrs.is_empty() {
            return;
        }
        self.discovered.entry(source).or_default().insert(peer);
        if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
            for a in &addrs {
                k.add_address(&peer, a.clone());
            }
        }
        if !self.swarm.is_connected(&peer) {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let id = opts.connection_id();
            if self.swarm.dial(opts).is_ok() {
                self.dial_sources.insert(id, (source, None));
            }
        }
    }

    /// Step "connected peers": the peer that last announced this resource,
    /// plus up to `fetch_fanout` other connected members, all in parallel.
    /// When none of them has it, [`Node::finish_one`] moves on to the
    /// providers step.
    fn start_fetch(&mut self, wanted: Wanted, request: Vec<u8>, reply: Reply) {
        let mut candidates: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .copied()
            .filter(|p| self.askable(p))
            .collect();
        let mut chosen = Vec::new();
        let hint = match wanted {
            Wanted::Entry(rid) => self.holders.get(&rid).copied(),
            Wanted::Blob(_) => None,
        };
        if let Some(holder) = hint {
            if let Some(i) = candidates.iter().position(|p| *p == holder) {
                chosen.push(candidates.swap_remove(i));
            }
        }
        let fanout = self.config.fetch_fanout.min(candidates.len());
        // When every connected member is asked, a provider record could only
        // name a peer we are not connected to: in a small, fully connected
        // cluster that is a dead one, and the query would hold a true miss
        // until the deadline. Ask Kademlia only when some members were left
        // out.
        let everyone_asked = fanout == candidates.len();
        if !everyone_asked {
            use rand::seq::SliceRandom;
            candidates.shuffle(&mut rand::thread_rng());
        }
        chosen.extend(candidates.into_iter().take(fanout));

        let fid = self.next_fetch;
        self.next_fetch += 1;
        self.fetches.insert(
            fid,
            FetchState {
                wanted,
                request,
                reply: Some(reply),
                outstanding: 0,
                asked: HashSet::new(),
                providers: if everyone_asked {
                    ProviderStep::Done
                } else {
                    ProviderStep::NotStarted
                },
            },
        );
        for p in chosen {
            self.ask_peer(fid, p, false);
        }
        if self.fetches.get(&fid).is_some_and(|f| f.outstanding == 0) {
            self.next_step(fid);
        }
    }

    /// Starts the providers step of fetch `fid`; false without Kademlia.
    fn start_providers(&mut self, fid: u64) -> bool {
        let Some(st) = self.fetches.get(&fid) else {
            return false;
        };
        // Provider records are kept per resource, not per body.
        let Wanted::Entry(rid) = st.wanted else {
            return false;
        };
        let key = kad::RecordKey::new(&self.keys.provider_key(&rid));
        let Some(k) = self.swarm.behaviour_mut().kad.as_mut() else {
            return false;
        };
        let qid = k.get_providers(key);
        self.provider_queries.insert(qid, fid);
        self.stats.provider_lookups += 1;
        if let Some(st) = self.fetches.get_mut(&fid) {
            st.providers = ProviderStep::Running(qid);
        }
        true
    }

    /// Whether fetches may go to `peer`: not banned, not known to hold
    /// another cluster key.
    fn askable(&self, peer: &PeerId) -> bool {
        !self.bans.contains_key(peer) && self.members.get(peer) != Some(&false)
    }

    fn ask_peer(&mut self, fid: u64, peer: PeerId, via_provider: bool) {
        let Some(st) = self.fetches.get_mut(&fid) else {
            return;
        };
        if !st.asked.insert(peer) {
            return;
        }
        st.outstanding += 1;
        let request = st.request.clone();
        self.stats.bytes_out += request.len() as u64;
        let id = self
            .swarm
            .behaviour_mut()
            .fetch
            .send_request(&peer, Frame::Bytes(request));
        self.pending.insert(id, Pending::Fetch(fid, via_provider));
    }

    /// Called when every peer asked so far has answered without the entry:
    /// ask Kademlia for providers, or give up.
    fn next_step(&mut self, fid: u64) {
        let Some(st) = self.fetches.get_mut(&fid) else {
            return;
        };
        if st.reply.as_ref().is_none_or(|r| r.is_closed()) {
            self.end_fetch(fid);
            return;
        }
        match st.providers {
            ProviderStep::NotStarted => {
                if !self.start_providers(fid) {
                    self.end_fetch(fid);
                }
            }
            // The query's last event decides.
            ProviderStep::Running(_) => {}
            ProviderStep::Done => self.end_fetch(fid),
        }
    }

    /// Forgets a fetch; a caller still waiting gets `None` (a miss).
    fn end_fetch(&mut self, fid: u64) {
        let Some(st) = self.fetches.remove(&fid) else {
            return;
        };
        if let ProviderStep::Running(qid) = st.providers {
            self.provider_queries.remove(&qid);
            self.finish_query(qid);
        }
        if let Some(reply) = st.reply {
            self.stats.peer_misses += 1;
            reply.miss();
        }
    }

    /// Stops a Kademlia query early (its last event still arrives).
    fn finish_query(&mut self, qid: kad::QueryId) {
        if let Some(mut q) = self
            .swarm
            .behaviour_mut()
            .kad
            .as_mut()
            .and_then(|k| k.query_mut(&qid))
        {
            q.finish();
        }
    }

    fn finish_one(&mut self, fid: u64) {
        let Some(st) = self.fetches.get_mut(&fid) else {
            return;
        };
        st.outstanding = st.outstanding.saturating_sub(1);
        if st.outstanding > 0 {
            return;
        }
        if st.reply.is_none() {
            // Answered already: only the bookkeeping is left.
            self.end_fetch(fid);
        } else {
            self.next_step(fid);
        }
    }

    fn on_providers(&mut self, qid: kad::QueryId, found: Vec<PeerId>, last: bool) {
        if let Some((so_far, _)) = self.provider_probes.get_mut(&qid) {
            so_far.extend(found);
            if last {
                if let Some((all, tx)) = self.provider_probes.remove(&qid) {
                    let _ = tx.send(all);
                }
            }
            return;
        }
        let Some(&fid) = self.provider_queries.get(&qid) else {
            return;
        };
        if self.fetches.get(&fid).is_none_or(|st| st.reply.is_none()) {
            // Answered (or abandoned) already: stop looking.
            self.provider_queries.remove(&qid);
            if let Some(st) = self.fetches.get_mut(&fid) {
                st.providers = ProviderStep::Done;
            }
            self.finish_query(qid);
            return;
        }
        for p in found {
            if p != self.peer_id && self.askable(&p) {
                self.ask_peer(fid, p, true);
            }
        }
        if last {
            self.provider_queries.remove(&qid);
            let Some(st) = self.fetches.get_mut(&fid) else {
                return;
            };
            st.providers = ProviderStep::Done;
            if st.outstanding == 0 {
                self.end_fetch(fid);
            }
        }
    }

    /// Queues a provider record for `rid` unless we publish one already.
    fn hold(&mut self, rid: ResourceId) {
        if self.swarm.behaviour().kad.is_enabled() {
            let key = kad::RecordKey::new(&self.keys.provider_key(&rid));
            if !self.ours.contains(&key) {
                self.provide(key);
                self.drain_provides();
            }
        }
    }

    /// Makes `key` ours and queues its publication (even when it is ours
    /// already: a republication). Call `drain_provides` afterwards.
    fn provide(&mut self, key: kad::RecordKey) {
        if !self.ours.contains(&key) && self.ours.len() >= MAX_PROVIDED_KEYS {
            self.stats.provides_dropped += 1;
            return;
        }
        self.ours.insert(key.clone());
        self.queue_provide(key);
    }

    /// Computes the provider keys of everything the store holds, off the
    /// event loop; the answer comes back as [`Internal::Held`].
    fn refresh_held(&self) {
        if !self.config.kademlia {
            return;
        }
        let store = self.store.clone();
        let keys = self.keys.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let held = tokio::task::spawn_blocking(move || {
                store
                    .resource_ids()
                    .iter()
                    .map(|rid| kad::RecordKey::new(&keys.provider_key(rid)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let _ = tx.send(Internal::Held(held)).await;
        });
    }

    /// Republishes what the store holds and withdraws what it no longer
    /// holds (evicted entries).
    fn on_held(&mut self, keys: Vec<kad::RecordKey>) {
        let held: HashSet<kad::RecordKey> = keys.into_iter().collect();
        let gone: Vec<kad::RecordKey> = self.ours.difference(&held).cloned().collect();
        if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
            for key in &gone {
                k.stop_providing(key);
            }
        }
        for key in &gone {
            self.ours.remove(key);
        }
        for key in held {
            self.provide(key);
        }
        self.drain_provides();
    }

    fn queue_provide(&mut self, key: kad::RecordKey) {
        if self.provide_queued.contains(&key) {
            return;
        }
        if self.provide_queue.len() >= MAX_PROVIDE_QUEUE {
            self.stats.provides_dropped += 1;
            return;
        }
        self.provide_queued.insert(key.clone());
        self.provide_queue.push_back(key);
    }

    /// Starts queued publications. While the routing table is empty a
    /// publication would reach no one, so they wait.
    fn drain_provides(&mut self) {
        let routable = self
            .swarm
            .behaviour_mut()
            .kad
            .as_mut()
            .is_some_and(|k| k.kbuckets().any(|b| b.num_entries() > 0));
        if !routable {
            return;
        }
        while self.provide_queries.len() < MAX_PROVIDES_IN_FLIGHT {
            let Some(key) = self.provide_queue.pop_front() else {
                return;
            };
            self.provide_queued.remove(&key);
            let Some(k) = self.swarm.behaviour_mut().kad.as_mut() else {
                return;
            };
            match k.start_providing(key) {
                Ok(qid) => {
                    self.provide_queries.insert(qid);
                }
                Err(e) => {
                    self.stats.provides_dropped += 1;
                    tracing::debug!(error = %e, "provider record not published");
                }
            }
        }
    }

    /// Sends the membership probe to `peer`, unless it has a verdict, a
    /// probe in flight, or used up its attempts. Called on every connection,
    /// not just the first: with simultaneous dials the first connection may
    /// be the one that is dropped, taking its probe with it.
    fn probe(&mut self, peer: PeerId) {
        if self.members.contains_key(&peer) {
            self.probing.remove(&peer);
            return;
        }
        let sent = match self.probing.get(&peer) {
            Some((id, _)) if self.pending.contains_key(id) => return,
            Some((_, n)) => *n,
            None => 0,
        };
        if sent >= MAX_PROBE_ATTEMPTS {
            return;
        }
        let rid = ResourceId::from_bytes(rand::random());
        let request = seal_message(
            self.keys.envelope_key(),
            FETCH_REQUEST_AAD,
            Some(&rid),
            None,
            &encode_request(&Partition::Anonymous),
        );
        self.stats.bytes_out += request.len() as u64;
        let id = self
            .swarm
            .behaviour_mut()
            .fetch
            .send_request(&peer, Frame::Bytes(request));
        self.pending.insert(id, Pending::Probe(rid));
        self.probing.insert(peer, (id, sent + 1));
    }

    /// A probe got no answer: ask again (on another connection if the one
    /// it used closed) while the peer is connected and attempts remain.
    fn probe_failed(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        error: &request_response::OutboundFailure,
    ) {
        // Only the latest probe counts: an older one may fail after a
        // reconnection already sent a new one.
        if self.probing.get(&peer).map(|(id, _)| *id) != Some(request_id) {
            return;
        }
        if !self.swarm.is_connected(&peer) {
            self.probing.remove(&peer);
            return;
        }
        if matches!(
            error,
            request_response::OutboundFailure::UnsupportedProtocols
        ) {
            // Not a ghcache daemon; it will never answer.
            self.probing.insert(peer, (request_id, MAX_PROBE_ATTEMPTS));
            return;
        }
        self.probe(peer);
        if self.probing.get(&peer).map(|(id, _)| *id) == Some(request_id) {
            tracing::debug!(%peer, "membership probe got no answer after {MAX_PROBE_ATTEMPTS} attempts");
        }
    }

    /// The peer answered with an empty frame: it could not open our request,
    /// so it does not hold our cluster key.
    fn refused(&mut self, peer: PeerId, message: &'static str) {
        self.members.insert(peer, false);
        self.probing.remove(&peer);
        if self.warned_decrypt.insert(peer) {
            tracing::warn!(
                "peer {peer} cannot decrypt our {message}: different GHCACHE_CLUSTER_SECRET? \
                 (our key fingerprint is {}, network {:?}; compare with `ghcache stats` on that host)",
                self.keys.fingerprint(),
                self.config.network_id
            );
        }
    }

    fn on_response(&mut self, peer: PeerId, request_id: OutboundRequestId, frame: Frame) {
        if let Frame::Bytes(b) = &frame {
            self.stats.bytes_in += b.len() as u64;
        }
        let refused = matches!(&frame, Frame::Bytes(b) if b.is_empty());
        match self.pending.remove(&request_id) {
            None => {}
            Some(Pending::Probe(_)) if refused => self.refused(peer, "membership probe"),
            Some(Pending::Fetch(fid, _)) if refused => {
                self.refused(peer, "fetch request");
                self.finish_one(fid);
            }
            Some(Pending::Raw(tx)) => {
                let _ = tx.send(match frame {
                    Frame::Bytes(b) => Some(b),
                    _ => None,
                });
            }
            Some(Pending::Probe(rid)) => {
                self.probing.remove(&peer);
                match verify_response(self.keys.envelope_key(), &rid, frame) {
                    Ok(_) => {
                        self.members.insert(peer, true);
                    }
                    Err(r) => {
                        if r == Reject::Decrypt {
                            self.members.insert(peer, false);
                        }
                        self.reject(peer, r, "membership probe answer");
                    }
                }
            }
            Some(Pending::Fetch(fid, via_provider)) => {
                let Some(wanted) = self.fetches.get(&fid).map(|s| s.wanted) else {
                    return;
                };
                let key = self.keys.envelope_key();
                let answer = match wanted {
                    Wanted::Entry(rid) => verify_response(key, &rid, frame).map(|o| o.map(Ok)),
                    Wanted::Blob(cid) => verify_blob_response(key, &cid, frame).map(|o| o.map(Err)),
                };
                match answer {
                    Err(r) => self.reject(peer, r, "fetch response"),
                    Ok(None) => {}
                    Ok(Some(found)) => {
                        self.members.insert(peer, true);
                        let sent = match (
                            self.fetches.get_mut(&fid).and_then(|s| s.reply.take()),
                            found,
                        ) {
                            (Some(Reply::Entry(tx)), Ok(copy)) => tx.send(Some(copy)).is_ok(),
                            (Some(Reply::Blob(tx)), Err(body)) => tx.send(Some(body)).is_ok(),
                            _ => false,
                        };
                        if sent {
                            self.stats.peer_hits += 1;
                            if via_provider {
                                self.stats.provider_hits += 1;
                            }
                        }
                    }
                }
                self.finish_one(fid);
            }
        }
    }

    fn on_request(&mut self, peer: PeerId, frame: Frame, channel: ResponseChannel<Frame>) {
        let bytes = match frame.into_bytes() {
            Ok(b) => b,
            Err(r) => return self.reject(peer, r, "fetch request"),
        };
        self.stats.bytes_in += bytes.len() as u64;
        let opened = match open_message(self.keys.envelope_key(), FETCH_REQUEST_AAD, &bytes) {
            Ok(o) => o,
            Err(e) => {
                let r = Reject::from(e);
                if r == Reject::Decrypt {
                    self.members.insert(peer, false);
                    self.probing.remove(&peer);
                    // Say so with an empty frame (never a valid envelope):
                    // the peer then knows at once that we are not of its
                    // cluster, even if our own probe to it was lost.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_response(channel, Frame::Bytes(Vec::new()));
                }
                return self.reject(peer, r, "fetch request");
            }
        };
        // It opened under the cluster key, so a member sent it: a request we
        // do not understand (a newer daemon's, during a rolling upgrade) gets
        // "not found", never a strike.
        let (wanted, partition) = match (opened.resource, opened.cid) {
            (Some(rid), None) => match decode_request(&opened.plaintext) {
                Ok(p) => (Wanted::Entry(rid), Some(p)),
                Err(_) => (Wanted::Entry(rid), None),
            },
            (None, Some(cid)) if opened.plaintext.is_empty() => (Wanted::Blob(cid), None),
            (resource, cid) => {
                tracing::debug!(%peer, "fetch request of an unknown kind: answering not found");
                let sealed = seal_message(
                    self.keys.envelope_key(),
                    FETCH_RESPONSE_AAD,
                    resource.as_ref(),
                    cid.as_ref(),
                    &encode_response(None),
                );
                self.on_internal(Internal::Respond {
                    channel,
                    frame: Frame::Bytes(sealed),
                    found: false,
                });
                return;
            }
        };
        let store = self.store.clone();
        let key = *self.keys.envelope_key();
        let tx = self.internal_tx.clone();
        let delay = self.serve_delay_ms.load(Ordering::Relaxed);
        let max = self.config.max_message_bytes;
        tokio::spawn(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let built = tokio::task::spawn_blocking(move || match (wanted, partition) {
                (Wanted::Entry(rid), Some(partition)) => {
                    let hit = store
                        .get(&rid, &partition)
                        .map(|h| (partition, h))
                        .or_else(|| store.get_any(&rid))
                        // Never send what the requester would refuse as oversized.
                        .filter(|(_, h)| h.body.len() + 4096 + h.meta.headers.len() * 256 < max);
                    let (plain, cid) = match &hit {
                        Some((p, h)) => (
                            encode_response(Some((p, &h.meta, &h.body))),
                            Some(h.meta.body_cid),
                        ),
                        None => (encode_response(None), None),
                    };
                    let sealed =
                        seal_message(&key, FETCH_RESPONSE_AAD, Some(&rid), cid.as_ref(), &plain);
                    (Frame::Bytes(sealed), hit.is_some())
                }
                (Wanted::Blob(cid), _) => {
                    let body = store.get_blob(&cid).filter(|b| b.len() + 4096 < max);
                    let mut plain = Vec::with_capacity(1 + body.as_ref().map_or(0, |b| b.len()));
                    plain.push(u8::from(body.is_some()));
                    if let Some(b) = &body {
                        plain.extend_from_slice(b);
                    }
                    let sealed = seal_message(&key, FETCH_RESPONSE_AAD, None, Some(&cid), &plain);
                    (Frame::Bytes(sealed), body.is_some())
                }
                (Wanted::Entry(rid), None) => {
                    let sealed = seal_message(
                        &key,
                        FETCH_RESPONSE_AAD,
                        Some(&rid),
                        None,
                        &encode_response(None),
                    );
                    (Frame::Bytes(sealed), false)
                }
            })
            .await;
            if let Ok((frame, found)) = built {
                let _ = tx
                    .send(Internal::Respond {
                        channel,
                        frame,
                        found,
                    })
                    .await;
            }
        });
    }

    fn on_gossip(
        &mut self,
        source: PeerId,
        author: Option<PeerId>,
        id: gossipsub::MessageId,
        data: &[u8],
    ) {
        self.stats.bytes_in += data.len() as u64;
        let verdict = self.check_announcement(data);
        let acceptance = if verdict.is_ok() {
            gossipsub::MessageAcceptance::Accept
        } else {
            gossipsub::MessageAcceptance::Reject
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        match verdict {
            // An honest relay may forward a replay it had not seen itself:
            // count it, but only strike the peer that authored it.
            Err(Reject::Replayed) if author != Some(source) => {
                self.count_rejection(source, Reject::Replayed, "announcement")
            }
            Err(r) => self.reject(source, r, "announcement"),
            Ok(ann) => {
                if let (AnnounceKind::Version { resource, .. }, Some(author)) = (&ann.kind, author)
                {
                    self.holders.put(*resource, author);
                }
                self.apply(ann)
            }
        }
    }

    fn check_announcement(&mut self, data: &[u8]) -> Result<Announcement, Reject> {
        if data.len() > MAX_ANNOUNCE_BYTES {
            return Err(Reject::Oversized);
        }
        let opened = open_message(self.keys.envelope_key(), &self.topic_name, data)?;
        let ann: Announcement =
            serde_json::from_slice(&opened.plaintext).map_err(|_| Reject::Malformed)?;
        if ann.header() != (opened.resource, opened.cid) {
            return Err(Reject::Malformed);
        }
        let now = now_ms();
        if now.saturating_sub(ann.time_ms) > MAX_ANNOUNCE_AGE_MS
            || ann.time_ms.saturating_sub(now) > MAX_ANNOUNCE_AGE_MS
        {
            return Err(Reject::Replayed);
        }
        if self.seen.put(ann.id, ()).is_some() {
            return Err(Reject::Replayed);
        }
        Ok(ann)
    }

    fn apply(&mut self, ann: Announcement) {
        self.stats.announcements_received += 1;
        self.stats.last_announcement_lag_ms = Some(now_ms() as i64 - ann.time_ms as i64);
        match ann.kind {
            AnnounceKind::Version { resource, cid, .. } => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some((_, hit)) = store.get_any(&resource) {
                        if hit.meta.body_cid != cid {
                            store.mark_stale(&resource);
                        }
                    }
                });
            }
            AnnounceKind::Invalidate { paths } => {
                let _ = self.invalidations.send(paths);
            }
        }
    }

    /// Counts, logs and strikes a refused message; bans past the threshold.
    fn reject(&mut self, peer: PeerId, reason: Reject, message: &'static str) {
        self.count_rejection(peer, reason, message);
        self.strike(peer, reason);
    }

    fn count_rejection(&mut self, peer: PeerId, reason: Reject, message: &'static str) {
        bump(&mut self.stats.rejected, reason);
        let hint = match reason {
            Reject::Decrypt => {
                "cannot decrypt: the peer probably has a different GHCACHE_CLUSTER_SECRET or network id"
            }
            Reject::CidMismatch => "body does not match its content id",
            Reject::Oversized => "message larger than max_message_bytes",
            Reject::Malformed => "message cannot be decoded",
            Reject::Replayed => "announcement too old, from the future, or already seen",
        };
        self.stats.last_rejection = Some(LastRejection {
            peer_id: peer.to_string(),
            reason: reason.as_str().into(),
            message: message.into(),
            hint: hint.into(),
            at_ms: now_ms(),
        });
        if reason == Reject::Decrypt {
            if self.warned_decrypt.insert(peer) {
                tracing::warn!(
                    "peer {peer} sent a {message} we cannot decrypt: different GHCACHE_CLUSTER_SECRET? \
                     (our key fingerprint is {}, network {:?}; compare with `ghcache stats` on that host)",
                    self.keys.fingerprint(),
                    self.config.network_id
                );
            }
        } else {
            tracing::warn!(%peer, reason = reason.as_str(), message, "rejected a message from a peer: {hint}");
        }
    }

    fn strike(&mut self, peer: PeerId, reason: Reject) {
        let strikes = self.strikes.entry(peer).or_insert(0);
        *strikes += 1;
        let strikes = *strikes;
        if strikes >= self.config.penalty_threshold && !self.bans.contains_key(&peer) {
            tracing::warn!(
                %peer,
                strikes,
                "disconnecting peer for {:?} after {strikes} rejected messages (last: {})",
                self.config.ban_duration,
                reason.as_str()
            );
            self.bans
                .insert(peer, Instant::now() + self.config.ban_duration);
            let b = self.swarm.behaviour_mut();
            b.blocked.block_peer(peer);
            if let Some(k) = b.kad.as_mut() {
                k.remove_peer(&peer);
            }
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        // Lift expired bans.
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.bans.remove(&p);
            self.strikes.remove(&p);
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
            tracing::info!(peer = %p, "ban lifted");
        }
        // Forget fetches whose caller is gone (deadline passed).
        let abandoned: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, st)| st.reply.as_ref().is_some_and(|r| r.is_closed()))
            .map(|(fid, _)| *fid)
            .collect();
        for fid in abandoned {
            self.end_fetch(fid);
        }
        self.drain_provides();
        if now >= self.republish_next {
            self.republish_next = now + PROVIDER_REPUBLISH;
            self.refresh_held();
        }
        if now >= self.retry_next {
            self.retry_next = now + RETRY_PROVIDES;
            for key in std::mem::take(&mut self.provide_retry) {
                self.queue_provide(key);
            }
            self.drain_provides();
        }
        self.registry_tick(now);
        self.bootstrap_tick(now);
        if now >= self.kad_next {
            self.kad_next = now + KAD_BOOTSTRAP_EVERY;
            self.kad_last = now;
            if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                let _ = k.bootstrap();
            }
        }
    }

    fn registry_tick(&mut self, now: Instant) {
        let Some(dir) = self.config.registry_dir.clone() else {
            return;
        };
        if now < self.registry_next {
            return;
        }
        let addrs: Vec<String> = self
            .swarm
            .external_addresses()
            .map(|a| a.to_string())
            .collect();
        if addrs.is_empty() {
            return;
        }
        self.registry_next = now + self.config.registry_ttl / 3;
        let ttl_ms = self.config.registry_ttl.as_millis() as u64;
        let record = registry::Record {
            peer_id: self.peer_id.to_string(),
            addrs,
            host: hostname(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            network_id: self.config.network_id.clone(),
            started_at: self.started_ms,
            heartbeat: now_ms(),
            ttl: ttl_ms,
        };
        let me = self.peer_id;
        let net = self.config.network_id.clone();
        let warned = self.registry_warned.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let found = tokio::task::spawn_blocking(move || {
                if let Err(e) = registry::write_record(&dir, &me, &record) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot write our peer registry record");
                }
                let mut warned = warned.lock();
                registry::scan(&dir, &me, &net, now_ms(), &mut warned)
            })
            .await
            .unwrap_or_default();
            for f in found {
                let _ = tx
                    .send(Internal::Discovered {
                        source: Source::Registry,
                        peer: f.peer,
                        addrs: f.addrs,
                    })
                    .await;
            }
        });
    }

    fn bootstrap_tick(&mut self, now: Instant) {
        let refresh = self.config.bootstrap_refresh;
        for i in 0..self.bootstrap.len() {
            let st = &mut self.bootstrap[i];
            if now < st.next {
                continue;
            }
            let connected = st.peer.is_some_and(|p| self.swarm.is_connected(&p));
            if connected || st.peer == Some(self.peer_id) {
                st.next = now + refresh;
                continue;
            }
            st.attempts = st.attempts.saturating_add(1);
            let backoff = Duration::from_secs(1u64 << st.attempts.min(16)).min(refresh);
            st.next = now + backoff;
            let addr = st.addr.clone();
            if is_dns(&addr) {
                // Resolved by the system resolver (/etc/hosts, the container
                // runtime's DNS) on every attempt, so a peer that comes back
                // with another address is found again.
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    let addrs = resolve(&addr).await;
                    if !addrs.is_empty() {
                        let _ = tx.send(Internal::Resolved { index: i, addrs }).await;
                    }
                });
            } else {
                self.dial_bootstrap(i, addr);
            }
        }
    }

    fn dial_bootstrap(&mut self, index: usize, addr: Multiaddr) {
        let Some(st) = self.bootstrap.get(index) else {
            return;
        };
        let opts = match st.peer {
            Some(p) => DialOpts::peer_id(p)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr).build(),
        };
        let id = opts.connection_id();
        if self.swarm.dial(opts).is_ok() {
            self.dial_sources
                .insert(id, (Source::Bootstrap, Some(index)));
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "mesh listening");
                if advertisable(&address, self.config.listen_ip) {
                    self.swarm.add_external_address(address);
                }
                self.registry_next = Instant::now();
            }
            SwarmEvent::ExpiredListenAddr { address, .. }
                if !self.config.external_addrs.contains(&address) =>
            {
                self.swarm.remove_external_address(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some((_, tx)) = self.connect_waiters.remove(&connection_id) {
                    let _ = tx.send(Ok(peer_id));
                }
                if self.bans.contains_key(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                self.conns
                    .entry(peer_id)
                    .or_default()
                    .push((connection_id, endpoint.get_remote_address().clone()));
                self.probe(peer_id);
                if let Some((source, idx)) = self.dial_sources.remove(&connection_id) {
                    self.discovered.entry(source).or_default().insert(peer_id);
                    if let Some(st) = idx.and_then(|i| self.bootstrap.get_mut(i)) {
                        st.peer = Some(peer_id);
                        st.attempts = 0;
                        st.next = Instant::now() + self.config.bootstrap_refresh;
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                if let Some(v) = self.conns.get_mut(&peer_id) {
                    v.retain(|(c, _)| *c != connection_id);
                    if v.is_empty() {
                        self.conns.remove(&peer_id);
                        // Probe again on reconnection: the peer may have
                        // restarted with another secret.
                        self.members.remove(&peer_id);
                        self.probing.remove(&peer_id);
                        tracing::debug!(peer = %peer_id, "disconnected");
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let source = self.dial_sources.remove(&connection_id);
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
                // A bootstrap host that came back with a new identity: forget
                // the old one, unless the operator pinned it with /p2p.
                if let (
                    Some((Source::Bootstrap, Some(i))),
                    libp2p::swarm::DialError::WrongPeerId { .. },
                ) = (source, &error)
                {
                    if let Some(st) = self.bootstrap.get_mut(i) {
                        if peer_of_addr(&st.addr).is_none() {
                            st.peer = None;
                        }
                    }
                }
                if let Some((addr, tx)) = self.connect_waiters.remove(&connection_id) {
                    let _ = tx.send(Err(MeshError::Dial {
                        addr: addr.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Fetch(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_request(peer, request, channel),
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => self.on_response(peer, request_id, response),
                }
            }
            BehaviourEvent::Fetch(request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            }) => {
                tracing::debug!(%peer, %error, "fetch request failed");
                match self.pending.remove(&request_id) {
                    Some(Pending::Fetch(fid, _)) => self.finish_one(fid),
                    Some(Pending::Probe(_)) => self.probe_failed(peer, request_id, &error),
                    Some(Pending::Raw(tx)) => {
                        let _ = tx.send(None);
                    }
                    None => {}
                }
            }
            BehaviourEvent::Fetch(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::debug!(%peer, %error, "inbound fetch failed");
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(
                propagation_source,
                message.source,
                message_id,
                &message.data,
            ),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in info.listen_addrs {
                        k.add_address(&peer_id, a);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                is_new_peer,
                addresses,
                ..
            }) if peer != self.peer_id => {
                if is_new_peer {
                    // A new member: look for its neighbours soon (at most
                    // every 10 s, so a fleet starting at once is not a storm).
                    let soon = Instant::now() + Duration::from_millis(500);
                    let earliest = self.kad_last + Duration::from_secs(10);
                    self.kad_next = self.kad_next.min(soon.max(earliest));
                }
                // Members stay connected: dial what Kademlia found.
                self.discovered(Source::Kademlia, peer, addresses.into_vec());
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            }) => match result {
                kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                    providers,
                    ..
                })) => self.on_providers(id, providers.into_iter().collect(), step.last),
                kad::QueryResult::GetProviders(_) => self.on_providers(id, Vec::new(), step.last),
                kad::QueryResult::StartProviding(result)
                    if step.last && self.provide_queries.remove(&id) =>
                {
                    let key = match result {
                        Ok(kad::AddProviderOk { key }) => key,
                        Err(kad::AddProviderError::Timeout { key }) => key,
                    };
                    // libp2p reports success even when no peer took the
                    // record (an empty routing table): try again later.
                    if stats.num_successes() == 0 && self.ours.contains(&key) {
                        self.provide_retry.push(key);
                    }
                    self.drain_provides();
                }
                _ => {}
            },
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (p, a) in list {
                    by_peer.entry(p).or_default().push(a);
                }
                for (p, addrs) in by_peer {
                    self.discovered(Source::Mdns, p, addrs);
                }
            }
            _ => {}
        }
    }

    fn snapshot(&mut self) -> MeshStats {
        let list = |s: Source, d: &BTreeMap<Source, BTreeSet<PeerId>>| -> Vec<String> {
            d.get(&s)
                .map(|set| set.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default()
        };
        let topic_hash = self.topic.hash();
        let announce_peers = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&topic_hash))
            .count();
        let mut connected: Vec<ConnectedPeer> = self
            .swarm
            .connected_peers()
            .map(|p| ConnectedPeer {
                member: self.members.get(p).copied(),
                peer_id: p.to_string(),
                addrs: self
                    .conns
                    .get(p)
                    .map(|v| v.iter().map(|(_, a)| a.to_string()).collect())
                    .unwrap_or_default(),
            })
            .collect();
        connected.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        MeshStats {
            running: true,
            peer_id: self.peer_id.to_string(),
            network_id: self.config.network_id.clone(),
            key_fingerprint: self.keys.fingerprint(),
            listen_addrs: self.swarm.listeners().map(|a| a.to_string()).collect(),
            external_addrs: self
                .swarm
                .external_addresses()
                .map(|a| a.to_string())
                .collect(),
            connected_peers: connected,
            announce_peers,
            discovered: DiscoveredPeers {
                registry: list(Source::Registry, &self.discovered),
                bootstrap: list(Source::Bootstrap, &self.discovered),
                mdns: list(Source::Mdns, &self.discovered),
                kademlia: list(Source::Kademlia, &self.discovered),
                manual: list(Source::Manual, &self.discovered),
            },
            banned_peers: self.bans.keys().map(|p| p.to_string()).collect(),
            provides_pending: self.provide_queue.len()
                + self.provide_queries.len()
                + self.provide_retry.len(),
            provided_keys: self.ours.len(),
            ..self.stats.clone()
        }
    }
}

/// Checks a fetch response: envelope, binding to the requested resource,
/// body against its CID.
fn verify_response(
    key: &[u8; 32],
    rid: &ResourceId,
    frame: Frame,
) -> Result<Option<PeerCopy>, Reject> {
    let opened = open_message(key, FETCH_RESPONSE_AAD, &frame.into_bytes()?)?;
    if opened.resource.as_ref() != Some(rid) {
        return Err(Reject::Malformed);
    }
    match decode_response(opened.plaintext)? {
        None => {
            if opened.cid.is_some() {
                return Err(Reject::Malformed);
            }
            Ok(None)
        }
        Some(found) => {
            let cid = opened.cid.ok_or(Reject::Malformed)?;
            if found.meta.body_cid != cid || !cid.verify(&found.body) {
                return Err(Reject::CidMismatch);
            }
            if found.meta.body_len != found.body.len() as u64 {
                return Err(Reject::Malformed);
            }
            Ok(Some(PeerCopy {
                partition: found.partition,
                meta: found.meta,
                body: found.body.into(),
            }))
        }
    }
}

/// Checks a response to a fetch by content id: bound to that CID, body
/// matching it.
fn verify_blob_response(
    key: &[u8; 32],
    cid: &ContentId,
    frame: Frame,
) -> Result<Option<Bytes>, Reject> {
    let opened = open_message(key, FETCH_RESPONSE_AAD, &frame.into_bytes()?)?;
    if opened.resource.is_some() || opened.cid.as_ref() != Some(cid) {
        return Err(Reject::Malformed);
    }
    match opened.plaintext.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, body)) if cid.verify(body) => Ok(Some(Bytes::copy_from_slice(body))),
        Some((1, _)) => Err(Reject::CidMismatch),
        _ => Err(Reject::Malformed),
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(body: &[u8]) -> ghcache_store::EntryMeta {
        ghcache_store::EntryMeta::for_body(body)
    }

    fn response(
        key: &[u8; 32],
        rid: &ResourceId,
        cid: &ContentId,
        m: &ghcache_store::EntryMeta,
        body: &[u8],
    ) -> Frame {
        let plain = encode_response(Some((&Partition::Anonymous, m, body)));
        Frame::Bytes(seal_message(
            key,
            FETCH_RESPONSE_AAD,
            Some(rid),
            Some(cid),
            &plain,
        ))
    }

    #[test]
    fn responses_are_verified() {
        let k = [3u8; 32];
        let rid = ResourceId::from_bytes([1; 32]);
        let body = b"body";
        let m = meta(body);
        let cid = ContentId::of(body);
        let ok = verify_response(&k, &rid, response(&k, &rid, &cid, &m, body));
        assert_eq!(
            ok.map(|c| c.map(|c| c.body)),
            Ok(Some(bytes::Bytes::from_static(b"body")))
        );
        // Body swapped for another (the CID in header and meta stay): refused.
        assert_eq!(
            verify_response(&k, &rid, response(&k, &rid, &cid, &m, b"evil")).err(),
            Some(Reject::CidMismatch)
        );
        // Consistent lie: header CID of a different body than the meta says.
        let other = ContentId::of(b"evil");
        assert_eq!(
            verify_response(&k, &rid, response(&k, &rid, &other, &m, b"evil")).err(),
            Some(Reject::CidMismatch)
        );
        // Answer for another resource.
        let rid2 = ResourceId::from_bytes([2; 32]);
        assert_eq!(
            verify_response(&k, &rid2, response(&k, &rid, &cid, &m, body)).err(),
            Some(Reject::Malformed)
        );
        assert_eq!(
            verify_response(&[4; 32], &rid, response(&k, &rid, &cid, &m, body)).err(),
            Some(Reject::Decrypt)
        );
        assert_eq!(
            verify_response(&k, &rid, Frame::Oversized(1 << 30)).err(),
            Some(Reject::Oversized)
        );
        assert_eq!(
            verify_response(&k, &rid, Frame::Truncated).err(),
            Some(Reject::Malformed)
        );
        let nf = Frame::Bytes(seal_message(
            &k,
            FETCH_RESPONSE_AAD,
            Some(&rid),
            None,
            &encode_response(None),
        ));
        assert!(matches!(verify_response(&k, &rid, nf), Ok(None)));
    }

    #[test]
    fn blob_responses_are_verified() {
        let k = [3u8; 32];
        let body = b"sarif or any body";
        let cid = ContentId::of(body);
        let answer = |cid: &ContentId, plain: &[u8]| {
            Frame::Bytes(seal_message(&k, FETCH_RESPONSE_AAD, None, Some(cid), plain))
        };
        let mut found = vec![1u8];
        found.extend_from_slice(body);
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&cid, &found)),
            Ok(Some(Bytes::from_static(body)))
        );
        assert_eq!(verify_blob_response(&k, &cid, answer(&cid, &[0])), Ok(None));
        let mut evil = vec![1u8];
        evil.extend_from_slice(b"evil");
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&cid, &evil)),
            Err(Reject::CidMismatch)
        );
        // An answer bound to another CID, or to a resource, is refused.
        let other = ContentId::of(b"evil");
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&other, &evil)),
            Err(Reject::Malformed)
        );
        let rid = ResourceId::from_bytes([1; 32]);
        let bound = Frame::Bytes(seal_message(
            &k,
            FETCH_RESPONSE_AAD,
            Some(&rid),
            Some(&cid),
            &found,
        ));
        assert_eq!(
            verify_blob_response(&k, &cid, bound),
            Err(Reject::Malformed)
        );
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&cid, &[0, 1])),
            Err(Reject::Malformed)
        );
        assert_eq!(
            verify_blob_response(&[9; 32], &cid, answer(&cid, &found)),
            Err(Reject::Decrypt)
        );
    }

    #[test]
    fn advertised_addresses() {
        let any: IpAddr = "0.0.0.0"
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let lo: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let ma = |s: &str| {
            s.parse::<Multiaddr>()
                .unwrap_or_else(|_| Multiaddr::empty())
        };
        assert!(!advertisable(&ma("/ip4/127.0.0.1/tcp/1"), any));
        assert!(!advertisable(&ma("/ip4/172.17.0.1/tcp/1"), any));
        assert!(advertisable(&ma("/ip4/172.18.0.1/tcp/1"), any));
        assert!(advertisable(&ma("/ip4/10.1.2.3/tcp/1"), any));
        assert!(!advertisable(&ma("/ip6/::1/tcp/1"), any));
        assert!(advertisable(&ma("/ip4/127.0.0.1/tcp/1"), lo));
    }
}
