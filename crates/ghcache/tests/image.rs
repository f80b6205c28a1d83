//! The image and `setup-github-cache` end to end on a real Docker engine:
//! the action's steps run as the runner runs them (actions_support), the
//! daemon container starts once and is reused by a second job, a later step
//! gets a HIT through it, a new image replaces it with the store kept, a
//! daemon that cannot start fails the step with its log, and two daemons on
//! two "hosts" (the host's network namespace and another one) share an
//! entry. Needs root, a Docker engine, curl and iproute2: under `CI=true`
//! a missing one fails; elsewhere the test skips with the reason.
#![allow(clippy::unwrap_used)]

mod actions_support;
mod common;

use std::time::{Duration, Instant};

use actions_support::docker::{self, Cleanup, daemon_inputs, state_dir};
use actions_support::runner::Job;
use actions_support::sh;
use common::{FakeHub, free_port_on, require};

const SECRET: &str = "e2e-cluster-secret-0123456789abcdef";
const REPO_PATH: &str = "/repos/acme/gadgets";

fn can_run(what: &str) -> bool {
    require(
        what,
        common::is_root()
            .and_then(|()| docker::engine())
            .and_then(|()| common::have_tool("curl", "--version")),
    )
}

/// A later step of the job: GET `path` through the proxy the action
/// exported; returns the `X-Ghcache` outcome.
fn get_through_proxy(job: &mut Job, token: &str, path: &str) -> String {
    let step = job.run(
        r#"curl -sS -o /dev/null -D - -H "Authorization: token $TOKEN" "$GHCACHE_API_URL$API_PATH" | tr -d '\r' | sed -n 's/^x-ghcache: //Ip'"#,
        &[("TOKEN", token), ("API_PATH", path)],
    );
    assert!(step.success, "{}", step.stderr);
    step.stdout.trim().to_owned()
}

