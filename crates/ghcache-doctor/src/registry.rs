//! The file peer registry the daemon announces itself in: readable and
//! writable, and who is live in it.

use std::path::Path;

use ghcache_config::Config;

use crate::{Finding, Level, finding};

const FIX: &str = "set GHCACHE_REGISTRY_DIR (p2p.registry_dir) to a directory every daemon of the host (or fleet, on a shared volume) can read and write";

/// Tries to create and remove a hidden file in `dir` (the registry skips
/// dot files, so a daemon scanning meanwhile ignores it).
fn probe_write(dir: &Path) -> std::io::Result<()> {
    tempfile::Builder::new()
        .prefix(".doctor-probe-")
        .tempfile_in(dir)
        .map(drop)
}

pub(crate) fn findings(config: &Config) -> Vec<Finding> {
    if !crate::mesh_wanted(config)
        || !config.peer_discovery.value
        || !config.registry_discovery.value
    {
        return Vec::new();
    }
    let dir = &config.registry_dir.value;
    let shown = dir.display();
    // Followed like the daemon follows it (a symlinked registry works).
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The daemon creates it: can it? Probe the nearest existing parent.
            let parent = dir.ancestors().skip(1).find(|a| a.is_dir());
            return vec![match parent.map(|p| (p, probe_write(p))) {
                Some((_, Ok(()))) => finding(
                    Level::Info,
                    "registry",
                    format!("peer registry {shown} does not exist yet: the daemon creates it"),
                    "",
                ),
                Some((p, Err(e))) => finding(
                    Level::Fail,
                    "registry",
                    format!(
                        "peer registry {shown} does not exist and cannot be created ({} is not writable: {e})",
                        p.display()
                    ),
                    FIX,
                ),
                None => finding(
                    Level::Fail,
                    "registry",
                    format!(
                        "peer registry {shown} does not exist and has no existing parent directory"
                    ),
                    FIX,
                ),
            }];
        }
        Err(e) => {
            return vec![finding(
                Level::Fail,
                "registry",
                format!("cannot inspect the peer registry {shown}: {e}"),
                FIX,
            )];
        }
        Ok(md) if !md.is_dir() => {
            return vec![finding(
                Level::Fail,
                "registry",
                format!("peer registry {shown} is not a directory"),
                FIX,
            )];
        }
        Ok(_) => {}
    }
    let live = match ghcache_mesh::read_registry(dir, &config.network_id.value, crate::now_ms()) {
        Ok(live) => live,
        Err(e) => {
            return vec![finding(
                Level::Fail,
                "registry",
                format!("cannot read the peer registry {shown}: {e}"),
                FIX,
            )];
        }
    };
    if let Err(e) = probe_write(dir) {
        return vec![finding(
            Level::Fail,
            "registry",
            format!(
                "cannot write the peer registry {shown}: {e}; the daemon cannot announce itself there"
            ),
            FIX,
        )];
    }
    let peers: Vec<String> = live
        .iter()
        .map(|r| format!("{} on {} ({})", r.peer_id, r.host, r.addrs.join(" ")))
        .collect();
    vec![finding(
        Level::Ok,
        "registry",
        format!(
            "peer registry {shown} is readable and writable; {} live record(s) of network {:?}{}{}",
            live.len(),
            config.network_id.value,
            if peers.is_empty() { "" } else { ": " },
            peers.join("; ")
        ),
        "",
    )]
}
