//! `setup-codeql-cache` and `inject-credentials` end to end on a real Docker
//! engine, against the interfaces pinned for `ghcache codeql` (CodeQL issue)
//! and `ghcache inject-credentials` / `ghcache creds` (vault issue). These
//! fail until those commands are merged into the same tree as the actions.
#![allow(clippy::unwrap_used)]

mod actions_support;
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use actions_support::docker::{self, Cleanup};
use actions_support::runner::Job;
use common::require;

fn can_run() -> bool {
    require(
        "the CodeQL and vault action tests",
        common::is_root().and_then(|()| docker::engine()),
    )
}

/// A state directory owned by the image's user, and the daemon on it.
struct Host {
    state: tempfile::TempDir,
    /// What setup-github-cache exported (GHCACHE_API_URL, image, mode, state dir).
    exports: std::collections::BTreeMap<String, String>,
    image: String,
    _cleanup: Cleanup,
}

impl Host {
    fn start(tag: &str) -> Host {
        let image = docker::image();
        let state = docker::state_dir();
        let name = format!("ghcache-e2e-{tag}-{}", std::process::id());
        let port = common::free_port_on("127.0.0.1").to_string();
        let mut job = Job::new("setup");
        let mut inputs = docker::daemon_inputs(&image, state.path(), &name, &port);
        inputs.extend([
            ("p2p", "false".to_owned()),
            ("upstream", "http://127.0.0.1:9".to_owned()),
        ]);
        let run = job.uses("setup-github-cache", &inputs);
        assert!(run.success, "{}", run.describe());
        Host {
            state,
            exports: job.env.clone(),
            image,
            _cleanup: Cleanup::container(&name),
        }
    }

    fn setup_job(&self) -> Job {
        let mut job = Job::new("runner");
        job.env = self.exports.clone();
        job
    }
}

#[test]
fn setup_codeql_cache_keys_the_mounted_workspace_and_skips_after_a_save() {
    if !can_run() {
        return;
    }
    let host = Host::start("codeql");
    let mut job = host.setup_job();
    // Without a CodeQL version the key is unknown and the check always scans.
    let with = [
        ("languages", "rust"),
        ("build-mode", "none"),
        ("codeql-version", "2.19.3"),
    ];
    let first = job.uses("setup-codeql-cache", &with);
    assert!(first.success, "{}", first.describe());
    assert_eq!(
        first.output("should-skip-scan"),
        "false",
        "{}",
        first.describe()
    );
    assert_eq!(
        first
            .env()
            .get("GHCACHE_CODEQL_SHOULD_SKIP_SCAN")
            .map(String::as_str),
        Some("false")
    );
    let key = first.output("cache-key").to_owned();
    assert!(!key.is_empty(), "{}", first.describe());

    // The key follows the workspace the container sees.
    std::fs::write(
        job.workspace.join("main.rs"),
        "fn main() { println!(\"changed\"); }\n",
    )
    .unwrap();
    // Only committed trees count as analysed.
    let commit = Command::new("git")
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
        .args(["commit", "-qam", "change the source"])
        .current_dir(&job.workspace)
        .output()
        .unwrap();
    assert!(commit.status.success(), "{commit:?}");
    let second = job.uses("setup-codeql-cache", &with);
    assert!(second.success, "{}", second.describe());
    assert_ne!(
        second.output("cache-key"),
        key,
        "the check did not read the mounted workspace"
    );

    // Save an analysis of this tree; a later job with the same tree skips.
    let sarif = job.runner_temp.join("codeql-sarif");
    std::fs::create_dir_all(&sarif).unwrap();
    std::fs::write(sarif.join("rust.sarif"), r#"{"version":"2.1.0","runs":[]}"#).unwrap();
    let save = job.uses(
        "setup-codeql-cache",
        &[
            ("languages", "rust"),
            ("build-mode", "none"),
            ("codeql-version", "2.19.3"),
            ("save-sarif-dir", sarif.to_str().unwrap()),
            ("duration", "120"),
        ],
    );
    assert!(save.success, "{}", save.describe());
    let third = job.uses("setup-codeql-cache", &with);
    assert!(third.success, "{}", third.describe());
    assert_eq!(
        third.output("should-skip-scan"),
        "true",
        "{}",
        third.describe()
    );
    let restored = std::path::PathBuf::from(third.output("sarif-path"));
    assert!(restored.exists(), "{}", third.describe());
}

#[test]
fn inject_credentials_masks_first_and_a_hostile_value_creates_no_extra_variable() {
    if !can_run() {
        return;
    }
    let host = Host::start("vault");
    let hostile = "s3cret-first-line\nEVIL_INJECTED=1\nPATH=/tmp/evil";
    // `ghcache creds set` reads the value from stdin, as the daemon's user.
    let mut child = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-i",
            "--network",
            "host",
            "--user",
            "65532:65532",
            "-v",
        ])
        .arg(format!("{0}:{0}", host.state.path().display()))
        .arg("-e")
        .arg(format!("GHCACHE_STATE_DIR={}", host.state.path().display()))
        .args([
            &host.image,
            "creds",
            "set",
            "NPM_TOKEN",
            "--scope",
            "repo:acme/gadgets",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hostile.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "ghcache creds set failed");

    let mut job = host.setup_job();
    let run = job.uses("inject-credentials", &[("names", "NPM_TOKEN")]);
    assert!(run.success, "{}", run.describe());
    let env = run.env();
    assert_eq!(env.get("NPM_TOKEN").map(String::as_str), Some(hostile));
    assert!(
        !env.contains_key("EVIL_INJECTED") && !env.contains_key("PATH"),
        "{env:?}"
    );
    // Every line of the value is masked, before anything else is printed.
    let stdout = run.stdout();
    for line in hostile.lines() {
        assert!(
            run.masks().iter().any(|m| m == line),
            "{line} not masked: {stdout}"
        );
        let mask = stdout.find(&format!("::add-mask::{line}")).unwrap();
        let other = stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .map(|l| stdout.find(l).unwrap())
            .min();
        assert!(other.is_none_or(|o| o > mask), "{stdout}");
        assert!(
            stdout
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .all(|l| !l.contains(line)),
            "{stdout}"
        );
    }
    // A missing credential fails the step.
    let run = job.uses("inject-credentials", &[("names", "NPM_TOKEN,NOT_THERE")]);
    assert!(!run.success, "{}", run.describe());
}
