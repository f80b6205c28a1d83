//! The file peer registry: a directory with one JSON record per daemon,
//! `<peer_id>.json`, written atomically and expired by TTL.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// One daemon's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub host: String,
    pub version: String,
    pub network_id: String,
    /// Unix ms.
    pub started_at: u64,
    /// Unix ms of the last refresh.
    pub heartbeat: u64,
    /// Milliseconds after `heartbeat` past which the record is expired.
    pub ttl: u64,
}

impl Record {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.heartbeat.saturating_add(self.ttl) < now_ms
    }
}

/// A live record of another daemon of our network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// The peer id named by a registry file name, if it is a valid one
/// (`<peer_id>.json`, nothing else: no dot files, no paths).
pub fn peer_of_file_name(name: &str) -> Option<PeerId> {
    let stem = name.strip_suffix(".json")?;
    if stem.is_empty() || !stem.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    PeerId::from_str(stem).ok()
}

/// Path of `peer`'s record in `dir`.
pub fn record_path(dir: &Path, peer: &PeerId) -> PathBuf {
    dir.join(format!("{peer}.json"))
}

/// Writes `record` atomically: temp file in the same directory, fsync,
/// rename, then fsync of the directory (best effort).
pub fn write_record(dir: &Path, peer: &PeerId, record: &Record) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = record_path(dir, peer);
    let tmp = dir.join(format!(".{peer}.json.tmp-{}", std::process::id()));
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Removes our own record (clean shutdown).
pub fn remove_record(dir: &Path, peer: &PeerId) {
    let _ = std::fs::remove_file(record_path(dir, peer));
}

/// Reads the registry: live records of `network_id` other than `own`.
/// Expired records are deleted (only expired ones); malformed or foreign
/// files are skipped with one warning per file name (`warned` remembers).
pub fn scan(
    dir: &Path,
    own: &PeerId,
    network_id: &str,
    now_ms: u64,
    warned: &mut HashSet<String>,
) -> Vec<Found> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            if warned.insert(String::new()) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the peer registry directory");
            }
            return out;
        }
    };
    let mut warn = |name: &str, why: &str| {
        if warned.insert(name.to_owned()) {
            tracing::warn!(dir = %dir.display(), file = name, "skipping peer registry file: {why}");
        }
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue; // temp files of writers in progress
        }
        let Some(peer) = peer_of_file_name(&name) else {
            warn(&name, "not named <peer_id>.json");
            continue;
        };
        if peer == *own {
            continue;
        }
        let path = dir.join(&name);
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !md.is_file() || md.len() > 64 * 1024 {
            warn(&name, "not a regular file of at most 64 KiB");
            continue;
        }
        let rec: Record = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                warn(&name, &format!("malformed record ({e})"));
                continue;
            }
        };
        if rec.peer_id != peer.to_string() {
            warn(&name, "peer_id inside does not match the file name");
            continue;
        }
        if rec.network_id != network_id {
            continue;
        }
        if rec.expired(now_ms) {
            tracing::debug!(file = name, "removing expired peer registry record");
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let addrs = rec
            .addrs
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .collect::<Vec<_>>();
        if !addrs.is_empty() {
            out.push(Found { peer, addrs });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(peer: &PeerId, net: &str, heartbeat: u64) -> Record {
        Record {
            peer_id: peer.to_string(),
            addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            host: "h".into(),
            version: "0".into(),
            network_id: net.into(),
            started_at: 0,
            heartbeat,
            ttl: 1000,
        }
    }

    #[test]
    fn write_scan_expire() {
        let dir = tempfile::tempdir().expect("dir");
        let me = PeerId::random();
        let a = PeerId::random();
        let b = PeerId::random();
        let c = PeerId::random();
        write_record(dir.path(), &me, &rec(&me, "n", 10_000)).expect("w");
        write_record(dir.path(), &a, &rec(&a, "n", 10_000)).expect("w");
        write_record(dir.path(), &b, &rec(&b, "n", 1_000)).expect("w"); // expired
        write_record(dir.path(), &c, &rec(&c, "other", 10_000)).expect("w");
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("rd")
            .flatten()
            .map(|e| e.file_name().into_string().unwrap_or_default())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
        let mut warned = HashSet::new();
        let found = scan(dir.path(), &me, "n", 10_500, &mut warned);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].peer, a);
        // Expired removed, others (own, foreign network) kept.
        assert!(!record_path(dir.path(), &b).exists());
        assert!(record_path(dir.path(), &me).exists());
        assert!(record_path(dir.path(), &c).exists());
        assert!(warned.is_empty());
        // Rewrite replaces atomically.
        write_record(dir.path(), &a, &rec(&a, "n", 20_000)).expect("w");
        let found = scan(dir.path(), &me, "n", 20_500, &mut warned);
        assert_eq!(found.len(), 1);
        remove_record(dir.path(), &me);
        assert!(!record_path(dir.path(), &me).exists());
    }

    #[test]
    fn bad_names_and_malformed_files() {
        let dir = tempfile::tempdir().expect("dir");
        let me = PeerId::random();
        let other = PeerId::random();
        std::fs::write(dir.path().join("notes.txt"), "x").expect("w");
        std::fs::write(dir.path().join("garbage.json"), "x").expect("w");
        std::fs::write(record_path(dir.path(), &other), "{not json").expect("w");
        let mismatched = PeerId::random();
        std::fs::write(
            record_path(dir.path(), &mismatched),
            serde_json::to_vec(&rec(&other, "n", 10_000)).expect("json"),
        )
        .expect("w");
        let mut warned = HashSet::new();
        assert!(scan(dir.path(), &me, "n", 10_000, &mut warned).is_empty());
        assert_eq!(warned.len(), 4, "{warned:?}");
        // Warned once: a second scan adds nothing and still finds nothing.
        assert!(scan(dir.path(), &me, "n", 10_000, &mut warned).is_empty());
        assert_eq!(warned.len(), 4);
        // Malformed files are never deleted.
        assert!(record_path(dir.path(), &other).exists());
        assert!(peer_of_file_name("../x.json").is_none());
        assert!(peer_of_file_name(&format!("../{me}.json")).is_none());
        assert!(peer_of_file_name(&format!("{me}.json")).is_some());
        assert!(peer_of_file_name(&format!("{me}.json.tmp")).is_none());
        assert!(peer_of_file_name(".json").is_none());
    }
}
