//! What a [`crate::Mesh`] is started with, and the checks on it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;

use crate::error::MeshError;

/// Configuration of a [`crate::Mesh`]. [`MeshConfig::new`] gives the defaults.
#[derive(Clone)]
pub struct MeshConfig {
    /// `0.0.0.0` in production, `127.0.0.1` in tests.
    pub listen_ip: IpAddr,
    /// TCP and QUIC (UDP) port; 0 = ephemeral.
    pub listen_port: u16,
    /// QUIC besides TCP (ignored with `private_network`).
    pub quic: bool,
    /// TCP only, behind a libp2p pnet pre-shared key derived from the
    /// cluster secret: a non-member cannot complete even the transport
    /// handshake. QUIC cannot carry pnet, so it is off in this mode.
    pub private_network: bool,
    /// Operator-set addresses to advertise (GHCACHE_EXTERNAL_ADDR).
    pub external_addrs: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    /// Redial of bootstrap addresses that are not connected (with backoff).
    pub bootstrap_refresh: Duration,
    pub registry_dir: Option<PathBuf>,
    /// Records expire this long after their last heartbeat (every ttl/3).
    pub registry_ttl: Duration,
    pub mdns: bool,
    pub kademlia: bool,
    pub network_id: String,
    /// Never logged, never in stats.
    pub cluster_secret: secrecy::SecretSlice<u8>,
    /// ed25519 keypair persisted here (0600), reused across restarts.
    pub identity_path: PathBuf,
    /// Default deadline of [`ghcache_peer::PeerSource::lookup`] callers that pass none.
    pub fetch_deadline: Duration,
    /// How far lookups stretch `fetch_deadline` when members answer slower
    /// than it (measured round trips; see `rtt.rs`).
    pub fetch_deadline_max: Duration,
    /// Connected peers asked at once for a resource (besides the one that
    /// announced it); the rest are reached through provider records.
    pub fetch_fanout: usize,
    /// Largest fetch message accepted (request or response).
    pub max_message_bytes: usize,
    /// Rejected messages after which a peer is disconnected and banned.
    pub penalty_threshold: u32,
    /// How long a penalised peer is refused.
    pub ban_duration: Duration,
}

impl std::fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConfig")
            .field("listen_ip", &self.listen_ip)
            .field("listen_port", &self.listen_port)
            .field("quic", &self.quic)
            .field("private_network", &self.private_network)
            .field("external_addrs", &self.external_addrs)
            .field("bootstrap", &self.bootstrap)
            .field("bootstrap_refresh", &self.bootstrap_refresh)
            .field("registry_dir", &self.registry_dir)
            .field("registry_ttl", &self.registry_ttl)
            .field("mdns", &self.mdns)
            .field("kademlia", &self.kademlia)
            .field("network_id", &self.network_id)
            .field("cluster_secret", &"..redacted..")
            .field("identity_path", &self.identity_path)
            .field("fetch_deadline", &self.fetch_deadline)
            .field("fetch_deadline_max", &self.fetch_deadline_max)
            .field("fetch_fanout", &self.fetch_fanout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("penalty_threshold", &self.penalty_threshold)
            .field("ban_duration", &self.ban_duration)
            .finish()
    }
}

impl MeshConfig {
    /// Production defaults: all interfaces, port 9100, QUIC, mDNS and
    /// Kademlia on, no registry or bootstrap peers.
    pub fn new(
        network_id: impl Into<String>,
        cluster_secret: Vec<u8>,
        identity_path: PathBuf,
    ) -> Self {
        MeshConfig {
            listen_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_port: 9100,
            quic: true,
            private_network: false,
            external_addrs: Vec::new(),
            bootstrap: Vec::new(),
            bootstrap_refresh: Duration::from_secs(300),
            registry_dir: None,
            registry_ttl: Duration::from_secs(30),
            mdns: true,
            kademlia: true,
            network_id: network_id.into(),
            cluster_secret: cluster_secret.into(),
            identity_path,
            fetch_deadline: Duration::from_millis(50),
            fetch_deadline_max: Duration::from_secs(1),
            fetch_fanout: 8,
            max_message_bytes: 16 << 20,
            penalty_threshold: 3,
            ban_duration: Duration::from_secs(600),
        }
    }
}

impl MeshConfig {
    /// Refuses settings the mesh cannot run with (before any I/O).
    pub(crate) fn validate(&self) -> Result<(), MeshError> {
        let c = self;
        if secrecy::ExposeSecret::expose_secret(&c.cluster_secret).is_empty() {
            return Err(MeshError::Config(
                "GHCACHE_CLUSTER_SECRET is empty: every daemon of the cluster needs the same non-empty secret".into(),
            ));
        }
        ghcache_core::validate_network_id(&c.network_id).map_err(MeshError::Config)?;
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
}
