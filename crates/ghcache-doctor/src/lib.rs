//! The checks behind `ghcache doctor`: what is wrong on this host, and how
//! to fix it, over typed status (the binary only prints the findings).
//!
//! Reads the configuration, the state directory and the running daemon's
//! control endpoints; every finding names its fix. Exit 1 when anything
//! failed, so a workflow step can gate on it.

mod vault;

use std::path::Path;

use ghcache_config::{Config, Origin};
use ghcache_peer::{MeshStats, PeerStatus};
use ghcache_proxy::StatsReport;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    pub area: &'static str,
    pub message: String,
    /// What to do about it (empty when nothing is to be done).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

pub use vault::vault;

fn finding(level: Level, area: &'static str, message: String, fix: &str) -> Finding {
    Finding {
        level,
        area,
        message,
        fix: fix.to_owned(),
    }
}

/// Runs every check against the configuration, the state directory and
/// the running daemon's typed status.
pub async fn diagnose(config: &Config) -> Vec<Finding> {
    let mut findings = configuration(config);
    findings.push(state_dir(&config.state_dir.value));
    findings.extend(private_state(&config.state_dir.value));
    let addr = config.proxy_addr.value.0;
    match ghcache_proxy::control_get_as::<StatsReport>(addr, "/_ghcache/stats").await {
        Err(e) => findings.push(finding(
            Level::Fail,
            "daemon",
            format!("no daemon answers at {addr}: {e}"),
            "start it with `ghcache daemon`, or point --proxy-addr / GHCACHE_PROXY_ADDR at it",
        )),
        Ok(stats) => {
            findings.push(finding(
                Level::Ok,
                "daemon",
                format!("daemon answering at {addr}"),
                "",
            ));
            findings.extend(store(&stats));
            match ghcache_proxy::control_get_as::<PeerStatus>(addr, "/_ghcache/peers").await {
                Ok(peers) => {
                    let wanted = config.p2p_enabled.value && config.cluster_secret.value.is_some();
                    if wanted && !peers.enabled {
                        findings.push(finding(
                            Level::Warn,
                            "mesh",
                            "this environment configures a mesh, but the daemon runs without one".into(),
                            "restart the daemon with the same environment (CACHE_ENABLE_P2P, GHCACHE_CLUSTER_SECRET)",
                        ));
                    }
                    findings.extend(mesh(&peers, now_ms()));
                }
                Err(e) => findings.push(finding(
                    Level::Fail,
                    "mesh",
                    format!("cannot read the daemon's mesh state: {e}"),
                    "check the daemon's log; restart it if the problem persists",
                )),
            }
        }
    }
    findings
}

fn configuration(config: &Config) -> Vec<Finding> {
    let mut out = vec![finding(
        Level::Ok,
        "configuration",
        "configuration is valid".into(),
        "",
    )];
    if !config.p2p_enabled.value {
        out.push(finding(
            Level::Info,
            "mesh",
            "peer-to-peer sharing is off: this host pays for every answer itself".into(),
            "",
        ));
    } else if config.cluster_secret.value.is_none() {
        out.push(finding(
            Level::Warn,
            "mesh",
            "no cluster secret: the daemon runs as a standalone cache".into(),
            "give every daemon of the fleet the same GHCACHE_CLUSTER_SECRET (e.g. `openssl rand -hex 32`)",
        ));
    } else if config.cluster_secret.origin == Origin::Env("GITHUB_TOKEN") {
        out.push(finding(
            Level::Warn,
            "mesh",
            "the cluster secret comes from GITHUB_TOKEN: per-job tokens differ between jobs and rotate, so daemons will not agree on keys".into(),
            "set GHCACHE_CLUSTER_SECRET (or GHCACHE_CLUSTER_SECRET_FILE) to one value shared by the fleet",
        ));
    }
    out.extend(exposure(config));
    out
}

