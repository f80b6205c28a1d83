//! The pinned npm material (`tests/npm`: http-cache-tests, @octokit/fixtures)
//! and Node processes. `scripts/test` installs it with `npm ci`; outside CI
//! a missing Node or package skips with the reason, under `CI=true` it fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// `tests/npm` when Node and the installed packages are there.
pub fn material(package: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    let why = if Command::new("node").arg("--version").output().is_err() {
        Some("node is not installed".to_owned())
    } else if !dir.join("node_modules").join(package).is_dir() {
        Some(format!(
            "{package} is not installed (run `npm ci` in {})",
            dir.display()
        ))
    } else {
        None
    };
    match why {
        None => Some(dir),
        Some(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI cannot run this conformance test: {why}"
            );
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// A Node process killed when dropped.
pub struct NodeProcess(pub Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the http-cache-tests origin on a free loopback port; returns it
/// with its base URL once it listens.
pub fn start_cache_tests_origin(
    dir: &std::path::Path,
    pidfile: &std::path::Path,
) -> (NodeProcess, String) {
    let mut child = Command::new("node")
        .arg("node_modules/http-cache-tests/server/server.mjs")
        .current_dir(dir)
        .env("npm_config_protocol", "http")
        .env("npm_config_port", "0")
        .env("npm_config_pidfile", pidfile)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the http-cache-tests origin");
    let stdout = child.stdout.take().unwrap();
    let process = NodeProcess(child);
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep draining: the origin logs exchanges of dumped tests.
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            eprintln!("origin: {line}");
        }
    });
    // "Listening on http://[::]:PORT/"
    let port: u16 = line
        .trim()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected origin banner {line:?}"));
    (process, format!("http://127.0.0.1:{port}"))
}
