//! `ghcache codeql check|save|stats` as the action runs them: the real
//! binary against real daemons, on git repositories the test makes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, daemon_command, eventually, mesh_daemon, start};
use ghcache_codeql::testing::{Repo, SARIF, analysis_dir, git_cli};

const SECRET: &str = "codeql-cluster-secret-0123456789abcdef";
/// Nothing listens here: the daemon never needs GitHub in these tests.
const UPSTREAM: &str = "http://127.0.0.1:9";

/// A repository with one Python file and a README, committed.
fn repository(git: &Path, dir: &Path) -> Repo {
    let repo = Repo::init(git, dir);
    repo.commit(
        &[("src/app.py", "print(1)\n"), ("README.md", "hello\n")],
        "one",
    );
    repo
}

struct Run {
    code: Option<i32>,
    stdout: String,
    outputs: HashMap<String, String>,
    env: HashMap<String, String>,
}

/// `ghcache codeql SUBCOMMAND` as the action runs it: inputs as INPUT_*,
/// file commands into fresh files.
fn codeql(work: &Path, api: &str, args: &[&str], inputs: &[(&str, &str)]) -> Run {
    let files = tempfile::tempdir_in(work).unwrap();
    let output = files.path().join("output");
    let env_file = files.path().join("env");
    let summary = files.path().join("summary");
    for f in [&output, &env_file, &summary] {
        std::fs::write(f, "").unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.arg("codeql")
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "octo/app")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_ENV", &env_file)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GHCACHE_API_URL", api)
        .env("INPUT_LANGUAGES", "python")
        .env("INPUT_CODEQL_VERSION", "2.19.3");
    for (k, v) in inputs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let parse = |path: &Path| -> HashMap<String, String> {
        let text = std::fs::read_to_string(path).unwrap();
        ghcache_actions::parse_file_commands(&text)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    };
    Run {
        code: out.status.code(),
        stdout: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        outputs: parse(&output),
        env: parse(&env_file),
    }
}

