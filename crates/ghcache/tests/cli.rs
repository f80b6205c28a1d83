//! The real `ghcache` binary: help, exit codes, configuration errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::text;

const SUBCOMMANDS: [&str; 13] = [
    "daemon",
    "setup-codeql-cache",
    "inject-credentials",
    "codeql",
    "creds",
    "stats",
    "peers",
    "doctor",
    "health",
    "report",
    "demo",
    "bench",
    "config",
];

/// Runs ghcache in `dir` with a clean environment plus `env`.
fn ghcache(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.args(args).current_dir(dir).env_clear().env("HOME", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::create_dir_all(dir.path().join(".github")).unwrap();
    dir
}

#[test]
fn top_level_help_lists_every_subcommand_and_exit_codes() {
    let ws = workspace();
    let out = ghcache(ws.path(), &["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out);
    for sub in SUBCOMMANDS {
        assert!(help.contains(sub), "{sub} missing from help");
    }
    assert!(help.contains("Exit codes:"));
    assert!(help.contains("2  usage or configuration error"));
}

#[test]
fn every_subcommand_has_informative_help() {
    let ws = workspace();
    for sub in SUBCOMMANDS {
        let out = ghcache(ws.path(), &[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub} --help failed");
        let help = text(&out);
        let first = help.lines().next().unwrap_or_default();
        assert!(
            first.split_whitespace().count() >= 4,
            "{sub}: thin help {first:?}"
        );
    }
}

#[test]
fn doctor_without_a_daemon_fails_and_says_how_to_fix_it() {
    let ws = workspace();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = ghcache(
        ws.path(),
        &["doctor", "--proxy-addr", &addr],
        &[
            ("GITHUB_TOKEN", "ghp_doctorTokenThatMustNotLeak0000000000"),
            // No internet in tests: a dead upstream, reported as such.
            ("GHCACHE_UPSTREAM", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out);
    assert!(shown.contains("✘") && shown.contains(&addr), "{shown}");
    assert!(shown.contains("ghcache daemon"), "{shown}");
    // The GITHUB_TOKEN fallback is named, the token is not.
    assert!(shown.contains("GITHUB_TOKEN"), "{shown}");
    assert!(!shown.contains("doctorToken"), "{shown}");
}

#[test]
fn config_show_reports_origins_from_every_layer() {
    let ws = workspace();
    std::fs::write(
        ws.path().join(".github/cache-config.yml"),
        "cache:\n  default_ttl: 600\np2p:\n  listen_port: 9200\n",
    )
    .unwrap();
    let out = ghcache(
        ws.path(),
        &["config", "show", "--proxy-addr", "127.0.0.1:7777"],
        &[("CACHE_ENABLE_P2P", "false")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    let has = |origin: &str, tail: &str| {
        shown
            .lines()
            .any(|l| l.starts_with(origin) && l.ends_with(tail))
    };
    assert!(
        has("flag --proxy-addr", "proxy.addr = 127.0.0.1:7777"),
        "{shown}"
    );
    assert!(
        has("env CACHE_ENABLE_P2P", "p2p.enabled = false"),
        "{shown}"
    );
    assert!(
        has(
            "file .github/cache-config.yml:2",
            "cache.default_ttl = 600s"
        ),
        "{shown}"
    );
    assert!(
        has("file .github/cache-config.yml:4", "p2p.listen_port = 9200"),
        "{shown}"
    );
    assert!(
        has("default", "proxy.upstream = https://api.github.com"),
        "{shown}"
    );

    let out = ghcache(ws.path(), &["config", "show", "--json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["settings"]["p2p.listen_port"]["value"], 9200);
    assert_eq!(
        json["settings"]["p2p.listen_port"]["origin"],
        "file .github/cache-config.yml:4"
    );
}

#[test]
fn bad_configuration_is_a_clear_usage_error_never_a_panic() {
    let ws = workspace();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "",
            &[("CACHE_LISTEN_PORT", "70000")],
            "error: CACHE_LISTEN_PORT=70000 (environment): port must be 1-65535",
        ),
        (
            "cache:\n  defualt_ttl: 1\n",
            &[],
            "error: .github/cache-config.yml:2: unknown key \"defualt_ttl\" (did you mean \"default_ttl\"?)",
        ),
        (
            "",
            &[("CACHE_BOOTSTRAP_PEERS", "/ip4/1.2.3.4/tcp/1,not-an-addr")],
            "error: CACHE_BOOTSTRAP_PEERS (environment): item 2 \"not-an-addr\"",
        ),
        (
            "\u{0}\u{1}garbage: [",
            &[],
            "error: .github/cache-config.yml",
        ),
    ];
    for (file, env, expected) in cases {
        std::fs::write(ws.path().join(".github/cache-config.yml"), file).unwrap();
        let out = ghcache(ws.path(), &["config", "show"], env);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{shown}");
        assert!(
            shown.starts_with(expected),
            "expected {expected:?}, got {shown}"
        );
        assert!(!shown.contains("panicked"), "{shown}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    let ws = workspace();
    let out = ghcache(ws.path(), &["daemon", "--listen-port", "70000"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("port must be 1-65535"));
    let out = ghcache(ws.path(), &["--log-format", "xml", "config", "show"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("expected text or json"));
    for args in [["demo", "--runners", "0"], ["demo", "--rounds", "0"]] {
        let out = ghcache(ws.path(), &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains("--runners, --rounds: runners and rounds must be at least 1"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn secrets_never_reach_output_or_logs() {
    let ws = workspace();
    let secret = "ghp_aaaaBBBBccccDDDDeeeeFFFFgggg0123456789";
    let out = ghcache(
        ws.path(),
        &["-vv", "config", "show", "--json"],
        &[("GHCACHE_CLUSTER_SECRET", secret), ("GITHUB_TOKEN", secret)],
    );
    assert!(out.status.success());
    assert!(!text(&out).contains("aaaaBBBB"), "{}", text(&out));
}

#[test]
fn json_logs_on_request() {
    let ws = workspace();
    let out = ghcache(
        ws.path(),
        &["--log-format", "json", "config", "show"],
        &[("GITHUB_TOKEN", "ghs_0123456789abcdefghij0123456789abcdef")],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("GITHUB_TOKEN")).unwrap();
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["level"], "WARN");
    assert!(!stderr.contains("0123456789abcdefghij"));
}

#[test]
fn stats_without_a_daemon_is_a_clear_runtime_failure() {
    let ws = workspace();
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let out = ghcache(ws.path(), &["stats", "--proxy-addr", &addr], &[]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out);
    assert!(shown.contains("is `ghcache daemon` running?"), "{shown}");
    assert!(!shown.contains("panicked"));
}
