//! The real daemon process: start-up, a corrupt store, and kill -9.
#![allow(clippy::unwrap_used)]

mod common;

use common::{daemon_command, start};
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
