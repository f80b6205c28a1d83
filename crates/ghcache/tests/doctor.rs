//! `ghcache doctor` on a healthy setup (real daemons meshed on loopback, the
//! fake GitHub) and on each broken one it claims to detect. The container
//! and bridge-mode detection is tested over fake /proc trees in
//! `ghcache-doctor` (`host::tests`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, eventually, free_port, mesh_daemon_with, peers};
use ghcache_fakehub::{FakeHub, FakeHubConfig};
use serde_json::Value;

const SECRET: &str = "doctor-cluster-secret-0123456789abcdef";

struct Outcome {
    code: Option<i32>,
    report: Value,
    shown: String,
}

impl Outcome {
    /// The findings of one check.
    fn area(&self, area: &str) -> Vec<&Value> {
        self.report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["area"] == area)
            .collect()
    }

    /// The failed finding of `area` whose message contains `needle`.
    fn failed(&self, area: &str, needle: &str) -> &Value {
        self.area(area)
            .into_iter()
            .find(|f| f["level"] == "fail" && f["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no failed {area} finding with {needle:?}:\n{}", self.shown))
    }

    /// Doctor failed, naming the proxy port as held by something that is
    /// not our daemon, with the setting that moves it.
    fn names_a_stranger_on(&self, proxy: &str) {
        assert_eq!(self.code, Some(1), "{}", self.shown);
        let f = self.failed(
            "ports",
            &format!("proxy port {proxy} is held by another process"),
        );
        assert!(f["fix"].as_str().unwrap().contains("GHCACHE_PROXY_ADDR"));
    }
}

/// `ghcache doctor --json` with a clean environment plus `env`, asking the
/// daemon at `proxy` (an `IP:PORT`).
fn doctor(state: &Path, proxy: &str, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.args(["--state-dir"])
        .arg(state)
        .args(["doctor", "--json", "--proxy-addr", proxy])
        .current_dir(state)
        .env_clear()
        .env("HOME", state);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let shown = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {shown}"));
    Outcome {
        code: out.status.code(),
        report,
        shown,
    }
}

fn addr_of(daemon: &Daemon) -> String {
    daemon.base.trim_start_matches("http://").to_owned()
}

/// A loopback address nothing listens on (and no daemon answers at).
fn nobody() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Whether the daemon's only connected peer has the given membership.
async fn peer_member(client: &reqwest::Client, daemon: &Daemon, member: bool) -> bool {
    let p = peers(client, daemon).await;
    let connected = p["connected_peers"].as_array().cloned().unwrap_or_default();
    connected.len() == 1 && connected[0]["member"] == member
}

