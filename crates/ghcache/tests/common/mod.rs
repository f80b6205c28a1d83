//! Running the real `ghcache` binary as a daemon in tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    /// The proxy's base URL, from the daemon's own "ready" event.
    pub base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ghcache daemon` with a clean environment, JSON logs and the given
/// environment and arguments.
pub fn daemon_command(
    state: &Path,
    upstream: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghcache"));
    cmd.args(["--log-format", "json", "--state-dir"])
        .arg(state)
        .args([
            "daemon",
            "--proxy-addr",
            "127.0.0.1:0",
            "--upstream",
            upstream,
        ])
        .args(extra)
        .current_dir(state)
        .env_clear()
        .env("HOME", state)
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts a daemon and waits for its "ready" log event (no sleeping).
pub fn start(cmd: Command) -> Daemon {
    start_logging(cmd).0
}

/// [`start`], also returning the JSON log events before "ready".
pub fn start_logging(cmd: Command) -> (Daemon, Vec<serde_json::Value>) {
    try_start_logging(cmd).unwrap_or_else(|said| panic!("{said}"))
}

/// [`start_logging`], or — when the daemon exits before it is ready —
/// everything it said and how it ended.
pub fn try_start_logging(mut cmd: Command) -> Result<(Daemon, Vec<serde_json::Value>), String> {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    // Bytes, not `lines()`: a line that is not UTF-8 is still shown.
    let mut lines = BufReader::new(stderr).split(b'\n');
    let mut before_ready = Vec::new();
    let mut said = Vec::new();
    let base = loop {
        let Some(line) = lines.next() else {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!(
                "daemon exited before it was ready ({status}); it said:\n{}",
                said.join("\n")
            ));
        };
        let line = String::from_utf8_lossy(&line.unwrap()).into_owned();
        said.push(line.clone());
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(proxy) = event["fields"]["proxy"].as_str() {
            break proxy.to_owned();
        }
        before_ready.push(event);
    };
    // Keep draining stderr so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((Daemon { child, base }, before_ready))
}

/// A loopback TCP port free right now (and its UDP twin, for QUIC).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A TCP port free on `ip` right now (and its UDP twin, for QUIC).
pub fn free_port_on(ip: &str) -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// Polls `check` until it holds, failing after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `ghcache doctor` against the daemon at `base`: (exit code, stdout + stderr).
pub fn doctor(base: &str, state: &Path) -> (Option<i32>, String) {
    ask(base, state, "doctor")
}

/// `ghcache COMMAND --proxy-addr …` (a client command: `doctor`, `peers`,
/// `stats`) against the daemon at `base`: (exit code, stdout + stderr).
pub fn ask(base: &str, state: &Path, command: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"))
        .args(["--state-dir"])
        .arg(state)
        .args([command, "--proxy-addr", base.trim_start_matches("http://")])
        .current_dir(state)
        .env_clear()
        .env("HOME", state)
        // Never the internet: without a daemon, doctor checks this upstream.
        .env("GHCACHE_UPSTREAM", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), shown)
}

/// `ghcache fakehub` printing its tokens; alice's is kept. Killed on drop.
pub struct FakeHub {
    child: Child,
    pub url: String,
    pub alice: String,
}

impl FakeHub {
    /// On `addr` of this host.
    pub fn start(addr: &str) -> FakeHub {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghcache"));
        cmd.args(["-q", "fakehub", "--addr", addr]);
        FakeHub::spawn(cmd, addr)
    }

    /// From a prepared `… ghcache -q fakehub --addr ADDR` command (e.g.
    /// inside a network namespace).
    pub fn spawn(mut cmd: Command, addr: &str) -> FakeHub {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let alice = loop {
            let line = lines.next().expect("fakehub exited").unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) == Some(&"user:alice") {
                break fields[2].to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        FakeHub {
            child,
            url: format!("http://{addr}"),
            alice,
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A prerequisite check: Ok, or why not. Under `CI=true` a missing
/// prerequisite fails the test; elsewhere it skips with the reason.
pub fn require(what: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI cannot run {what}: {why}"
            );
            eprintln!("skipping {what}: {why}");
            false
        }
    }
}

/// A daemon joining the mesh of `registry` with `secret`, on loopback.
pub fn mesh_daemon(
    state: &std::path::Path,
    registry: &std::path::Path,
    upstream: &str,
    secret: &str,
) -> Daemon {
    mesh_daemon_with(state, registry, upstream, secret, &[])
}

/// [`mesh_daemon`] with more environment.
pub fn mesh_daemon_with(
    state: &std::path::Path,
    registry: &std::path::Path,
    upstream: &str,
    secret: &str,
    extra_env: &[(&str, &str)],
) -> Daemon {
    // A port free when picked can be taken by another test before the
    // daemon binds it: that (and only that) earns another port.
    let mut attempts = 0;
    loop {
        let port = free_port().to_string();
        let mut env = vec![
            ("GHCACHE_CLUSTER_SECRET", secret),
            ("GHCACHE_P2P_LISTEN_IP", "127.0.0.1"),
            ("CACHE_LISTEN_PORT", &port),
            ("GHCACHE_REGISTRY_DIR", registry.to_str().unwrap()),
            ("GHCACHE_MDNS", "false"),
            // These tests are about sharing, not latency: a loaded CI machine
            // running debug builds can miss the 50 ms production deadline,
            // which correctly falls back to upstream. The deadline itself is
            // tested in ghcache-mesh.
            ("GHCACHE_PEER_DEADLINE_MS", "3000"),
        ];
        env.extend_from_slice(extra_env);
        match try_start_logging(daemon_command(state, upstream, &env, &[])) {
            Ok((daemon, _)) => return daemon,
            Err(said) if attempts < 3 && said.contains("Address already in use") => {
                attempts += 1;
            }
            Err(said) => panic!("{said}"),
        }
    }
}

/// A command's stdout and stderr, for assertions and failure messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of a row of a Markdown table (a job summary's).
pub fn row(markdown: &str, name: &str) -> String {
    let line = markdown
        .lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{markdown}"));
    line.split('|').nth(2).unwrap().trim().to_owned()
}

/// The daemon's `/_ghcache/peers` document.
pub async fn peers(client: &reqwest::Client, daemon: &Daemon) -> serde_json::Value {
    client
        .get(format!("{}/_ghcache/peers", daemon.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub fn is_root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    if uid == "0" {
        Ok(())
    } else {
        Err(format!("needs root (uid is {uid})"))
    }
}

/// Whether `tool` runs (`tool arg`, e.g. `ip -V`).
pub fn have_tool(tool: &str, arg: &str) -> Result<(), String> {
    let ok = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!("`{tool}` is not installed"))
    }
}
