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
///
/// The directory may be shared with other users, so the temp file gets an
/// unpredictable name and is created with O_EXCL (never through a planted
/// file or symlink), and the rename replaces a symlink at the record path
/// rather than writing through it.
pub fn write_record(dir: &Path, peer: &PeerId, record: &Record) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = record_path(dir, peer);
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{peer}.json.tmp-"))
        .tempfile_in(dir)?;
    tmp.write_all(&json)?;
    // Readable by the other daemons sharing the directory (they may run as
    // other users); a record holds only addresses and a peer id.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    // On error the temp file is removed when `tmp` drops.
    tmp.persist(&path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes our own record (clean shutdown).
pub fn remove_record(dir: &Path, peer: &PeerId) {
    let _ = std::fs::remove_file(record_path(dir, peer));
}

const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Reads a record without following a symlink swapped in after the
/// `symlink_metadata` check (O_NOFOLLOW), and without blocking on a FIFO.
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let f = opts.open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_RECORD_BYTES).read_to_end(&mut buf)?;
    Ok(buf)
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
        if peer_of_file_name(&name).as_ref() == Some(own) {
            continue;
        }
        let path = dir.join(&name);
        let (peer, rec) = match read_record(&path, &name) {
            Ok(found) => found,
            Err(Skip::Vanished) => continue,
            Err(Skip::Symlink) => {
                // Whoever can write the directory could point a record anywhere.
                tracing::debug!(
                    file = name,
                    "skipping a peer registry record that is a symlink"
                );
                continue;
            }
            Err(Skip::Bad(why)) => {
                warn(&name, &why);
                continue;
            }
        };
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

/// Live records of `network_id` in `dir`, for reading only (`ghcache
/// doctor`): unlike [`scan`] nothing is deleted and nothing is logged; a
/// directory that cannot be read is an error.
pub fn read_live(dir: &Path, network_id: &str, now_ms: u64) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Ok((_, rec)) = read_record(&entry.path(), &name)
            && rec.network_id == network_id
            && !rec.expired(now_ms)
        {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Why a registry file was not taken as a record.
enum Skip {
    /// Gone between listing and reading.
    Vanished,
    Symlink,
    /// Worth a warning: the reason.
    Bad(String),
}

/// The record in registry file `name` at `path`, checked: named
/// `<peer_id>.json`, a regular file of bounded size (never a symlink),
/// well-formed, and naming the peer its file name names.
fn read_record(path: &Path, name: &str) -> Result<(PeerId, Record), Skip> {
    let peer = peer_of_file_name(name).ok_or(Skip::Bad("not named <peer_id>.json".into()))?;
    let md = std::fs::symlink_metadata(path).map_err(|_| Skip::Vanished)?;
    if md.is_symlink() {
        return Err(Skip::Symlink);
    }
    if !md.is_file() || md.len() > MAX_RECORD_BYTES {
        return Err(Skip::Bad("not a regular file of at most 64 KiB".into()));
    }
    let rec: Record = read_no_follow(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| Skip::Bad(format!("malformed record ({e})")))?;
    if rec.peer_id != peer.to_string() {
        return Err(Skip::Bad(
            "peer_id inside does not match the file name".into(),
        ));
    }
    Ok((peer, rec))
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
        // The read-only view: live records of the network only (ours has
        // expired by now), nothing deleted.
        write_record(dir.path(), &b, &rec(&b, "n", 1_000)).expect("w");
        let live = read_live(dir.path(), "n", 20_500).expect("read");
        let mut ids: Vec<_> = live.iter().map(|r| r.peer_id.clone()).collect();
        ids.sort();
        assert_eq!(ids, vec![a.to_string()]);
        assert!(record_path(dir.path(), &b).exists());
        assert!(read_live(&dir.path().join("missing"), "n", 0).is_err());
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

    #[cfg(unix)]
    #[test]
    fn the_writer_never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().expect("dir");
        let outside = tempfile::tempdir().expect("outside");
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious").expect("w");
        let me = PeerId::random();
        // The temp name the old writer used, and the record path itself.
        let old_tmp = dir
            .path()
            .join(format!(".{me}.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_tmp).expect("symlink");
        std::os::unix::fs::symlink(&victim, record_path(dir.path(), &me)).expect("symlink");
        write_record(dir.path(), &me, &rec(&me, "n", 10_000)).expect("w");
        assert_eq!(std::fs::read_to_string(&victim).expect("r"), "precious");
        // The link at the record path was replaced by a real record.
        let md = std::fs::symlink_metadata(record_path(dir.path(), &me)).expect("md");
        assert!(md.is_file(), "{md:?}");
        let back: Record =
            serde_json::from_slice(&std::fs::read(record_path(dir.path(), &me)).expect("r"))
                .expect("json");
        assert_eq!(back, rec(&me, "n", 10_000));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(md.permissions().mode() & 0o777, 0o644);
    }

    #[cfg(unix)]
    #[test]
    fn the_reader_ignores_symlinked_records() {
        let dir = tempfile::tempdir().expect("dir");
        let outside = tempfile::tempdir().expect("outside");
        let me = PeerId::random();
        let other = PeerId::random();
        // A valid, live record of our network, but reached through a link.
        let target = outside.path().join("record.json");
        std::fs::write(
            &target,
            serde_json::to_vec(&rec(&other, "n", 10_000)).expect("json"),
        )
        .expect("w");
        std::os::unix::fs::symlink(&target, record_path(dir.path(), &other)).expect("symlink");
        let mut warned = HashSet::new();
        assert!(scan(dir.path(), &me, "n", 10_000, &mut warned).is_empty());
        assert!(warned.is_empty(), "{warned:?}");
        // The same record as a regular file is found.
        std::fs::remove_file(record_path(dir.path(), &other)).expect("rm");
        std::fs::copy(&target, record_path(dir.path(), &other)).expect("cp");
        assert_eq!(scan(dir.path(), &me, "n", 10_000, &mut warned).len(), 1);
        // A link swapped in after the check is not followed either.
        assert!(read_no_follow(&record_path(dir.path(), &other)).is_ok());
        std::fs::remove_file(record_path(dir.path(), &other)).expect("rm");
        std::os::unix::fs::symlink(&target, record_path(dir.path(), &other)).expect("symlink");
        assert!(read_no_follow(&record_path(dir.path(), &other)).is_err());
    }
}