/// The environment of a mesh daemon listening on `port`.
fn mesh_env<'a>(
    port: &'a str,
    registry: &'a str,
    secret: &'a str,
    bootstrap: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GHCACHE_CLUSTER_SECRET", secret),
        ("GHCACHE_P2P_LISTEN_IP", "127.0.0.1"),
        ("CACHE_LISTEN_PORT", port),
        ("GHCACHE_REGISTRY_DIR", registry),
        ("GHCACHE_MDNS", "false"),
        ("CACHE_BOOTSTRAP_PEERS", bootstrap),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_setup_passes_every_check() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let alice = hub.world().pat("alice").to_owned();
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().to_str().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port_a, port_b) = (free_port().to_string(), free_port().to_string());
    let to_a = format!("/ip4/127.0.0.1/tcp/{port_a}");
    let a = mesh_daemon_with(
        state_a.path(),
        registry.path(),
        &hub.base_url(),
        SECRET,
        &[("CACHE_LISTEN_PORT", &port_a)],
    );
    let env_b = mesh_env(&port_b, reg, SECRET, &to_a);
    let b = mesh_daemon_with(
        state_b.path(),
        registry.path(),
        &hub.base_url(),
        SECRET,
        &env_b,
    );
    for state in [state_a.path(), state_b.path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let client = reqwest::Client::new();
    eventually(
        "B to confirm A as a member",
        Duration::from_secs(20),
        || peer_member(&client, &b, true),
    )
    .await;

    let mut env = env_b.clone();
    env.push(("GITHUB_TOKEN", &alice));
    let out = doctor(state_b.path(), &addr_of(&b), &env);
    // On a host that is itself a bridged container, the host check fails
    // (rightly); everything else must pass.
    let bridged = ghcache_doctor::detect_container(Path::new("/")).is_some()
        && matches!(
            ghcache_doctor::network_mode(Path::new("/")),
            ghcache_doctor::NetworkMode::Bridge { .. }
        );
    let bad: Vec<_> = out.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "fail" || f["level"] == "warn")
        .filter(|f| !(bridged && f["area"] == "host"))
        .collect();
    assert!(bad.is_empty(), "{}", out.shown);
    assert_eq!(out.code, Some(if bridged { 1 } else { 0 }), "{}", out.shown);
    for area in [
        "daemon",
        "ports",
        "mesh",
        "registry",
        "bootstrap",
        "upstream",
        "clock",
    ] {
        assert!(
            out.area(area).iter().any(|f| f["level"] == "ok"),
            "no passing {area} check:\n{}",
            out.shown
        );
    }
    let msg = |area: &str| out.area(area)[0]["message"].as_str().unwrap().to_owned();
    assert!(msg("ports").contains(&format!("port {port_b} is held by our daemon")));
    assert!(
        msg("registry").contains("2 live record(s)"),
        "{}",
        out.shown
    );
    assert!(msg("bootstrap").contains("TCP reachable") && msg("bootstrap").contains("a member"));
    assert!(msg("upstream").contains("5000/5000"), "{}", out.shown);
    // The check is free (GitHub does not count GET /rate_limit) and the
    // token and the secret are never shown.
    assert_eq!(hub.stats().identity("user:alice").units_consumed, 0);
    assert!(!out.shown.contains(&alice) && !out.shown.contains(SECRET));
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn ports_held_by_a_stranger_are_named_with_the_fix() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    // Something that is not ghcache: accepts and hangs up.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = stranger.local_addr().unwrap().to_string();
    let stranger_p2p = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p2p_port = stranger_p2p.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for conn in stranger.incoming() {
            drop(conn);
        }
    });
    let registry = tempfile::tempdir().unwrap();
    let mut env = mesh_env(&p2p_port, registry.path().to_str().unwrap(), SECRET, "");
    env.retain(|(k, _)| *k != "CACHE_BOOTSTRAP_PEERS");
    let upstream = hub.base_url();
    env.push(("GHCACHE_UPSTREAM", &upstream));
    let out = doctor(state.path(), &proxy, &env);
    out.names_a_stranger_on(&proxy);
    let f = out.failed("ports", &format!("libp2p port 127.0.0.1:{p2p_port}/TCP"));
    assert!(f["fix"].as_str().unwrap().contains("CACHE_LISTEN_PORT"));
    drop(stranger_p2p);
}

