//! The job summary as a job produces it: `setup-github-cache` (mode
//! binary, reusing this host's daemon) registers the job, writes the
//! cache's state and exports the job's URL; the job's requests go through
//! it; `ghcache report`, its last step, writes what the daemon counted.
#![allow(clippy::unwrap_used)]

mod actions_support;
mod common;

use actions_support::runner::Job;
use common::{free_port, require, row, start};
use ghcache_fakehub::{FakeHub, FakeHubConfig};

#[tokio::test(flavor = "multi_thread")]
async fn setup_exports_the_job_url_and_the_last_step_reports_what_it_was_served() {
    if !require(
        "the job report test",
        common::have_tool("curl", "--version"),
    ) {
        return;
    }
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let world = hub.world();
    let alice = world.pat("alice").to_owned();
    let state = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    // This host's daemon, already running (the action reuses it).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.args(["--log-format", "json", "--state-dir"])
        .arg(state.path())
        .args(["daemon", "--no-p2p", "--proxy-addr", &addr, "--upstream"])
        .arg(hub.base_url())
        .env_clear()
        .env("HOME", state.path())
        .env("RUST_LOG", "info");
    let _daemon = start(cmd);

    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ghcache"), bin.path().join("ghcache")).unwrap();
    let mut job = Job::new("runner-1");
    let path = format!("{}:{}", bin.path().display(), job.runner["PATH"]);
    job.runner.insert("PATH".into(), path);
    let run = job.uses(
        "setup-github-cache",
        &[
            ("mode", "binary"),
            ("state-dir", state.path().to_str().unwrap()),
            ("port", &port),
            ("p2p", "false"),
            ("upstream", &hub.base_url()),
        ],
    );
    assert!(run.success, "{}", run.describe());
    assert_eq!(run.output("daemon"), "reused");
    let job_id = run.output("job-id").to_owned();
    assert_eq!(job_id.len(), 24, "{}", run.describe());
    let api_url = format!("http://{addr}/_job/{job_id}");
    assert_eq!(run.output("api-url"), api_url);
    let env = run.env();
    assert_eq!(env.get("GHCACHE_API_URL"), Some(&api_url));
    assert_eq!(env.get("GHCACHE_JOB_ID"), Some(&job_id));
    let start_summary: String = run.steps.iter().map(|s| s.summary.as_str()).collect();
    assert!(
        start_summary.contains("the cache at job start"),
        "{}",
        run.describe()
    );

    // The job's own requests, as a workflow step makes them.
    let repo = world.public_repo();
    let step = job.run(
        r#"for _ in 1 2 3; do
             curl -sS -o /dev/null -D - -H "Authorization: token $TOKEN" "$GHCACHE_API_URL/repos/$REPO/actions/runs" | tr -d '\r' | sed -n 's/^x-ghcache: //Ip'
           done"#,
        &[("TOKEN", &alice), ("REPO", repo)],
    );
    assert!(step.success, "{}", step.stderr);
    assert_eq!(step.stdout, "MISS\nHIT\nHIT\n");

    // The last step.
    let step = job.run("ghcache report", &[]);
    assert!(step.success, "{}{}", step.stdout, step.stderr);
    let md = &step.summary;
    let stats: ghcache_proxy::StatsReport =
        ghcache_proxy::control_get_as(addr.parse().unwrap(), "/_ghcache/stats")
            .await
            .unwrap();
    assert_eq!(
        row(md, "Requests through the cache"),
        stats.requests.to_string()
    );
    assert_eq!(
        row(md, "Answered from the cache (HIT)"),
        stats.hits.hit.to_string()
    );
    assert_eq!(row(md, "Fetched (MISS)"), stats.misses.to_string());
    assert_eq!(
        row(md, "Rate-limit units saved"),
        stats.rate_limit.units_saved.to_string()
    );
    assert_eq!(stats.hits.hit, 2);
    assert!(md.contains("```mermaid\npie title"), "{md}");
    assert!(!md.contains(&alice));
}
