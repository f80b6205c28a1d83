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
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
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
