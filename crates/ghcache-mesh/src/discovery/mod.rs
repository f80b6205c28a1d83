//! Finding the other daemons: the file registry, bootstrap addresses, mDNS
//! and Kademlia. Keeps who was found by which source and which dial came
//! from where; the event loop dials.

pub(crate) mod bootstrap;
pub(crate) mod registry;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghcache_peer::DiscoveredPeers;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::command::{Internal, Source};
use crate::wire::now_ms;

pub(crate) use bootstrap::{Attempt, Bootstrap};

/// A dial under way: who asked for it, and the bootstrap address it is for.
#[derive(Debug, Clone, Copy)]
struct Dial {
    source: Source,
    index: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Discovery {
    found: BTreeMap<Source, BTreeSet<PeerId>>,
    /// Dials under way: their source, and the bootstrap address they came
    /// from.
    dials: HashMap<ConnectionId, Dial>,
    pub(crate) bootstrap: Bootstrap,
    registry: Heartbeat,
}

impl Discovery {
    pub(crate) fn new(bootstrap: Bootstrap, now: Instant) -> Self {
        Discovery {
            found: BTreeMap::new(),
            dials: HashMap::new(),
            bootstrap,
            registry: Heartbeat {
                next: now,
                warned: Arc::new(parking_lot::Mutex::new(HashSet::new())),
                started_ms: now_ms(),
            },
        }
    }

    pub(crate) fn found(&mut self, source: Source, peer: PeerId) {
        self.found.entry(source).or_default().insert(peer);
    }

    /// A dial for `source` (bootstrap address `index`) is under way.
    pub(crate) fn dialing(&mut self, conn: ConnectionId, source: Source, index: Option<usize>) {
        self.dials.insert(conn, Dial { source, index });
    }

    /// Connection `conn` to `peer` is up.
    pub(crate) fn connected(&mut self, conn: ConnectionId, peer: PeerId, now: Instant) {
        if let Some(Dial { source, index }) = self.dials.remove(&conn) {
            self.found(source, peer);
            if let Some(i) = index {
                self.bootstrap.connected(i, peer, now);
            }
        }
    }

    /// Dial `conn` failed; `wrong_peer` when another identity answered.
    pub(crate) fn dial_failed(&mut self, conn: ConnectionId, wrong_peer: bool) {
        if let (
            Some(Dial {
                source: Source::Bootstrap,
                index: Some(i),
            }),
            true,
        ) = (self.dials.remove(&conn), wrong_peer)
        {
            self.bootstrap.wrong_peer(i);
        }
    }

    pub(crate) fn snapshot(&self) -> DiscoveredPeers {
        let list = |s: Source| -> Vec<String> {
            self.found
                .get(&s)
                .map(|set| set.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default()
        };
        DiscoveredPeers {
            registry: list(Source::Registry),
            bootstrap: list(Source::Bootstrap),
            mdns: list(Source::Mdns),
            kademlia: list(Source::Kademlia),
            manual: list(Source::Manual),
        }
    }

    /// Write our record soon (a new listen address).
    pub(crate) fn registry_now(&mut self, now: Instant) {
        self.registry.next = now;
    }

    /// Whether our registry record is due (every ttl/3).
    pub(crate) fn registry_due(&self, now: Instant) -> bool {
        now >= self.registry.next
    }

    /// Writes our registry record and scans the others', every ttl/3, off
    /// the loop; peers found come back as [`Internal::Discovered`].
    pub(crate) fn registry_tick(
        &mut self,
        now: Instant,
        record: RegistryContext,
        tx: mpsc::Sender<Internal>,
    ) {
        if now < self.registry.next || record.addrs.is_empty() {
            return;
        }
        self.registry.next = now + record.ttl / 3;
        let RegistryContext {
            dir,
            me,
            network_id,
            addrs,
            ttl,
        } = record;
        let record = registry::Record {
            peer_id: me.to_string(),
            addrs,
            host: hostname(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            network_id: network_id.clone(),
            started_at: self.registry.started_ms,
            heartbeat: now_ms(),
            ttl: ttl.as_millis() as u64,
        };
        let warned = self.registry.warned.clone();
        tokio::spawn(async move {
            let found = tokio::task::spawn_blocking(move || {
                if let Err(e) = registry::write_record(&dir, &me, &record) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot write our peer registry record");
                }
                let mut warned = warned.lock();
                registry::scan(&dir, &me, &network_id, now_ms(), &mut warned)
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
}

/// What our registry record says.
#[derive(Debug)]
pub(crate) struct RegistryContext {
    pub(crate) dir: PathBuf,
    pub(crate) me: PeerId,
    pub(crate) network_id: String,
    /// Our external addresses (no record without one).
    pub(crate) addrs: Vec<String>,
    pub(crate) ttl: Duration,
}

#[derive(Debug)]
struct Heartbeat {
    next: Instant,
    /// Registry files already warned about (once each).
    warned: Arc<parking_lot::Mutex<HashSet<String>>>,
    started_ms: u64,
}

/// Addresses found by mDNS, grouped by peer.
pub(crate) fn by_peer(list: Vec<(PeerId, Multiaddr)>) -> HashMap<PeerId, Vec<Multiaddr>> {
    let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
    for (p, a) in list {
        by_peer.entry(p).or_default().push(a);
    }
    by_peer
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