#[test]
fn setup_github_cache_starts_the_daemon_once_reuses_it_and_serves_hits() {
    if !can_run("the Docker end-to-end test") {
        return;
    }
    let image = docker::image();
    let hub = FakeHub::start(&format!("127.0.0.1:{}", free_port_on("127.0.0.1")));
    let state = state_dir();
    let state_path = state.path().to_str().unwrap();
    let name = format!("ghcache-e2e-{}", std::process::id());
    let mut cleanup = Cleanup::default();
    cleanup.containers.push(name.clone());
    let port = free_port_on("127.0.0.1").to_string();
    let p2p_port = free_port_on("0.0.0.0").to_string();
    let with = |image: &str| {
        let mut inputs = daemon_inputs(image, state.path(), &name, &port);
        inputs.extend([
            ("p2p-port", p2p_port.clone()),
            ("upstream", hub.url.clone()),
            ("cluster-secret", SECRET.to_owned()),
            ("ready-timeout", "60".to_owned()),
        ]);
        inputs
    };

    // Job 1: no daemon yet.
    let mut job1 = Job::new("runner-1");
    // Tests share this host's network: no mDNS, so other tests' daemons do not meet this one.
    job1.env.insert("GHCACHE_MDNS".into(), "false".into());
    let args = with(&image);
    let run = job1.uses("setup-github-cache", &args);
    assert!(run.success, "{}", run.describe());
    let proxy_url = format!("http://127.0.0.1:{port}");
    assert_eq!(run.output("proxy-url"), proxy_url);
    assert_eq!(run.output("daemon"), "started");
    assert!(
        run.output("peer-id").starts_with("12D3"),
        "{}",
        run.describe()
    );
    assert_eq!(run.output("connected-peers"), "0");
    let env = run.env();
    // Clients reach the proxy under this job's prefix.
    let job_id = env.get("GHCACHE_JOB_ID").cloned().unwrap_or_default();
    assert_eq!(job_id.len(), 24, "{env:?}");
    assert_eq!(
        env.get("GHCACHE_API_URL"),
        Some(&format!("{proxy_url}/_job/{job_id}"))
    );
    assert_eq!(
        env.get("GHCACHE_STATE_DIR").map(String::as_str),
        Some(state_path)
    );
    assert_eq!(env.get("GHCACHE_IMAGE"), Some(&image));
    // The secret is masked before anything else is printed, and appears
    // nowhere but in that mask line: not in the log, not in the container's
    // configuration.
    let stdout = run.stdout();
    assert!(
        stdout.starts_with(&format!("::add-mask::{SECRET}\n")),
        "{stdout}"
    );
    assert_eq!(stdout.matches(SECRET).count(), 1, "{stdout}");
    assert!(!run.stderr().contains(SECRET));
    let config = sh(&["docker", "container", "inspect", &name]);
    assert!(
        !config.contains(SECRET),
        "the secret is in the container's config"
    );
    // The daemon runs as the state directory's owner (the image's user),
    // with host networking and a restart policy.
    assert_eq!(
        docker::inspect(&name, "{{.Config.User}}").unwrap(),
        "65532:65532"
    );
    assert_eq!(
        docker::inspect(&name, "{{.HostConfig.NetworkMode}}").unwrap(),
        "host"
    );
    assert_eq!(
        docker::inspect(&name, "{{.HostConfig.RestartPolicy.Name}}").unwrap(),
        "unless-stopped"
    );
    // A setting the step sets reaches the daemon (by name).
    assert!(
        config.contains("GHCACHE_MDNS=false"),
        "GHCACHE_MDNS did not reach the daemon"
    );
    let first_id = docker::inspect(&name, "{{.Id}}").unwrap();
    let first_start = docker::inspect(&name, "{{.State.StartedAt}}").unwrap();
    // The hints are printed once per job.
    assert!(stdout.contains("PyGithub"), "{stdout}");

    // A later step reaches the proxy on the host's loopback.
    assert_eq!(get_through_proxy(&mut job1, &hub.alice, REPO_PATH), "MISS");
    assert_eq!(get_through_proxy(&mut job1, &hub.alice, REPO_PATH), "HIT");

    // Job 2 on another runner of the same host: the same container, not restarted.
    let mut job2 = Job::new("runner-2");
    job2.env.insert("GHCACHE_MDNS".into(), "false".into());
    let run = job2.uses("setup-github-cache", &args);
    assert!(run.success, "{}", run.describe());
    assert_eq!(run.output("daemon"), "reused");
    assert_eq!(docker::inspect(&name, "{{.Id}}").unwrap(), first_id);
    assert_eq!(
        docker::inspect(&name, "{{.State.StartedAt}}").unwrap(),
        first_start
    );
    assert_eq!(get_through_proxy(&mut job2, &hub.alice, REPO_PATH), "HIT");

    // Job 3 asks for another image: the daemon is replaced (gracefully),
    // and the entry survives in the state directory.
    let variant = format!("ghcache-e2e-variant:{}", std::process::id());
    sh(&[
        "docker",
        "commit",
        "--change",
        "LABEL dev.ghcache.test=variant",
        &name,
        &variant,
    ]);
    cleanup.images.push(variant.clone());
    let mut job3 = Job::new("runner-3");
    job3.env.insert("GHCACHE_MDNS".into(), "false".into());
    let run = job3.uses("setup-github-cache", &with(&variant));
    assert!(run.success, "{}", run.describe());
    assert_eq!(run.output("daemon"), "replaced");
    assert_ne!(docker::inspect(&name, "{{.Id}}").unwrap(), first_id);
    let variant_id = sh(&[
        "docker", "image", "inspect", "--format", "{{.Id}}", &variant,
    ]);
    assert_eq!(docker::inspect(&name, "{{.Image}}").unwrap(), variant_id);
    assert_eq!(get_through_proxy(&mut job3, &hub.alice, REPO_PATH), "HIT");

    // The image's HEALTHCHECK (`ghcache health`) reports healthy.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = docker::inspect(&name, "{{.State.Health.Status}}").unwrap();
        if health == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "health is still {health}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_daemon_that_cannot_start_fails_the_step_with_its_log() {
    if !can_run("the Docker end-to-end test") {
        return;
    }
    let image = docker::image();
    let state = state_dir();
    let name = format!("ghcache-e2e-bad-{}", std::process::id());
    let _cleanup = Cleanup::container(&name);
    let port = free_port_on("127.0.0.1").to_string();
    let mut job = Job::new("runner-bad");
    let started = Instant::now();
    let mut inputs = daemon_inputs(&image, state.path(), &name, &port);
    inputs.extend([
        ("p2p", "false".to_owned()),
        ("upstream", "ftp://nowhere".to_owned()),
        ("ready-timeout", "30".to_owned()),
    ]);
    let run = job.uses("setup-github-cache", &inputs);
    assert!(!run.success, "{}", run.describe());
    let stdout = run.stdout();
    assert!(stdout.contains("::error title=ghcache::"), "{stdout}");
    assert!(
        stdout.contains("last lines of the daemon's log"),
        "{stdout}"
    );
    // The daemon's own complaint is among them.
    assert!(stdout.contains("ftp://nowhere"), "{stdout}");
    assert!(run.outputs.is_empty());
    // Noticed as soon as it exited, not at the deadline, and not left restarting.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        docker::inspect(&name, "{{.Id}}"),
        None,
        "the failed container was left behind"
    );
}

