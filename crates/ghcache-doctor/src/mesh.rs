//! Mesh membership from the daemon's `/_ghcache/peers`: strangers (another
//! cluster secret or network id), recent rejections, a lonely daemon.

use ghcache_peer::{MeshStats, PeerStatus};

use crate::{Finding, Level, finding};

/// A rejection older than this no longer fails the check (a peer that was
/// fixed, or banned and gone).
const RECENT_MS: u64 = 10 * 60 * 1000;

/// Findings about the mesh from `/_ghcache/peers`, at time `now_ms`.
pub fn mesh(peers: &PeerStatus, now_ms: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(m) = peers.mesh.as_ref().filter(|_| peers.enabled) else {
        return out;
    };
    if !m.running {
        out.push(finding(
            Level::Fail,
            "mesh",
            "the mesh has stopped: this daemon shares nothing".into(),
            "restart the daemon and look at its log for the cause",
        ));
        return out;
    }
    let MeshStats {
        key_fingerprint: ours,
        network_id: network,
        connected_peers: connected,
        ..
    } = m;
    let members = connected.iter().filter(|p| p.member == Some(true)).count();
    let strangers: Vec<_> = connected
        .iter()
        .filter(|p| p.member == Some(false))
        .collect();
    let same_secret_fix = "give every daemon the same GHCACHE_CLUSTER_SECRET and GHCACHE_NETWORK_ID; compare the key fingerprints shown by `ghcache peers` on both hosts";
    for p in &strangers {
        out.push(finding(
            Level::Fail,
            "mesh",
            format!(
                "peer {} ({}) holds a different cluster secret or network id (our key fingerprint is {ours}, network {network:?})",
                p.peer_id,
                p.addrs.first().map_or("?", String::as_str),
            ),
            same_secret_fix,
        ));
    }
    let recent = m
        .last_rejection
        .as_ref()
        .filter(|last| now_ms.saturating_sub(last.at_ms) < RECENT_MS);
    match recent {
        Some(last) if last.reason == "decrypt" && strangers.is_empty() => out.push(finding(
            Level::Fail,
            "mesh",
            format!(
                // Worded as for a connected stranger: the peer may have
                // been disconnected for it already.
                "peer {} holds a different cluster secret or network id: its {} could not be decrypted ({}; our key fingerprint is {ours})",
                last.peer_id, last.message, last.hint,
            ),
            same_secret_fix,
        )),
        Some(last) if last.reason != "decrypt" => out.push(finding(
            Level::Warn,
            "mesh",
            format!(
                "peer {} sent a rejected {} ({}: {})",
                last.peer_id, last.message, last.reason, last.hint,
            ),
            "usually a bug or a version mismatch; the peer is disconnected after repeated rejections",
        )),
        _ => {}
    }
    if connected.is_empty() {
        out.push(finding(
            Level::Warn,
            "mesh",
            "no peer connected: every answer costs this host its own requests".into(),
            "share GHCACHE_REGISTRY_DIR between runners, or list the other hosts in CACHE_BOOTSTRAP_PEERS (e.g. /dns4/cache-a/tcp/9100)",
        ));
    } else if strangers.is_empty() && members == 0 {
        out.push(finding(
            Level::Warn,
            "mesh",
            format!(
                "{} peer(s) connected, none confirmed as a member yet",
                connected.len()
            ),
            "run doctor again in a few seconds; if it persists, the peers may run an older ghcache",
        ));
    } else if strangers.is_empty() {
        out.push(finding(
            Level::Ok,
            "mesh",
            format!(
                "{} peer(s) connected, {members} confirmed members (key fingerprint {ours}, network {network:?})",
                connected.len()
            ),
            "",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed status from the fields a test cares about (the rest default).
    fn status(partial: serde_json::Value) -> PeerStatus {
        if partial["enabled"] == false {
            return PeerStatus::disabled();
        }
        let mut full = serde_json::to_value(PeerStatus::mesh(MeshStats::default())).unwrap();
        for (k, v) in partial.as_object().unwrap() {
            full[k] = v.clone();
        }
        serde_json::from_value(full).unwrap()
    }

    #[test]
    fn a_stranger_is_a_failure_with_a_fix() {
        let peers = serde_json::json!({
            "enabled": true,
            "running": true,
            "key_fingerprint": "abc123",
            "network_id": "ghcache",
            "connected_peers": [
                {"peer_id": "P1", "addrs": ["/ip4/10.0.0.2/tcp/9100"], "member": true},
                {"peer_id": "P2", "addrs": ["/ip4/10.0.0.3/tcp/9100"], "member": false}
            ],
        });
        let f = mesh(&status(peers), 0);
        let fail = f.iter().find(|f| f.level == Level::Fail).unwrap();
        assert!(fail.message.contains("P2") && fail.message.contains("abc123"));
        assert!(fail.fix.contains("GHCACHE_CLUSTER_SECRET"));
        assert!(f.iter().all(|f| !f.message.contains("P1 ")));
    }

    #[test]
    fn healthy_and_lonely_meshes() {
        let healthy = serde_json::json!({
            "enabled": true, "running": true, "key_fingerprint": "f", "network_id": "n",
            "connected_peers": [{"peer_id": "P1", "addrs": [], "member": true}],
        });
        assert!(
            mesh(&status(healthy), 0)
                .iter()
                .all(|f| f.level == Level::Ok)
        );
        let lonely = serde_json::json!({"enabled": true, "running": true, "connected_peers": []});
        assert!(
            mesh(&status(lonely), 0)
                .iter()
                .any(|f| f.level == Level::Warn && f.fix.contains("CACHE_BOOTSTRAP_PEERS"))
        );
        // A banned stranger is gone from the connected list but not forgotten.
        let banned = serde_json::json!({
            "enabled": true, "running": true, "connected_peers": [],
            "last_rejection": {"reason": "decrypt", "peer_id": "P9", "message": "announcement",
                               "hint": "cannot decrypt", "at_ms": 1_000_000},
        });
        assert!(
            mesh(&status(banned.clone()), 1_000_000 + 60_000)
                .iter()
                .any(|f| f.level == Level::Fail && f.message.contains("P9"))
        );
        // Long ago: no longer a failure.
        assert!(
            mesh(&status(banned.clone()), 1_000_000 + RECENT_MS + 1)
                .iter()
                .all(|f| f.level != Level::Fail)
        );
        assert!(mesh(&status(serde_json::json!({"enabled": false})), 0).is_empty());
        // A stopped mesh, or peers not confirmed yet, are not healthy.
        let stopped = serde_json::json!({"enabled": true, "running": false});
        assert!(
            mesh(&status(stopped), 0)
                .iter()
                .any(|f| f.level == Level::Fail)
        );
        let unconfirmed = serde_json::json!({
            "enabled": true, "running": true,
            "connected_peers": [{"peer_id": "P1", "addrs": [], "member": null}],
        });
        assert!(
            mesh(&status(unconfirmed), 0)
                .iter()
                .any(|f| f.level == Level::Warn)
        );
    }
}
