//! What the mesh reports about itself: the body of `/_ghcache/peers`, read
//! back by `ghcache peers` and `doctor`. Holds no secret.

use serde::{Deserialize, Serialize};

/// The answer of [`crate::PeerSource::describe`]: `{"enabled": false}`
/// without a mesh, else `enabled: true` beside the fields of [`MeshStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub enabled: bool,
    /// Present whenever the mesh is enabled (flattened beside `enabled`).
    #[serde(flatten)]
    pub mesh: Option<MeshStats>,
}

/// The JSON the proxy serves (so `describe().await.to_string()` is the body).
impl std::fmt::Display for PeerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

impl PeerStatus {
    /// No mesh on this daemon.
    pub fn disabled() -> Self {
        PeerStatus {
            enabled: false,
            mesh: None,
        }
    }

    /// A running (or stopped) mesh described by `stats`.
    pub fn mesh(stats: MeshStats) -> Self {
        PeerStatus {
            enabled: true,
            mesh: Some(stats),
        }
    }
}

/// Messages refused, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedCounts {
    pub decrypt: u64,
    pub cid_mismatch: u64,
    pub oversized: u64,
    pub malformed: u64,
    pub replayed: u64,
}

impl RejectedCounts {
    pub fn total(&self) -> u64 {
        self.decrypt + self.cid_mismatch + self.oversized + self.malformed + self.replayed
    }
}

/// The most recent refused message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRejection {
    pub peer_id: String,
    pub reason: String,
    /// Which kind of message: "fetch request", "fetch response", "announcement".
    pub message: String,
    /// Human explanation.
    pub hint: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedPeer {
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// Whether the peer answered our membership probe under the cluster key:
    /// `None` until it answered, `Some(false)` for a different secret.
    pub member: Option<bool>,
}

/// Peers found, by discovery source (a peer may appear under several).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredPeers {
    pub registry: Vec<String>,
    pub bootstrap: Vec<String>,
    pub mdns: Vec<String>,
    pub kademlia: Vec<String>,
    /// Dialled by hand (`Mesh::dial`).
    pub manual: Vec<String>,
}

/// A snapshot of the mesh for `stats`, `peers` and tests. Holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshStats {
    /// False when the event loop has stopped (crashed or shut down): the
    /// daemon then shares nothing.
    pub running: bool,
    pub peer_id: String,
    pub network_id: String,
    /// One-way fingerprint of the cluster key: equal on daemons that share
    /// GHCACHE_CLUSTER_SECRET and network id, different otherwise.
    pub key_fingerprint: String,
    pub listen_addrs: Vec<String>,
    /// What we advertise to peers.
    pub external_addrs: Vec<String>,
    pub connected_peers: Vec<ConnectedPeer>,
    /// Peers subscribed to our announcement topic.
    pub announce_peers: usize,
    pub discovered: DiscoveredPeers,
    /// Fetch requests we answered with an entry.
    pub fetches_served: u64,
    /// Fetch requests we answered "not found".
    pub fetches_not_found: u64,
    /// Our fetches that a peer answered with a valid entry.
    pub peer_hits: u64,
    /// Our fetches no peer could answer (before the caller's deadline or not).
    pub peer_misses: u64,
    /// Fetches that went on to ask Kademlia for providers.
    pub provider_lookups: u64,
    /// Peer hits answered by a peer found through a provider record.
    pub provider_hits: u64,
    /// Resources we publish provider records for.
    pub provided_keys: usize,
    /// Provider publications waiting or under way.
    pub provides_pending: usize,
    /// Provider publications dropped because the queue was full.
    pub provides_dropped: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub announcements_sent: u64,
    pub announcements_received: u64,
    pub rejected: RejectedCounts,
    pub last_rejection: Option<LastRejection>,
    pub banned_peers: Vec<String>,
    /// Milliseconds between the sender's clock and our receipt of the last
    /// valid announcement (negative if the sender's clock is ahead).
    pub last_announcement_lag_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_is_just_enabled_false() -> Result<(), serde_json::Error> {
        let json = serde_json::to_string(&PeerStatus::disabled())?;
        assert_eq!(json, r#"{"enabled":false}"#);
        assert_eq!(PeerStatus::disabled().to_string(), json);
        assert_eq!(
            serde_json::from_str::<PeerStatus>(&json)?,
            PeerStatus::disabled()
        );
        Ok(())
    }

    #[test]
    fn mesh_fields_sit_beside_enabled() -> Result<(), serde_json::Error> {
        let stats = MeshStats {
            running: true,
            key_fingerprint: "f".into(),
            connected_peers: vec![ConnectedPeer {
                peer_id: "P1".into(),
                addrs: vec!["/ip4/10.0.0.2/tcp/9100".into()],
                member: None,
            }],
            last_rejection: Some(LastRejection {
                peer_id: "P9".into(),
                reason: "decrypt".into(),
                message: "announcement".into(),
                hint: "h".into(),
                at_ms: 7,
            }),
            ..MeshStats::default()
        };
        let status = PeerStatus::mesh(stats);
        let value = serde_json::to_value(&status)?;
        assert_eq!(value["enabled"], true);
        assert_eq!(value["running"], true);
        assert_eq!(value["key_fingerprint"], "f");
        assert_eq!(
            value["connected_peers"][0]["member"],
            serde_json::Value::Null
        );
        assert_eq!(value["last_rejection"]["reason"], "decrypt");
        assert_eq!(value["last_rejection"]["at_ms"], 7);
        assert_eq!(serde_json::from_value::<PeerStatus>(value)?, status);
        Ok(())
    }
}
