//! Two hosts in separate network namespaces joined by a veth pair (a real
//! network stack, not loopback) share an entry through the mesh.
//!
//! Needs root, iproute2 and curl. Outside CI a missing prerequisite skips
//! with the reason; under `CI=true` it fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "netns-cluster-secret-0123456789abcdef";

fn prerequisites() -> Result<(), String> {
    common::is_root()
        .map_err(|why| format!("network namespaces: {why}"))
        .and_then(|()| common::have_tool("ip", "-V"))
        .and_then(|()| common::have_tool("curl", "--version"))
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces and the veth pair between them; removed on drop.
struct Hosts {
    a: String,
    b: String,
}

impl Hosts {
    /// `test` (one letter) keeps names apart when tests share a process.
    fn new(test: char) -> Hosts {
        let tag = format!("{test}{}", std::process::id() % 100_000);
        let hosts = Hosts {
            a: format!("ghca{tag}"),
            b: format!("ghcb{tag}"),
        };
        let (va, vb) = (format!("gva{tag}"), format!("gvb{tag}"));
        sh(&["ip", "netns", "add", &hosts.a]);
        sh(&["ip", "netns", "add", &hosts.b]);
        sh(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ]);
        sh(&["ip", "link", "set", &va, "netns", &hosts.a]);
        sh(&["ip", "link", "set", &vb, "netns", &hosts.b]);
        for (ns, dev, ip) in [
            (&hosts.a, &va, "10.78.0.1/30"),
            (&hosts.b, &vb, "10.78.0.2/30"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", ip, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// A `ghcache daemon` inside `ns` with its proxy on the namespace's
    /// 127.0.0.1:8787 and the mesh on port 9100 of all its interfaces.
    fn daemon(
        &self,
        ns: &str,
        state: &std::path::Path,
        extra_env: &[(&str, &str)],
    ) -> common::Daemon {
        let mut cmd = self.exec(ns, env!("CARGO_BIN_EXE_ghcache"));
        cmd.args(["--log-format", "json", "--state-dir"])
            .arg(state)
            .args([
                "daemon",
                "--proxy-addr",
                "127.0.0.1:8787",
                "--upstream",
                "http://10.78.0.1:9999",
            ])
            .current_dir(state)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", state)
            .env("RUST_LOG", "info")
            .env("GHCACHE_CLUSTER_SECRET", SECRET)
            .env("CACHE_LISTEN_PORT", "9100")
            // About sharing, not latency (see tests/mesh.rs).
            .env("GHCACHE_PEER_DEADLINE_MS", "3000");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        common::start(cmd)
    }

    /// `/_ghcache/peers` of the daemon in `ns`, once `ready` holds for it.
    fn wait_for_peers(
        &self,
        ns: &str,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, _, body) = self.get(ns, "http://127.0.0.1:8787/_ghcache/peers", None);
            let peers: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if ready(&peers) {
                return peers;
            }
            assert!(Instant::now() < deadline, "{what}: {peers}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command run inside `ns`.
    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// `curl` inside `ns`: (status, x-ghcache, body).
    fn get(&self, ns: &str, url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
        let mut cmd = self.exec(ns, "curl");
        cmd.args([
            "-s",
            "-D",
            "/dev/stderr",
            "-H",
            "Accept: application/vnd.github+json",
        ]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: token {token}")]);
        }
        let out = cmd.arg(url).output().unwrap();
        let head = String::from_utf8_lossy(&out.stderr).to_string();
        let status = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let outcome = head
            .lines()
            .find_map(|l| l.strip_prefix("x-ghcache: "))
            .unwrap_or_default()
            .trim()
            .to_owned();
        (status, outcome, out.stdout)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth and so the pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// The prerequisites, or why not: a failure under CI, a skip elsewhere.
fn can_run() -> bool {
    common::require("the network namespace test", prerequisites())
}

fn connected(peers: &serde_json::Value) -> usize {
    peers["connected_peers"].as_array().map_or(0, Vec::len)
}

#[test]
fn two_hosts_in_separate_network_namespaces_share_an_entry() {
    if !can_run() {
        return;
    }
    let hosts = Hosts::new('s');
    let bin = env!("CARGO_BIN_EXE_ghcache");

    // The fake GitHub lives on host A; host B reaches it over the veth.
    let mut fakehub = hosts.exec(&hosts.a, bin);
    fakehub.args(["-q", "fakehub", "--addr", "10.78.0.1:9999"]);
    let fakehub = common::FakeHub::spawn(fakehub, "10.78.0.1:9999");
    let alice = fakehub.alice.clone();

    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let no_mdns = ("GHCACHE_MDNS", "false");
    let _a = hosts.daemon(&hosts.a, state_a.path(), &[no_mdns]);
    let _b = hosts.daemon(
        &hosts.b,
        state_b.path(),
        &[
            no_mdns,
            ("CACHE_BOOTSTRAP_PEERS", "/ip4/10.78.0.1/tcp/9100"),
        ],
    );
    let peers = hosts.wait_for_peers(&hosts.b, "B never connected to A", |p| connected(p) == 1);
    // B reached A over the veth, not loopback.
    assert!(peers.to_string().contains("10.78.0.1"), "{peers}");

    let proxy = "http://127.0.0.1:8787";
    let path = "/repos/acme/gadgets/actions/runs?per_page=30";
    let (status, outcome, on_a) = hosts.get(&hosts.a, &format!("{proxy}{path}"), Some(&alice));
    assert_eq!((status, outcome.as_str()), (200, "MISS"));
    let (status, outcome, on_b) = hosts.get(&hosts.b, &format!("{proxy}{path}"), Some(&alice));
    // A's bytes, confirmed by a free 304 for alice's ETag of them (peer
    // copies are verified by default).
    assert_eq!(
        (status, outcome.as_str()),
        (200, "SYNTHESIZED"),
        "B should be served A's copy"
    );
    assert_eq!(on_a, on_b);
    let (_, _, stats) = hosts.get(&hosts.a, "http://10.78.0.1:9999/_fakehub/stats", None);
    let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
    let alice = &stats["identities"]["user:alice"];
    assert_eq!(alice["requests"], 2, "{stats}");
    assert_eq!(alice["status_304"], 1, "{stats}");
    assert_eq!(
        alice["units_consumed"], 1,
        "only A's first fetch cost a unit: {stats}"
    );
}

/// mDNS between two hosts: no registry, no bootstrap list, only multicast
/// on the veth link (which, unlike loopback, carries it).
#[test]
fn two_hosts_find_each_other_by_mdns() {
    if !can_run() {
        return;
    }
    let hosts = Hosts::new('m');
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mdns_only = [("GHCACHE_MDNS", "true"), ("GHCACHE_DHT", "false")];
    let _a = hosts.daemon(&hosts.a, state_a.path(), &mdns_only);
    let _b = hosts.daemon(&hosts.b, state_b.path(), &mdns_only);
    let on_a = hosts.wait_for_peers(&hosts.a, "A never found B by mDNS", |p| connected(p) == 1);
    let on_b = hosts.wait_for_peers(&hosts.b, "B never found A by mDNS", |p| connected(p) == 1);
    let found_by_mdns = |p: &serde_json::Value, other: &serde_json::Value| {
        p["discovered"]["mdns"]
            .as_array()
            .is_some_and(|l| l.contains(&other["peer_id"]))
    };
    assert!(
        found_by_mdns(&on_a, &on_b) || found_by_mdns(&on_b, &on_a),
        "{on_a}\n{on_b}"
    );
    assert!(on_b.to_string().contains("10.78.0.1"), "{on_b}");
}