/// A proxy bound beyond loopback answers anyone who reaches the port.
fn exposure(config: &Config) -> Option<Finding> {
    let addr = config.proxy_addr.value.0;
    if addr.ip().is_loopback() {
        return None;
    }
    let (level, risk) = if config.fleet_trust.value {
        (
            Level::Fail,
            "with fleet trust on, anyone who reaches it can read private bodies cached for other tokens",
        )
    } else {
        (
            Level::Warn,
            "anyone who reaches it gets answers from this cache",
        )
    };
    Some(finding(
        level,
        "exposure",
        format!(
            "the proxy listens on {addr} ({}), reachable from other hosts: {risk}",
            config.proxy_addr.origin
        ),
        "bind it to 127.0.0.1 (GHCACHE_PROXY_ADDR=127.0.0.1:8787 or --proxy-addr) unless other hosts must use it; then firewall the port",
    ))
}

fn state_dir(dir: &Path) -> Finding {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let written = ghcache_core::private_file::create_private_dir(dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    match written {
        Ok(()) => finding(
            Level::Ok,
            "state",
            format!("state directory {} is writable", dir.display()),
            "",
        ),
        Err(e) => finding(
            Level::Fail,
            "state",
            format!("cannot write the state directory {}: {e}", dir.display()),
            "set GHCACHE_STATE_DIR or --state-dir to a writable directory (the store, keys and peer registry live there)",
        ),
    }
}

/// Whether other users of the host can get at the state directory or the
/// store file (cached private responses).
fn private_state(dir: &Path) -> Vec<Finding> {
    use ghcache_core::private_file::wider_than_private;
    let mut out = Vec::new();
    if let Ok(Some(mode)) = wider_than_private(dir) {
        out.push(finding(
            Level::Warn,
            "state",
            format!(
                "state directory {} is accessible by other users (mode {mode:o}); it holds cached private responses and keys",
                dir.display()
            ),
            &format!("run `chmod 700 {}`", dir.display()),
        ));
    }
    let file = dir.join("cache").join("store.redb");
    if let Ok(Some(mode)) = wider_than_private(&file) {
        out.push(finding(
            Level::Fail,
            "state",
            format!(
                "store file {} is readable by other users (mode {mode:o}): they can read cached private responses",
                file.display()
            ),
            &format!(
                "run `chmod 600 {}` (a daemon of this version narrows it at start)",
                file.display()
            ),
        ));
    }
    out
}

fn store(stats: &StatsReport) -> Vec<Finding> {
    let store = &stats.store;
    let mut out = Vec::new();
    if store.degraded {
        out.push(finding(
            Level::Fail,
            "store",
            "the store is degraded: entries are kept in memory only".into(),
            "check free space and permissions of the state directory, then restart the daemon (see its log)",
        ));
    } else {
        out.push(finding(
            Level::Ok,
            "store",
            format!(
                "{} entries, {} bytes",
                store.entries,
                store.bytes + store.meta_bytes
            ),
            "",
        ));
    }
    out
}

/// A rejection older than this no longer fails the check (a peer that was
/// fixed, or banned and gone).
const RECENT_MS: u64 = 10 * 60 * 1000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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
                "peer {} sent a {} we could not decrypt: {} (our key fingerprint is {ours})",
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

    fn config_with(env: &[(&str, &str)]) -> Config {
        let sources = ghcache_config::Sources {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cwd: std::env::temp_dir(),
        };
        ghcache_config::load(&ghcache_config::Overrides::default(), &sources).unwrap()
    }

    #[test]
    fn a_proxy_reachable_from_other_hosts_is_flagged() {
        assert!(exposure(&config_with(&[])).is_none());
        let open = config_with(&[("GHCACHE_PROXY_ADDR", "0.0.0.0:8787")]);
        let warn = exposure(&open).unwrap();
        assert_eq!(warn.level, Level::Warn);
        assert!(warn.message.contains("0.0.0.0:8787") && warn.fix.contains("127.0.0.1"));
        let trusted = config_with(&[
            ("GHCACHE_PROXY_ADDR", "0.0.0.0:8787"),
            ("GHCACHE_FLEET_TRUST", "true"),
            ("GHCACHE_FLEET_TRUST_NON_LOOPBACK", "true"),
        ]);
        assert_eq!(exposure(&trusted).unwrap().level, Level::Fail);
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
