//! Observability over real daemons: `ghcache report`'s numbers are the
//! daemon's counters, `stats --json`, `peers --json` and `/metrics` agree,
//! and the Grafana dashboard names only metrics a daemon really exports.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Daemon, daemon_command, eventually, mesh_daemon, row, start, text};
use ghcache_fakehub::{FakeHub, FakeHubConfig};

const SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// `ghcache ARGS --proxy-addr …` as a job step would run it.
fn ghcache(daemon: &Daemon, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.arg("--state-dir")
        .arg(state)
        .args(args)
        .args(["--proxy-addr", daemon.base.trim_start_matches("http://")])
        .current_dir(state)
        .env_clear()
        .env("HOME", state);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn json(daemon: &Daemon, state: &Path, command: &str) -> serde_json::Value {
    let out = ghcache(daemon, state, &[command, "--json"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> String {
    let r = client
        .get(url)
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    r.headers()["x-ghcache"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_report_equals_the_daemons_counters() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let world = hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let state = tempfile::tempdir().unwrap();
    let daemon = start(daemon_command(
        state.path(),
        &hub.base_url(),
        &[],
        &["--no-p2p"],
    ));
    let summary = state.path().join("summary.md");
    let job = "0123456789abcdef01234567";
    let actions = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];

    // What setup-github-cache does: register the job, write the state.
    let out = ghcache(
        &daemon,
        state.path(),
        &["report", "--state", "--job", job],
        &actions,
    );
    assert!(out.status.success(), "{}", text(&out));
    let start = std::fs::read_to_string(&summary).unwrap();
    assert!(start.contains("the cache at job start"), "{start}");
    assert_eq!(row(&start, "Entries"), "0");
    assert_eq!(row(&start, "Peers"), "peer-to-peer sharing off");

    // The job, through its prefix; and another client outside it.
    let client = reqwest::Client::new();
    let base = format!("{}/_job/{job}", daemon.base);
    let runs = format!("{base}/repos/{}/actions/runs", world.public_repo());
    let mut outcomes = Vec::new();
    for token in [&alice, &alice, &alice, &bob, &bob] {
        outcomes.push(get(&client, &runs, token).await);
    }
    assert_eq!(outcomes, ["MISS", "HIT", "HIT", "SYNTHESIZED", "HIT"]);
    let other = format!("{}/repos/{}", daemon.base, world.public_repo());
    assert_eq!(get(&client, &other, &alice).await, "MISS");

    std::fs::write(&summary, "").unwrap();
    let mut env = actions.to_vec();
    env.push(("GHCACHE_JOB_ID", job));
    let out = ghcache(&daemon, state.path(), &["report"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(&summary).unwrap();
    let stats = json(&daemon, state.path(), "stats");
    let n = |v: &serde_json::Value| v.as_u64().unwrap().to_string();
    // The daemon also counted the request outside the job (one MISS).
    assert_eq!(row(&md, "Requests through the cache"), "5");
    assert_eq!(n(&stats["requests"]), "6");
    assert_eq!(
        row(&md, "Answered from the cache (HIT)"),
        n(&stats["hits"]["hit"])
    );
    assert_eq!(
        row(&md, "Confirmed by a free 304 (SYNTHESIZED)"),
        n(&stats["hits"]["synthesized"])
    );
    assert_eq!(row(&md, "Fetched (MISS)"), "1");
    assert_eq!(n(&stats["misses"]), "2");
    assert_eq!(
        row(&md, "Rate-limit units saved"),
        n(&stats["rate_limit"]["units_saved"])
    );
    assert_eq!(row(&md, "Rate-limit units saved"), "4");
    // The job sent the MISS and bob's conditional (a free 304); the
    // daemon also sent the other client's MISS.
    assert_eq!(row(&md, "Requests sent to GitHub"), "2");
    assert_eq!(n(&stats["upstream"]["requests"]), "3");
    assert_eq!(row(&md, "Rate-limit units spent"), "1");
    assert_eq!(n(&stats["rate_limit"]["units_spent"]), "2");
    let saved_us = stats["time_saved_us"].as_u64().unwrap();
    assert!(saved_us > 0);
    assert_eq!(
        row(&md, "Time saved (estimate)"),
        format!("{:.1} s", saved_us as f64 / 1e6)
    );
    assert!(md.contains("```mermaid\npie title"), "{md}");
    assert!(md.contains("\"HIT\" : 3"), "{md}");
    assert!(md.contains("Time saved is an estimate"), "{md}");
    // No token anywhere in what the job wrote.
    assert!(!md.contains(&alice) && !md.contains(&bob));

    // The JSON form is the daemon's own document.
    let out = ghcache(
        &daemon,
        state.path(),
        &["report", "--json", "--job", job],
        &[],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["hits"]["hit"], stats["hits"]["hit"]);

    // Unknown, invalid and missing ids are clear errors.
    let out = ghcache(
        &daemon,
        state.path(),
        &["report", "--job", "never-seen-job"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no record of that job"),
        "{}",
        text(&out)
    );
    let out = ghcache(&daemon, state.path(), &["report", "--job", "../x"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("invalid job id"), "{}", text(&out));
    let out = ghcache(&daemon, state.path(), &["report"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("GHCACHE_JOB_ID"), "{}", text(&out));
}

/// Sample name → value, from the OpenMetrics text (labels kept in the name).
fn samples(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Every metric name a query may use: each sample's, and each family's
/// (counters with `_total`), even a family with no sample yet.
fn names(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            names.insert(name.to_owned());
            if kind == "counter" {
                names.insert(format!("{name}_total"));
            }
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            names.insert(name.to_owned());
        }
    }
    names
}

async fn scrape(client: &reqwest::Client, daemon: &Daemon) -> String {
    client
        .get(format!("{}/metrics", daemon.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_peers_and_metrics_agree_and_the_dashboard_uses_real_metrics() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let world = hub.world();
    let alice = world.pat("alice").to_owned();
    let registry = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = mesh_daemon(state_a.path(), registry.path(), &hub.base_url(), SECRET);
    let b = mesh_daemon(state_b.path(), registry.path(), &hub.base_url(), SECRET);
    let client = reqwest::Client::new();
    eventually(
        "the daemons to confirm each other",
        Duration::from_secs(20),
        || async {
            let peers = json(&a, state_a.path(), "peers");
            peers["connected_peers"][0]["member"] == true
        },
    )
    .await;
    let runs = format!("/repos/{}/actions/runs", world.public_repo());
    for daemon in [&a, &b, &a] {
        get(&client, &format!("{}{runs}", daemon.base), &alice).await;
    }
    get(&client, &format!("{}/repos/nobody/nothing", a.base), &alice).await;

    // Quiet moments exist (no request in flight): the three documents read
    // in one are the same counters.
    // (Our own control requests change only the connection counts.)
    let settled = |mut stats: serde_json::Value| {
        stats.as_object_mut().unwrap().remove("connections");
        stats
    };
    let mut agreed = None;
    for _ in 0..50 {
        let before = json(&a, state_a.path(), "peers");
        let stats = settled(json(&a, state_a.path(), "stats"));
        let metrics = scrape(&client, &a).await;
        let after = json(&a, state_a.path(), "peers");
        if before == after && stats == settled(json(&a, state_a.path(), "stats")) {
            agreed = Some((stats, after, metrics));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stats, peers, metrics) = agreed.expect("the daemon never stood still for a scrape");
    let m = samples(&metrics);
    let at = |name: &str| {
        *m.get(name)
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    };
    let u = |v: &serde_json::Value| v.as_u64().unwrap() as f64;
    assert_eq!(at("ghcache_requests_total"), u(&stats["requests"]));
    assert_eq!(at("ghcache_requests_total"), 3.0);
    for (outcome, key) in [("HIT", "hit"), ("SYNTHESIZED", "synthesized")] {
        assert_eq!(
            at(&format!("ghcache_responses_total{{outcome=\"{outcome}\"}}")),
            u(&stats["hits"][key])
        );
    }
    assert_eq!(
        at("ghcache_responses_total{outcome=\"MISS\"}"),
        u(&stats["misses"])
    );
    let by_status = stats["upstream"]["by_status"].as_object().unwrap();
    assert!(by_status.contains_key("404"), "{by_status:?}");
    for (status, n) in by_status {
        assert_eq!(
            at(&format!(
                "ghcache_upstream_responses_total{{status=\"{status}\"}}"
            )),
            u(n)
        );
    }
    assert_eq!(
        at("ghcache_rate_limit_units_saved_total"),
        u(&stats["rate_limit"]["units_saved"])
    );
    assert_eq!(
        at("ghcache_time_saved_seconds_total"),
        u(&stats["time_saved_us"]) / 1e6
    );
    assert_eq!(at("ghcache_store_entries"), u(&stats["store"]["entries"]));
    assert_eq!(
        at("ghcache_store_evictions_total"),
        u(&stats["store"]["evictions"])
    );
    // The quota rows carry a keyed hash, never the token.
    assert!(!metrics.contains(&alice));
    let partition = stats["rate_limit"]["partitions"][0]["partition"]
        .as_str()
        .unwrap();
    assert!(metrics.contains(&format!("partition=\"{partition}\"")));

    assert_eq!(at("ghcache_mesh_enabled"), 1.0);
    assert_eq!(at("ghcache_peers_connected{member=\"true\"}"), 1.0);
    let connected = peers["connected_peers"].as_array().unwrap().len() as f64;
    let total_connected: f64 = ["true", "false", "unknown"]
        .iter()
        .map(|v| at(&format!("ghcache_peers_connected{{member=\"{v}\"}}")))
        .sum();
    assert_eq!(total_connected, connected);
    assert_eq!(
        at("ghcache_mesh_lookups_total{result=\"hit\"}"),
        u(&peers["peer_hits"])
    );
    assert_eq!(
        at("ghcache_mesh_fetches_total{result=\"served\"}"),
        u(&peers["fetches_served"])
    );
    assert_eq!(at("ghcache_mesh_fetches_total{result=\"served\"}"), 1.0);
    assert_eq!(
        at("ghcache_mesh_bytes_total{direction=\"out\"}"),
        u(&peers["bytes_out"])
    );
    for reason in [
        "decrypt",
        "cid_mismatch",
        "oversized",
        "malformed",
        "replayed",
    ] {
        assert_eq!(
            at(&format!(
                "ghcache_mesh_rejected_messages_total{{reason=\"{reason}\"}}"
            )),
            u(&peers["rejected"][reason])
        );
    }
    assert_eq!(
        at("ghcache_mesh_announcements_total{direction=\"sent\"}"),
        u(&peers["announcements_sent"])
    );
    // B stored the body A announced: its lag gauge has a sample.
    eventually(
        "B to receive A's announcement",
        Duration::from_secs(20),
        || async { json(&b, state_b.path(), "peers")["last_announcement_lag_ms"].is_i64() },
    )
    .await;
    let peers_b = json(&b, state_b.path(), "peers");
    let lag_ms = peers_b["last_announcement_lag_ms"].as_i64().unwrap();
    let metrics_b = samples(&scrape(&client, &b).await);
    assert_eq!(
        metrics_b["ghcache_mesh_announcement_lag_seconds"],
        lag_ms as f64 / 1000.0
    );
    // The swarm's own metrics (libp2p-metrics) are in the same scrape.
    assert!(
        m.keys()
            .any(|k| k.starts_with("libp2p_swarm_connections_established_total")),
        "{metrics}"
    );

    // Every metric the dashboard queries exists in this real output.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let known = names(&metrics);
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("ghcache_") || word.starts_with("libp2p_") {
                    used.insert(word.to_owned());
                }
            }
        }
    }
    assert!(used.len() >= 20, "{used:?}");
    let missing: Vec<_> = used.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics /metrics lacks: {missing:?}"
    );
}
