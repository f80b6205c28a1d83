//! `ghcache demo` and `ghcache bench fleet` as a user runs them: the real
//! binary, small settings, figures checked against the fake's counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn ghcache(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_ghcache"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .unwrap()
}

/// Two runners, one round, no added latency.
fn small_demo(extra: &[&str]) -> Output {
    let mut args = vec![
        "demo",
        "--runners",
        "2",
        "--rounds",
        "1",
        "--latency",
        "none",
    ];
    args.extend_from_slice(extra);
    ghcache(&args)
}

#[test]
fn demo_json_agrees_with_the_fake_github() {
    let out = small_demo(&["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // stdout is not a terminal: plain progress lines, no bar.
    assert!(stderr.contains("round 1 done"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 2, "before and after");
    for m in modes {
        let name = &m["mode"];
        assert_eq!(m["upstream_requests"], m["github"]["requests"], "{name}");
        assert_eq!(m["units"], m["github"]["units"], "{name}");
        assert_eq!(m["failed"], 0, "{name}: {}", m["failures"]);
        assert_eq!(m["shape_errors"].as_array().unwrap().len(), 0, "{name}");
    }
    assert_eq!(modes[0]["mode"], "no-cache");
    assert_eq!(modes[1]["mode"], "mesh-synthesis");
    assert_eq!(modes[0]["requests"], modes[1]["requests"]);
}

#[test]
fn demo_prints_the_before_after_table() {
    let out = small_demo(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "upstream requests",
        "rate-limit units",
        "physical limit",
        "p99 latency",
        "wall time",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    assert!(stdout.contains("no cache") && stdout.contains("mesh + ETag synthesis"));
}

#[test]
fn bench_fleet_refuses_bad_settings_with_exit_2() {
    for args in [
        &["bench", "fleet", "--modes", "warp-drive"][..],
        &["bench", "fleet", "--tokens", "some"][..],
        &["bench", "fleet", "--mix", "jobs=many"][..],
        &["demo", "--latency", "slow"][..],
        &["demo", "--runners", "0"][..],
    ] {
        let out = ghcache(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("expected") || stderr.contains("must be"),
            "{args:?}: {stderr}"
        );
    }
}