#[test]
fn a_bad_input_fails_before_anything_runs() {
    if !can_run("the Docker end-to-end test") {
        return;
    }
    let mut job = Job::new("runner-input");
    let run = job.uses(
        "setup-github-cache",
        &[("port", "87a87"), ("mode", "docker")],
    );
    assert!(!run.success);
    assert!(
        run.stdout().contains("input 'port' must be a TCP port"),
        "{}",
        run.describe()
    );
    let run = job.uses("setup-github-cache", &[("mode", "podman")]);
    assert!(
        run.stdout()
            .contains("input 'mode' must be 'docker' or 'binary'")
    );
}

/// Host A runs the action in Docker on this host's network namespace; host
/// B, another network namespace joined to it by a veth pair, runs it in
/// `mode: binary`. B gets A's copy, confirmed by a free 304.
#[test]
fn two_hosts_one_in_docker_one_binary_in_a_netns_share_an_entry() {
    if !can_run("the two-host Docker test")
        || !require("the two-host Docker test", common::have_tool("ip", "-V"))
    {
        return;
    }
    let image = docker::image();
    let tag = std::process::id() % 100_000;
    let ns = format!("ghcd{tag}");
    let (host_if, ns_if) = (format!("gvh{tag}"), format!("gvn{tag}"));
    let _net = Netns::create(&ns, &host_if, &ns_if);

    let hub = FakeHub::start(&format!("10.79.0.1:{}", free_port_on("127.0.0.1")));
    let name = format!("ghcache-e2e-a-{}", std::process::id());
    let _cleanup = Cleanup::container(&name);
    let state_a = state_dir();
    let port_a = free_port_on("127.0.0.1").to_string();
    let p2p_a = free_port_on("0.0.0.0").to_string();
    let mut job_a = Job::new("host-a");
    job_a.env.insert("GHCACHE_MDNS".into(), "false".into());
    let mut inputs = daemon_inputs(&image, state_a.path(), &name, &port_a);
    inputs.extend([
        ("p2p-port", p2p_a.clone()),
        ("upstream", hub.url.clone()),
        ("cluster-secret", SECRET.to_owned()),
    ]);
    let run = job_a.uses("setup-github-cache", &inputs);
    assert!(run.success, "{}", run.describe());

    // Host B: the ghcache binary on PATH, every step inside the namespace.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ghcache"), bin.path().join("ghcache")).unwrap();
    let state_b = tempfile::tempdir().unwrap();
    let mut job_b = Job::new("host-b");
    job_b.wrapper = vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()];
    let path = format!("{}:{}", bin.path().display(), job_b.runner["PATH"]);
    job_b.runner.insert("PATH".into(), path);
    // About sharing, not latency (as in tests/netns.rs): B, a debug build,
    // gets time to ask A. The binary-mode daemon inherits the job's env.
    job_b
        .env
        .insert("GHCACHE_PEER_DEADLINE_MS".into(), "3000".into());
    job_b.env.insert("GHCACHE_MDNS".into(), "false".into());
    let bootstrap = format!("/ip4/10.79.0.1/tcp/{p2p_a}");
    let run = job_b.uses(
        "setup-github-cache",
        &[
            ("mode", "binary"),
            ("state-dir", state_b.path().to_str().unwrap()),
            ("upstream", &hub.url),
            ("cluster-secret", SECRET),
            ("bootstrap-peers", &bootstrap),
        ],
    );
    assert!(run.success, "{}", run.describe());
    assert_eq!(run.output("daemon"), "started");
    assert_eq!(run.output("proxy-url"), "http://127.0.0.1:8787");

    // Wait (bounded) until B is connected to A.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let step = job_b.run("ghcache -q health --proxy-addr 127.0.0.1:8787", &[]);
        if step.stdout.contains("connected-peers=1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never connected to A: {}",
            step.stdout
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let path = "/repos/acme/gadgets/actions/runs?per_page=30";
    assert_eq!(get_through_proxy(&mut job_a, &hub.alice, path), "MISS");
    assert_eq!(
        get_through_proxy(&mut job_b, &hub.alice, path),
        "SYNTHESIZED",
        "B should be served A's copy, proved by a free 304"
    );
}

