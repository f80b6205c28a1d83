//! The event loop: the one task that owns the Swarm. It takes commands from
//! the handle, events from the swarm and messages from the tasks it spawned,
//! hands each to the concern that owns the state (fetch, provide, serve,
//! announce, membership, discovery), and carries out what they decide. Only
//! the loop applies penalties to the swarm.
//!
//! Split by what it reacts to: `requests` (fetches, probes, serving,
//! announcements, penalties), `events` (swarm and behaviour events, dials).

mod events;
mod requests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ghcache_core::ResourceId;
use ghcache_peer::{ConnectedPeer, MeshStats};
use ghcache_store::Store;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, kad};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::announce::Announcements;
use crate::command::{Command, Internal, Source};
use crate::config::MeshConfig;
use crate::discovery::{Bootstrap, Discovery, RegistryContext};
use crate::error::MeshError;
use crate::fetch::{FetchId, Fetcher};
use crate::keys::ClusterKeys;
use crate::membership::Members;
use crate::penalty::Penalties;
use crate::provide::Provides;
use crate::serve::Server;
use crate::stats::Traffic;
use crate::swarm::Behaviour;

const HOUSEKEEPING: Duration = Duration::from_millis(250);
const KAD_BOOTSTRAP_EVERY: Duration = Duration::from_secs(60);

/// What the handle built for the loop.
pub(crate) struct Parts {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) store: Arc<Store>,
    pub(crate) keys: ClusterKeys,
    pub(crate) peer_id: PeerId,
    pub(crate) topic: String,
    pub(crate) invalidations: broadcast::Sender<Vec<String>>,
    pub(crate) serve_delay_ms: Arc<AtomicU64>,
    pub(crate) flights: Arc<std::sync::OnceLock<Arc<ghcache_peer::Flights>>>,
    pub(crate) rtt: Arc<crate::rtt::Rtt>,
    pub(crate) config: MeshConfig,
    /// The swarm's libp2p-metrics, registered in the mesh's registry.
    pub(crate) metrics: libp2p::metrics::Metrics,
}

/// A request we sent and await the answer of.
enum Pending {
    Fetch {
        fetch: FetchId,
        via_provider: bool,
        /// When it was sent, for requests answered at once (not those
        /// held for a fetch under way).
        sent_at: Option<Instant>,
    },
    /// A request for a random resource, sent until a peer has a verdict:
    /// the answer (or a decryption failure) tells whether it shares our
    /// cluster key.
    Probe {
        resource: ResourceId,
        /// Its round trip is a fetch's: it seeds the lookup deadline.
        sent_at: Instant,
    },
    #[cfg(feature = "test-util")]
    Raw(oneshot::Sender<Option<Vec<u8>>>),
}

/// A `Connect` command waiting for its connection's outcome.
struct ConnectWaiter {
    addr: Multiaddr,
    reply: oneshot::Sender<Result<PeerId, MeshError>>,
}

/// One open connection of a peer: its id and the remote address.
struct Conn {
    id: ConnectionId,
    remote: Multiaddr,
}

/// A test-hook provider query: providers so far, and who wants them all.
#[cfg(feature = "test-util")]
struct ProviderProbe {
    found: Vec<PeerId>,
    reply: oneshot::Sender<Vec<PeerId>>,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    keys: ClusterKeys,
    peer_id: PeerId,
    config: MeshConfig,
    internal_tx: mpsc::Sender<Internal>,
    server: Server,
    rtt: Arc<crate::rtt::Rtt>,
    fetches: Fetcher<kad::QueryId>,
    provides: Provides<kad::QueryId>,
    announcements: Announcements,
    members: Members<OutboundRequestId>,
    penalties: Penalties,
    discovery: Discovery,
    traffic: Traffic,
    pending: HashMap<OutboundRequestId, Pending>,
    conns: HashMap<PeerId, Vec<Conn>>,
    connect_waiters: HashMap<ConnectionId, ConnectWaiter>,
    /// Test hook queries: providers found so far, and where they go.
    #[cfg(feature = "test-util")]
    provider_probes: HashMap<kad::QueryId, ProviderProbe>,
    kad_next: Instant,
    kad_last: Instant,
    pub(super) metrics: libp2p::metrics::Metrics,
}

impl EventLoop {
    /// Builds the loop, waits for a listen address and runs it in a new task.
    pub(crate) async fn start(
        parts: Parts,
        cmd_rx: mpsc::Receiver<Command>,
        holds_rx: mpsc::Receiver<ResourceId>,
    ) -> Result<tokio::task::JoinHandle<()>, MeshError> {
        let Parts {
            swarm,
            store,
            keys,
            peer_id,
            topic,
            invalidations,
            serve_delay_ms,
            flights,
            rtt,
            config,
            metrics,
        } = parts;
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let now = Instant::now();
        let key = *keys.envelope_key();
        let mut this = EventLoop {
            rtt,
            server: Server::new(
                store.clone(),
                key,
                config.max_message_bytes,
                serve_delay_ms,
                flights,
            ),
            fetches: Fetcher::new(config.fetch_fanout, config.kademlia),
            provides: Provides::new(now),
            announcements: Announcements::new(key, topic, store.clone(), invalidations),
            members: Members::new(),
            penalties: Penalties::new(
                config.penalty_threshold,
                config.ban_duration,
                keys.fingerprint(),
                config.network_id.clone(),
            ),
            discovery: Discovery::new(
                Bootstrap::new(&config.bootstrap, config.bootstrap_refresh, now),
                now,
            ),
            traffic: Traffic::default(),
            pending: HashMap::new(),
            conns: HashMap::new(),
            connect_waiters: HashMap::new(),
            #[cfg(feature = "test-util")]
            provider_probes: HashMap::new(),
            kad_next: now + Duration::from_secs(1),
            kad_last: now.checked_sub(Duration::from_secs(60)).unwrap_or(now),
            swarm,
            store,
            keys,
            peer_id,
            config,
            internal_tx,
            metrics,
        };
        this.wait_listening().await?;
        // Entries kept from before a restart: published again once the
        // routing table has peers (the queue waits for them).
        this.refresh_held();
        Ok(tokio::spawn(this.run(cmd_rx, internal_rx, holds_rx)))
    }

