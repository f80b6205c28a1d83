//! Runs the repository's composite actions the way the GitHub runner does,
//! for the action tests: `action.yml` parsed with serde_yaml, `${{ … }}`
//! resolved from the inputs (with their defaults), `github`, `env`,
//! `runner` and `steps` contexts, each `run:` written to a script under
//! RUNNER_TEMP and run with `bash --noprofile --norc -e -o pipefail`, fresh
//! file-command files per step, read back with the runner's own parsing
//! rules (`ghcache_actions::parse_file_commands`). Also: Docker and
//! fake-GitHub helpers shared by the test files.
#![allow(dead_code, clippy::unwrap_used)]

pub mod docker;
pub mod runner;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
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

/// `tool version_flag` runs and succeeds.
pub fn have_tool(tool: &str, version_flag: &str) -> Result<(), String> {
    let ok = Command::new(tool)
        .arg(version_flag)
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

/// Runs a command, panicking with its stderr on failure; returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A free TCP port on `ip` (bound and released; the tests own this host).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
