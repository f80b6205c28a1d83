//! The real daemon process: start-up, a corrupt store, and kill -9.
#![allow(clippy::unwrap_used)]

mod common;

use common::{daemon_command, doctor, start};
use ghcache_fakehub::{FakeHub, FakeHubConfig};
use std::path::Path;

fn start_daemon(state: &Path, upstream: &str, extra: &[&str]) -> common::Daemon {
    let mut args = vec!["--no-p2p"];
    args.extend_from_slice(extra);
    start(daemon_command(state, upstream, &[], &args))
}

#[test]
fn a_corrupt_store_is_refused_kept_and_recoverable() {
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("cache");
    std::fs::create_dir_all(&store).unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(store.join("store.redb"), &garbage).unwrap();

    let out = daemon_command(state.path(), "http://127.0.0.1:9", &[], &["--no-p2p"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("store.redb"), "{stderr}");
    assert!(stderr.contains("--recover-store"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read(store.join("store.redb")).unwrap(),
        garbage,
        "file was touched"
    );

    let daemon = start_daemon(state.path(), "http://127.0.0.1:9", &["--recover-store"]);
    assert!(daemon.base.starts_with("http://127.0.0.1:"));
    let kept: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read(p).map(|b| b == garbage).unwrap_or(false))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the corrupt file must be kept aside, renamed"
    );
    assert_ne!(kept[0], store.join("store.redb"));
}

#[test]
fn kill_9_during_a_write_burst_leaves_a_store_that_opens_and_serves() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hub = runtime
        .block_on(FakeHub::start(FakeHubConfig::default()))
        .unwrap();
    let token = hub.world().pat("alice").to_owned();
    let repo = hub.world().public_repo().to_owned();
    let state = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let get = |base: String, path: String| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let response = client
                .get(format!("{base}{path}"))
                .header("authorization", format!("token {token}"))
                .send()
                .await?;
            let outcome = response
                .headers()
                .get("x-ghcache")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, outcome, response.bytes().await?))
        }
    };
    let paths: Vec<String> = (1..=11)
        .flat_map(|page| {
            [
                format!("/repos/{repo}/actions/runs?per_page=30&page={page}"),
                format!("/repos/{repo}/actions/runs?per_page=10&page={page}"),
            ]
        })
        .collect();

    let mut daemon = start_daemon(state.path(), &hub.base_url(), &[]);
    runtime.block_on(async {
        // Half the burst completes; the rest is in flight when the daemon dies.
        let (done, in_flight) = paths.split_at(paths.len() / 2);
        for path in done {
            assert_eq!(get(daemon.base.clone(), path.clone()).await.unwrap().0, 200);
        }
        let burst: Vec<_> = in_flight
            .iter()
            .map(|p| tokio::spawn(get(daemon.base.clone(), p.clone())))
            .collect();
        daemon.child.kill().unwrap(); // SIGKILL
        daemon.child.wait().unwrap();
        for task in burst {
            let _ = task.await;
        }
    });
    drop(daemon);

    let daemon = start_daemon(state.path(), &hub.base_url(), &[]);
    runtime.block_on(async {
        for path in &paths {
            let (status, outcome, body) = get(daemon.base.clone(), path.clone()).await.unwrap();
            assert_eq!(status, 200, "{path}");
            let direct = get(hub.base_url(), path.clone()).await.unwrap().2;
            assert_eq!(
                body, direct,
                "{path}: served a body GitHub would not ({outcome:?})"
            );
        }
    });
}

/// The soft and hard open-file limits of a process, from /proc.
fn nofile_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

// Issue 9, item 6: with the common soft limit the daemon ran out of
// descriptors long before its hard limit.
#[test]
fn the_daemon_raises_its_open_file_limit_to_the_hard_limit() {
    let (_, hard) = nofile_limits(std::process::id());
    let state = tempfile::tempdir().unwrap();
    let inner = daemon_command(state.path(), "http://127.0.0.1:9", &[], &["--no-p2p"]);
    // prlimit lowers the soft limit, then execs the daemon (same pid).
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile=256:{hard}"))
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(state.path())
        .env_clear()
        .env("HOME", state.path())
        .env("RUST_LOG", "info");
    let daemon = start(cmd);
    let (soft, now_hard) = nofile_limits(daemon.child.id());
    assert_eq!(now_hard, hard);
    assert_eq!(soft, hard, "the soft limit stayed below the hard one");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A fresh state directory (and everything the daemon creates in it) is
/// readable by the daemon's user only: it holds cached private responses.
#[cfg(unix)]
#[test]
fn a_new_state_directory_and_its_store_are_private() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    // Not created yet: the daemon creates it (and its parent `root` exists).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.args(["--log-format", "json", "--state-dir"])
        .arg(&state)
        .args(["daemon", "--proxy-addr", "127.0.0.1:0"])
        .args(["--upstream", "http://127.0.0.1:9", "--no-p2p"])
        .current_dir(root.path())
        .env_clear()
        .env("HOME", root.path())
        .env("RUST_LOG", "info");
    let daemon = start(cmd);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("cache")), 0o700);
    assert_eq!(mode(&state.join("cache/store.redb")), 0o600);
    let (_, shown) = doctor(&daemon.base, &state);
    assert!(!shown.contains("chmod"), "{shown}");
}

/// A state directory an older ghcache (or the operator) left open to other
/// users: the daemon warns with the fix and narrows the store file; doctor
/// reports the directory, and a readable store file as a failure.
#[cfg(unix)]
#[test]
fn a_world_readable_state_directory_is_warned_about_and_reported() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(cache.join("store.redb"), b"").unwrap();
    std::fs::set_permissions(
        cache.join("store.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let (daemon, before_ready) = common::start_logging(daemon_command(
        state.path(),
        "http://127.0.0.1:9",
        &[],
        &["--no-p2p"],
    ));
    let dir = state.path().display().to_string();
    let warned = before_ready.iter().find(|e| {
        e["level"] == "WARN"
            && e["fields"]["path"] == dir.as_str()
            && e["fields"]["mode"] == "755"
            && e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("chmod 700 {dir}")))
    });
    assert!(warned.is_some(), "{before_ready:#?}");
    assert_eq!(mode(&cache.join("store.redb")), 0o600);
    // Left to the operator, and reported with its fix.
    assert_eq!(mode(state.path()), 0o755);
    let (_, shown) = doctor(&daemon.base, state.path());
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("⚠") && l.contains(&dir) && l.contains("mode 755")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("fix: run `chmod 700 {dir}`")),
        "{shown}"
    );
    drop(daemon);

    // A store file readable by others fails the check.
    std::fs::set_permissions(
        cache.join("store.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, shown) = doctor("http://127.0.0.1:9", state.path());
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("✘") && l.contains("store.redb")),
        "{shown}"
    );
    assert!(shown.contains("chmod 600"), "{shown}");
}
