//! The Docker engine and the image under test.

use std::process::{Command, Stdio};

/// The image the tests run: `GHCACHE_TEST_IMAGE`, else `ghcache:dev` as
/// `scripts/build-image` tags it (`scripts/test` rebuilds it before the
/// tests; a missing one is built here).
pub fn image() -> String {
    let tag = std::env::var("GHCACHE_TEST_IMAGE").unwrap_or_else(|_| "ghcache:dev".into());
    let present = Command::new("docker")
        .args(["image", "inspect", &tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let status = Command::new(super::repo().join("scripts/build-image"))
            .arg(&tag)
            .current_dir(super::repo())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/build-image {tag} failed");
    }
    tag
}

/// A state directory owned by the image's user, as an operator would
/// prepare it (`install -d -o 65532 -g 65532 -m 0700`).
pub fn state_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    super::sh(&["chown", "65532:65532", path]);
    super::sh(&["chmod", "0700", path]);
    dir
}

/// The setup-github-cache inputs of a test's own daemon: the image, the
/// state directory, the container name and the proxy port.
pub fn daemon_inputs(
    image: &str,
    state: &std::path::Path,
    name: &str,
    port: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("image", image.to_owned()),
        ("state-dir", state.display().to_string()),
        ("container-name", name.to_owned()),
        ("port", port.to_owned()),
    ]
}

/// A Docker engine answers.
pub fn engine() -> Result<(), String> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map_err(|e| format!("no docker CLI: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "no Docker engine answers (scripts/test starts dockerd): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `docker inspect --format FORMAT NAME`, or None when it does not exist.
pub fn inspect(name: &str, format: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["container", "inspect", "--format", format, name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes the named containers (and images) when dropped.
#[derive(Default)]
pub struct Cleanup {
    pub containers: Vec<String>,
    pub images: Vec<String>,
}

impl Cleanup {
    pub fn container(name: &str) -> Cleanup {
        Cleanup {
            containers: vec![name.to_owned()],
            images: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for image in &self.images {
            let _ = Command::new("docker")
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