async fn stats(daemon: &Daemon) -> serde_json::Value {
    reqwest::get(format!("{}/_ghcache/stats", daemon.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analysis_saved_through_one_daemon_is_found_by_another_over_the_mesh() {
    let Some(git_path) = git_cli() else { return };
    let work = tempfile::tempdir().unwrap();
    let registry = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = mesh_daemon(state_a.path(), registry.path(), UPSTREAM, SECRET);
    let b = mesh_daemon(state_b.path(), registry.path(), UPSTREAM, SECRET);
    eventually(
        "the daemons to connect",
        Duration::from_secs(30),
        || async {
            let peers = |d: &Daemon| {
                let url = format!("{}/_ghcache/peers", d.base);
                async move {
                    let v: serde_json::Value =
                        reqwest::get(url).await.unwrap().json().await.unwrap();
                    v["connected_peers"].as_array().map_or(0, Vec::len)
                }
            };
            peers(&a).await == 1 && peers(&b).await == 1
        },
    )
    .await;

    // Host A's runner analysed the commit and saved it.
    let origin = repository(&git_path, &work.path().join("host-a"));
    let repo_a = origin.dir.clone();
    let analysis = analysis_dir(&work.path().join("analysis"));
    let saved = codeql(
        work.path(),
        &a.base,
        &[
            "save",
            "--sarif-dir",
            analysis.to_str().unwrap(),
            "--duration",
            "300",
        ],
        &[("INPUT_SOURCE_ROOT", repo_a.to_str().unwrap())],
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stdout);
    assert!(
        saved.stdout.contains("saved the analysis"),
        "{}",
        saved.stdout
    );

    // Host B has the same commit (a fresh clone) and a cold store.
    let repo_b = work.path().join("host-b");
    origin.clone_to(&repo_b, None);
    let restored = work.path().join("restored");
    let check = codeql(
        work.path(),
        &b.base,
        &["check"],
        &[
            ("INPUT_SOURCE_ROOT", repo_b.to_str().unwrap()),
            ("INPUT_SARIF_DIR", restored.to_str().unwrap()),
        ],
    );
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert_eq!(
        check.outputs["should-skip-scan"], "true",
        "{}",
        check.stdout
    );
    assert_eq!(check.outputs["reason"], "identical-tree");
    assert_eq!(check.outputs["time-saved-seconds"], "300");
    assert_eq!(check.outputs["sarif-path"], restored.to_str().unwrap());
    assert_eq!(check.outputs["cache-key"].len(), 64);
    assert_eq!(check.outputs["analysed-commit"].len(), 40);
    assert_eq!(check.env["GHCACHE_CODEQL_SHOULD_SKIP_SCAN"], "true");
    assert_eq!(
        std::fs::read_to_string(restored.join("python.sarif")).unwrap(),
        SARIF
    );

    // B counted a fleet hit and the skip; A served it.
    let b_stats = stats(&b).await;
    let codeql_b = &b_stats["extensions"]["codeql"];
    assert_eq!(codeql_b["hits_fleet"], 1, "{b_stats}");
    assert_eq!(codeql_b["skips"]["identical_tree"], 1, "{b_stats}");
    assert_eq!(codeql_b["seconds_saved"], 300, "{b_stats}");
    assert_eq!(stats(&a).await["extensions"]["codeql"]["saves"], 1);
    let metrics = reqwest::get(format!("{}/metrics", b.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ghcache_codeql_skips_total{reason=\"identical-tree\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ghcache_codeql_seconds_saved_total 300"),
        "{metrics}"
    );
    // `ghcache stats` prints the CodeQL lines too.
    let (code, shown) = common::ask(&b.base, state_b.path(), "stats");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("codeql skipped      1 (identical tree 1"),
        "{shown}"
    );
    assert!(shown.contains("codeql time saved   300 s"), "{shown}");

    // B now holds the analysis itself: a second check is a local hit even
    // with A gone.
    drop(a);
    let again = codeql(
        work.path(),
        &b.base,
        &["check"],
        &[
            ("INPUT_SOURCE_ROOT", repo_b.to_str().unwrap()),
            ("INPUT_SARIF_DIR", restored.to_str().unwrap()),
        ],
    );
    assert_eq!(
        again.outputs["should-skip-scan"], "true",
        "{}",
        again.stdout
    );
    assert_eq!(stats(&b).await["extensions"]["codeql"]["hits_local"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_with_another_secret_finds_nothing() {
    let Some(git_path) = git_cli() else { return };
    let work = tempfile::tempdir().unwrap();
    let registry = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = mesh_daemon(state_a.path(), registry.path(), UPSTREAM, SECRET);
    let b = mesh_daemon(
        state_b.path(),
        registry.path(),
        UPSTREAM,
        "another-secret-0123456789abcdefgh",
    );
    let repo = work.path().join("repo");
    repository(&git_path, &repo);
    let analysis = analysis_dir(&work.path().join("analysis"));
    let source = [("INPUT_SOURCE_ROOT", repo.to_str().unwrap())];
    let saved = codeql(
        work.path(),
        &a.base,
        &["save", "--sarif-dir", analysis.to_str().unwrap()],
        &source,
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stdout);
    // A finds its own analysis; B, outside the cluster, does not.
    let on_a = codeql(work.path(), &a.base, &["check"], &source);
    assert_eq!(on_a.outputs["should-skip-scan"], "true", "{}", on_a.stdout);
    let on_b = codeql(work.path(), &b.base, &["check"], &source);
    assert_eq!(on_b.outputs["should-skip-scan"], "false", "{}", on_b.stdout);
    assert_eq!(on_b.outputs["reason"], "no-analysis");
}

#[test]
fn without_a_daemon_check_scans_with_a_warning_and_exits_0() {
    let Some(git_path) = git_cli() else { return };
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    repository(&git_path, &repo);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = codeql(
        work.path(),
        &api,
        &["check"],
        &[("INPUT_SOURCE_ROOT", repo.to_str().unwrap())],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.outputs["should-skip-scan"], "false");
    assert_eq!(run.outputs["reason"], "no-daemon");
    assert_eq!(run.outputs["cache-key"].len(), 64);
    assert!(run.stdout.contains("::warning::"), "{}", run.stdout);
    // Saving without a daemon warns too, and does not fail the job.
    let analysis = analysis_dir(&work.path().join("analysis"));
    let run = codeql(
        work.path(),
        &api,
        &["save", "--sarif-dir", analysis.to_str().unwrap()],
        &[("INPUT_SOURCE_ROOT", repo.to_str().unwrap())],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.contains("not saved"), "{}", run.stdout);
}

#[test]
fn bad_inputs_are_usage_errors_and_help_documents_every_input() {
    let work = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("INPUT_MAX_AGE", "a week"),
        // At most a year (`ghcache_codeql::MAX_AGE_LIMITS`).
        ("INPUT_MAX_AGE", "366d"),
        ("INPUT_FORCE", "maybe"),
        ("INPUT_MAX_ANCESTORS", "-1"),
    ] {
        let run = codeql(
            work.path(),
            "http://127.0.0.1:9",
            &["check"],
            &[(name, value)],
        );
        assert_eq!(run.code, Some(2), "{name}: {}", run.stdout);
        assert!(run.outputs.is_empty());
    }
    let help = Command::new(env!("CARGO_BIN_EXE_ghcache"))
        .args(["codeql", "check", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for input in [
        "languages",
        "queries",
        "config-file",
        "codeql-version",
        "build-mode",
        "category",
        "max-age",
        "force",
        "never-skip-events",
        "max-ancestors",
        "source-root",
        "sarif-dir",
    ] {
        assert!(help.contains(&format!("--{input} ")), "--{input}: {help}");
        let env = format!("INPUT_{}", input.to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env}: {help}");
    }
    for output in [
        "should-skip-scan",
        "reason",
        "cache-key",
        "sarif-path",
        "analysed-commit",
        "time-saved-seconds",
    ] {
        assert!(help.contains(output), "{output}");
    }
}

/// A standalone daemon (no mesh) keeps analyses too, and a docs-only
/// commit after the analysed one is skipped through the CLI.
#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_daemon_skips_a_docs_only_commit() {
    let Some(git_path) = git_cli() else { return };
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let daemon = start(daemon_command(
        state.path(),
        UPSTREAM,
        &[("CACHE_ENABLE_P2P", "false")],
        &[],
    ));
    let checkout = repository(&git_path, &work.path().join("repo"));
    let repo = checkout.dir.clone();
    let analysis = analysis_dir(&work.path().join("analysis"));
    let source = [("INPUT_SOURCE_ROOT", repo.to_str().unwrap())];
    let saved = codeql(
        work.path(),
        &daemon.base,
        &[
            "save",
            "--sarif-dir",
            analysis.to_str().unwrap(),
            "--duration",
            "90",
        ],
        &source,
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stdout);
    checkout.commit(&[("README.md", "changed\n")], "docs");
    let run = codeql(work.path(), &daemon.base, &["check"], &source);
    assert_eq!(run.outputs["should-skip-scan"], "true", "{}", run.stdout);
    assert_eq!(run.outputs["reason"], "no-relevant-changes");
    // On a schedule it scans anyway.
    let mut scheduled = source.to_vec();
    scheduled.push(("GITHUB_EVENT_NAME", "schedule"));
    let run = codeql(work.path(), &daemon.base, &["check"], &scheduled);
    assert_eq!(run.outputs["should-skip-scan"], "false");
    assert_eq!(run.outputs["reason"], "never-skip-event");
    let s = stats(&daemon).await;
    assert_eq!(
        s["extensions"]["codeql"]["scans"]["never-skip-event"], 1,
        "{s}"
    );
}

/// The example workflow wires check → upload on a skip, and init/analyze
/// (with `output`) → save otherwise.
#[test]
fn the_example_workflow_uses_the_outputs_it_documents() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/codeql-cached.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let steps = workflow["jobs"]["analyze"]["steps"].as_sequence().unwrap();
    let find = |needle: &str| {
        steps
            .iter()
            .find(|s| serde_yaml::to_string(s).unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no step with {needle}"))
    };
    let check = find("setup-codeql-cache");
    assert_eq!(check["id"].as_str(), Some("cache"));
    for input in ["languages", "codeql-version", "config-file", "category"] {
        assert!(!check["with"][input].is_null(), "{input}");
    }
    let upload = find("upload-sarif");
    assert_eq!(
        upload["if"].as_str(),
        Some("steps.cache.outputs.should-skip-scan == 'true'")
    );
    assert!(
        upload["with"]["sarif_file"]
            .as_str()
            .unwrap()
            .contains("outputs.sarif-path")
    );
    let analyze = find("codeql-action/analyze");
    assert!(analyze["if"].as_str().unwrap().contains("!= 'true'"));
    assert!(!analyze["with"]["output"].is_null());
    let save = find("ghcache codeql save");
    assert!(save["run"].as_str().unwrap().contains("--sarif-dir"));
    assert!(save["if"].as_str().unwrap().contains("!= 'true'"));
}