    async fn wait_listening(&mut self) -> Result<(), MeshError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.swarm.listeners().next().is_none() {
            let ev = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| MeshError::ListenTimeout {
                    addr: format!("{}:{}", self.config.listen_ip, self.config.listen_port),
                })?;
            match ev {
                SwarmEvent::ListenerClosed { reason: Err(e), .. }
                | SwarmEvent::ListenerError { error: e, .. } => {
                    return Err(MeshError::Listen {
                        addr: format!("{}:{}", self.config.listen_ip, self.config.listen_port),
                        source: Box::new(e),
                    });
                }
                ev => self.on_swarm_event(ev),
            }
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
            crate::discovery::registry::remove_record(dir, &self.peer_id);
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
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                let res = self.swarm.dial(opts).map_err(|e| MeshError::Dial {
                    addr: addr.clone(),
                    source: Box::new(e),
                });
                if res.is_ok() {
                    self.discovery.dialing(id, Source::Manual, None);
                }
                let _ = reply.send(res);
            }
            Command::Connect { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.discovery.dialing(id, Source::Manual, None);
                        self.connect_waiters
                            .insert(id, ConnectWaiter { addr, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(MeshError::Dial {
                            addr,
                            source: Box::new(e),
                        }));
                    }
                }
            }
            Command::Fetch {
                wanted,
                request,
                reply,
                only,
            } => self.start_fetch(wanted, request, reply, only),
            Command::Publish(bytes) => {
                let len = bytes.len() as u64;
                let topic = self.announcements.topic().clone();
                match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    Ok(_) => {
                        self.announcements.sent += 1;
                        self.traffic.bytes_out += len;
                    }
                    Err(e) => tracing::debug!(error = %e, "announcement not published"),
                }
            }
            Command::Stats(tx) => {
                let _ = tx.send(self.snapshot());
            }
            Command::Shutdown(_) => {}
            #[cfg(feature = "test-util")]
            Command::Raw { peer, bytes, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_request(&peer, crate::wire::Frame::Bytes(bytes));
                self.pending.insert(id, Pending::Raw(reply));
            }
            #[cfg(feature = "test-util")]
            Command::Providers { resource, reply } => {
                let key = kad::RecordKey::new(&self.keys.provider_key(&resource));
                match self.swarm.behaviour_mut().kad.as_mut() {
                    Some(k) => {
                        let qid = k.get_providers(key);
                        self.provider_probes.insert(
                            qid,
                            ProviderProbe {
                                found: Vec::new(),
                                reply,
                            },
                        );
                    }
                    None => {
                        let _ = reply.send(Vec::new());
                    }
                }
            }
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Respond {
                channel,
                frame,
                found,
            } => self.respond(channel, frame, found),
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

    fn housekeeping(&mut self) {
        let now = Instant::now();
        for p in self.penalties.expire(now) {
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
            tracing::info!(peer = %p, "ban lifted");
        }
        // Forget fetches whose caller is gone (deadline passed).
        let actions = self.fetches.drop_abandoned();
        self.apply_fetch(actions);
        self.drain_provides();
        if self.provides.republish_due(now) {
            self.refresh_held();
        }
        if self.provides.retry_due(now) {
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
        if !self.discovery.registry_due(now) {
            return;
        }
        let context = RegistryContext {
            dir,
            me: self.peer_id,
            network_id: self.config.network_id.clone(),
            addrs: self
                .swarm
                .external_addresses()
                .map(|a| a.to_string())
                .collect(),
            ttl: self.config.registry_ttl,
        };
        self.discovery
            .registry_tick(now, context, self.internal_tx.clone());
    }

    fn snapshot(&mut self) -> MeshStats {
        let topic_hash = self.announcements.topic().hash();
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
                member: self.members.verdict(p),
                peer_id: p.to_string(),
                addrs: self
                    .conns
                    .get(p)
                    .map(|v| v.iter().map(|c| c.remote.to_string()).collect())
                    .unwrap_or_default(),
            })
            .collect();
        connected.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        let fetch = self.fetches.counters();
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
            discovered: self.discovery.snapshot(),
            fetches_served: self.traffic.fetches_served,
            fetches_not_found: self.traffic.fetches_not_found,
            peer_hits: fetch.peer_hits,
            peer_misses: fetch.peer_misses,
            provider_lookups: fetch.provider_lookups,
            provider_hits: fetch.provider_hits,
            provided_keys: self.provides.provided(),
            provides_pending: self.provides.pending(),
            provides_dropped: self.provides.dropped(),
            bytes_in: self.traffic.bytes_in,
            bytes_out: self.traffic.bytes_out,
            announcements_sent: self.announcements.sent,
            announcements_received: self.announcements.received,
            rejected: self.penalties.rejected().clone(),
            last_rejection: self.penalties.last_rejection().cloned(),
            banned_peers: self.penalties.banned().map(|p| p.to_string()).collect(),
            last_announcement_lag_ms: self.announcements.last_lag_ms,
        }
    }
}