/// A network namespace joined to this one by a veth pair (10.79.0.1 here,
/// 10.79.0.2 there); its processes are killed and it is deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: &str, host_if: &str, ns_if: &str) -> Netns {
        sh(&["ip", "netns", "add", name]);
        let netns = Netns {
            name: name.to_owned(),
        };
        sh(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
        ]);
        sh(&["ip", "link", "set", ns_if, "netns", name]);
        sh(&["ip", "addr", "add", "10.79.0.1/30", "dev", host_if]);
        sh(&["ip", "link", "set", host_if, "up"]);
        sh(&[
            "ip",
            "-n",
            name,
            "addr",
            "add",
            "10.79.0.2/30",
            "dev",
            ns_if,
        ]);
        sh(&["ip", "-n", name, "link", "set", ns_if, "up"]);
        sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The binary-mode daemon was started by the action inside the namespace.
        let pids = std::process::Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = std::process::Command::new("kill").arg(pid).status();
        }
        // Deleting the namespace deletes its end of the veth and so the pair.
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// The image holds the binary and the state directory, nothing else (no
/// NSS configuration or modules, no CA bundle, no shell), runs as
/// 65532:65532, and still resolves a name through /etc/hosts (glibc's
/// built-in `files` lookup): the daemon reaches the fake GitHub by name.
#[test]
fn the_scratch_image_resolves_names_without_nss_and_runs_as_non_root() {
    if !can_run("the Docker end-to-end test") {
        return;
    }
    let image = docker::image();
    let user = sh(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        &image,
    ]);
    assert_eq!(user, "65532:65532");
    let files = std::process::Command::new("bash")
        .args([
            "-c",
            "docker save \"$1\" | tar -xO --wildcards '*.tar' 2>/dev/null | tar -ti",
            "-",
            &image,
        ])
        .output()
        .unwrap();
    let files = String::from_utf8_lossy(&files.stdout).into_owned();
    let mut listed: Vec<&str> = files.lines().map(|l| l.trim_end_matches('/')).collect();
    listed.sort_unstable();
    listed.dedup();
    assert_eq!(
        listed,
        [
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/ghcache",
            "var",
            "var/lib",
            "var/lib/ghcache"
        ],
        "unexpected files in the image"
    );

    let hub = FakeHub::start(&format!("127.0.0.1:{}", free_port_on("127.0.0.1")));
    let upstream = hub.url.replace("127.0.0.1", "ghcache-fake.test");
    let state = state_dir();
    let state_path = state.path().to_str().unwrap();
    let name = format!("ghcache-e2e-dns-{}", std::process::id());
    let _cleanup = Cleanup::container(&name);
    let addr = format!("127.0.0.1:{}", free_port_on("127.0.0.1"));
    sh(&[
        "docker",
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--add-host",
        "ghcache-fake.test:127.0.0.1",
        "-v",
        &format!("{state_path}:{state_path}"),
        "-e",
        &format!("GHCACHE_STATE_DIR={state_path}"),
        "-e",
        &format!("GHCACHE_PROXY_ADDR={addr}"),
        "-e",
        "CACHE_ENABLE_P2P=false",
        &image,
        "daemon",
        "--upstream",
        &upstream,
    ]);
    let mut job = Job::new("runner-dns");
    job.env
        .insert("GHCACHE_API_URL".into(), format!("http://{addr}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker::inspect(&name, "{{.State.Running}}").as_deref() == Some("true")
        && !job
            .run(
                "curl -sf -o /dev/null \"$GHCACHE_API_URL/_ghcache/health\"",
                &[],
            )
            .success
    {
        assert!(Instant::now() < deadline, "the daemon never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get_through_proxy(&mut job, &hub.alice, REPO_PATH), "MISS");
    assert_eq!(get_through_proxy(&mut job, &hub.alice, REPO_PATH), "HIT");
}