/// A stranger that answers every request with JSON (another local API)
/// is not taken for the daemon.
#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_answering_json_is_not_taken_for_the_daemon() {
    use std::io::{Read, Write};
    let state = tempfile::tempdir().unwrap();
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = stranger.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in stranger.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    let env = [
        ("CACHE_ENABLE_P2P", "false"),
        ("GHCACHE_UPSTREAM", "http://127.0.0.1:9"),
    ];
    let out = doctor(state.path(), &proxy, &env);
    out.names_a_stranger_on(&proxy);
    // Nor does the readiness check (the image's HEALTHCHECK) pass.
    let health = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"))
        .args(["health", "--proxy-addr", &proxy])
        .current_dir(state.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&health.stderr).contains("not as a ghcache daemon"),
        "{health:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_registry_is_reported() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("peers");
    let port = free_port().to_string();
    // /proc/self: readable, never writable (not even by root).
    for (dir, needle) in [
        (file.to_str().unwrap(), "is not a directory"),
        (under_file.to_str().unwrap(), "cannot inspect"),
        ("/proc/self", "cannot write the peer registry /proc/self"),
    ] {
        let mut env = mesh_env(&port, dir, SECRET, "");
        env.retain(|(k, _)| *k != "CACHE_BOOTSTRAP_PEERS");
        env.push(("GHCACHE_UPSTREAM", "http://127.0.0.1:9"));
        let out = doctor(state.path(), &nobody(), &env);
        let f = out.failed("registry", needle);
        assert!(f["fix"].as_str().unwrap().contains("GHCACHE_REGISTRY_DIR"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_peers_that_cannot_be_dialled_fail() {
    let state = tempfile::tempdir().unwrap();
    let registry = tempfile::tempdir().unwrap();
    let (port, closed) = (free_port().to_string(), free_port());
    let list = format!("/ip4/127.0.0.1/tcp/{closed},/dns4/no-such-host.invalid/tcp/9100");
    let mut env = mesh_env(&port, registry.path().to_str().unwrap(), SECRET, &list);
    env.push(("GHCACHE_UPSTREAM", "http://127.0.0.1:9"));
    let out = doctor(state.path(), &nobody(), &env);
    assert_eq!(out.code, Some(1));
    let f = out.failed(
        "bootstrap",
        &format!("/ip4/127.0.0.1/tcp/{closed}: not reachable over TCP"),
    );
    assert!(f["message"].as_str().unwrap().contains("refused"), "{f}");
    assert!(f["fix"].as_str().unwrap().contains("--network host"));
    out.failed("bootstrap", "cannot resolve no-such-host.invalid");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_peer_with_another_secret_is_reachable_but_failed() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let (reg_a, reg_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port_a, port_b) = (free_port().to_string(), free_port().to_string());
    let to_a = format!("/ip4/127.0.0.1/tcp/{port_a}");
    let other = "another-cluster-secret-entirely-42";
    let a = mesh_daemon_with(
        state_a.path(),
        reg_a.path(),
        &hub.base_url(),
        SECRET,
        &[("CACHE_LISTEN_PORT", &port_a)],
    );
    let env_b = mesh_env(&port_b, reg_b.path().to_str().unwrap(), other, &to_a);
    let b = mesh_daemon_with(state_b.path(), reg_b.path(), &hub.base_url(), other, &env_b);
    let client = reqwest::Client::new();
    eventually("B to find A a stranger", Duration::from_secs(20), || {
        peer_member(&client, &b, false)
    })
    .await;
    let out = doctor(state_b.path(), &addr_of(&b), &env_b);
    assert_eq!(out.code, Some(1), "{}", out.shown);
    let f = out.failed("bootstrap", "holds a different cluster secret");
    assert!(f["message"].as_str().unwrap().contains("TCP reachable"));
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("GHCACHE_CLUSTER_SECRET")
    );
    assert!(!out.shown.contains(SECRET) && !out.shown.contains(other));
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_upstream_fails_with_its_url_and_the_error_kind() {
    let state = tempfile::tempdir().unwrap();
    let dead = format!("http://{}", nobody());
    let out = doctor(
        state.path(),
        &nobody(),
        &[("GHCACHE_UPSTREAM", &dead), ("CACHE_ENABLE_P2P", "false")],
    );
    assert_eq!(out.code, Some(1));
    let f = out.failed("upstream", &format!("{dead}/rate_limit unreachable"));
    assert!(
        f["message"].as_str().unwrap().contains("ConnectionRefused"),
        "{f}"
    );
    assert!(f["fix"].as_str().unwrap().contains("GHCACHE_UPSTREAM"));
    // No answer, no clock to compare with.
    assert!(out.area("clock").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_fails_without_being_shown() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let upstream = hub.base_url();
    let bad = "ghp_doctorRevokedToken000000000000000000";
    let out = doctor(
        state.path(),
        &nobody(),
        &[
            ("GHCACHE_UPSTREAM", &upstream),
            ("CACHE_ENABLE_P2P", "false"),
            ("GITHUB_TOKEN", bad),
        ],
    );
    let f = out.failed("upstream", "answered 401");
    assert!(f["fix"].as_str().unwrap().contains("GITHUB_TOKEN"));
    assert!(!out.shown.contains("doctorRevokedToken"));
    // A refusal still carries GitHub's Date: the clock is checked.
    assert_eq!(out.area("clock")[0]["level"], "ok", "{}", out.shown);
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_against_the_upstream_fails() {
    // The fake's Date five minutes behind this host's clock.
    let hub = FakeHub::start(FakeHubConfig {
        date_skew_secs: -300,
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let alice = hub.world().pat("alice").to_owned();
    let state = tempfile::tempdir().unwrap();
    let upstream = hub.base_url();
    let out = doctor(
        state.path(),
        &nobody(),
        &[
            ("GHCACHE_UPSTREAM", &upstream),
            ("CACHE_ENABLE_P2P", "false"),
            ("GITHUB_TOKEN", &alice),
        ],
    );
    let f = out.failed("clock", "s ahead of the upstream's");
    let skew: i64 = f["message"].as_str().unwrap()["this host's clock is ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((299..=301).contains(&skew), "{f}");
    assert!(f["fix"].as_str().unwrap().contains("NTP"));
    assert_eq!(out.area("upstream")[0]["level"], "ok", "{}", out.shown);
}
