//! The checks behind `ghcache doctor`: what is wrong on this host, and how
//! to fix it, over typed status (the binary only prints the [`Report`]).
//!
//! Reads the configuration, the host (container, network mode, ports), the
//! state directory and peer registry, the running daemon's control
//! endpoints, the bootstrap peers and the upstream; every finding names its
//! fix. A report with a failure exits 1, so a workflow step can gate on it.

mod bootstrap;
mod host;
mod mesh;
mod ports;
mod registry;
mod report;
mod upstream;
mod vault;

use std::path::Path;
use std::time::Duration;

use ghcache_config::{Config, Origin};
use ghcache_peer::PeerStatus;
use ghcache_proxy::StatsReport;
pub use secrecy::SecretString;
use serde::Serialize;

pub use host::{Container, NetworkMode, detect_container, network_mode};
pub use mesh::mesh;
pub use report::Report;
pub use vault::vault;

/// How bad a finding is; the text output shows ✔, ℹ, ⚠ and ✘.
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
    /// Which check: `configuration`, `host`, `state`, `daemon`, `ports`,
    /// `store`, `mesh`, `registry`, `bootstrap`, `upstream`, `clock`, `vault`…
    pub area: &'static str,
    pub message: String,
    /// What to do about it (empty when nothing is to be done).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn finding(level: Level, area: &'static str, message: String, fix: &str) -> Finding {
    Finding {
        level,
        area,
        message,
        fix: fix.to_owned(),
    }
}

/// Bound of each network probe (bootstrap dial, upstream request).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether this environment asks for a mesh (sharing on, a secret given).
fn mesh_wanted(config: &Config) -> bool {
    config.p2p_enabled.value && config.cluster_secret.value.is_some()
}

/// What the running daemon says about itself, when one answers.
#[derive(Debug, Default)]
pub(crate) struct DaemonView {
    /// The upstream it forwards to (`/_ghcache/health`).
    pub upstream: Option<String>,
    pub peers: Option<PeerStatus>,
}

impl DaemonView {
    /// Whether the daemon's mesh listens on `port` (TCP or UDP); `None`
    /// without a running mesh.
    pub(crate) fn mesh_listens_on(&self, port: u16) -> Option<bool> {
        let m = self.peers.as_ref()?.mesh.as_ref().filter(|m| m.running)?;
        let port = port.to_string();
        Some(m.listen_addrs.iter().any(|a| {
            let parts: Vec<&str> = a.split('/').collect();
            parts
                .windows(2)
                .any(|w| matches!(w[0], "tcp" | "udp") && w[1] == port)
        }))
    }
}

/// Runs every check against the configuration, the host, the state
/// directory, the running daemon, the bootstrap peers and the upstream
/// (asked with `token`, never shown).
pub async fn diagnose(config: &Config, token: Option<&SecretString>) -> Vec<Finding> {
    let mut findings = configuration(config);
    findings.extend(host::findings(Path::new("/"), config));
    findings.push(state_dir(&config.state_dir.value));
    findings.extend(private_state(&config.state_dir.value));
    let addr = config.proxy_addr.value.0;
    let mut view = DaemonView::default();
    // The health endpoint first: it tells our daemon from a stranger on the port.
    match ghcache_proxy::control_get_as::<ghcache_proxy::HealthReport>(addr, "/_ghcache/health")
        .await
    {
        Err(e) => findings.push(ports::no_daemon(addr, &e.to_string())),
        // JSON, but not our daemon's answer.
        Ok(health) if health.status != "ok" => findings.push(ports::no_daemon(
            addr,
            "it answers /_ghcache/health without `\"status\": \"ok\"`",
        )),
        Ok(health) => {
            findings.push(finding(
                Level::Ok,
                "daemon",
                format!("daemon answering at {addr} (the proxy port is held by our daemon)"),
                "",
            ));
            view.upstream = Some(health.upstream).filter(|u| !u.is_empty());
            findings.extend(daemon_status(config, addr, &mut view).await);
        }
    }
    findings.extend(ports::p2p(config, &view));
    findings.extend(registry::findings(config));
    findings.extend(bootstrap::findings(config, &view, PROBE_TIMEOUT).await);
    let upstream = view
        .upstream
        .clone()
        .unwrap_or_else(|| config.upstream.value.as_str().to_owned());
    findings.extend(upstream::findings(&upstream, token, PROBE_TIMEOUT).await);
    findings
}

/// The store and the mesh, from the daemon's typed status.
async fn daemon_status(
    config: &Config,
    addr: std::net::SocketAddr,
    view: &mut DaemonView,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    match ghcache_proxy::control_get_as::<StatsReport>(addr, "/_ghcache/stats").await {
        Ok(stats) => findings.extend(store(&stats)),
        Err(e) => findings.push(finding(
            Level::Fail,
            "daemon",
            format!("cannot read the daemon's statistics: {e}"),
            "check the daemon's log; restart it if the problem persists",
        )),
    }
    match ghcache_proxy::control_get_as::<PeerStatus>(addr, "/_ghcache/peers").await {
        Ok(peers) => {
            if mesh_wanted(config) && !peers.enabled {
                findings.push(finding(
                    Level::Warn,
                    "mesh",
                    "this environment configures a mesh, but the daemon runs without one".into(),
                    "restart the daemon with the same environment (CACHE_ENABLE_P2P, GHCACHE_CLUSTER_SECRET)",
                ));
            }
            findings.extend(mesh(&peers, now_ms()));
            view.peers = Some(peers);
        }
        Err(e) => findings.push(finding(
            Level::Fail,
            "mesh",
            format!("cannot read the daemon's mesh state: {e}"),
            "check the daemon's log; restart it if the problem persists",
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config_with(env: &[(&str, &str)]) -> Config {
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
}
