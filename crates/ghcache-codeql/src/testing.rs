//! Test support (feature `test-util`): real git repositories built with the
//! git CLI (ghcache itself reads them with gix and needs no git binary).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small SARIF log with one result per level given.
pub const SARIF: &str = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"CodeQL"}},"results":[{"level":"error","message":{"text":"x"}}]}]}"#;

/// A packed bundle of `files` exactly as given, unchecked: what a hostile
/// runner or member might send.
pub fn pack_unchecked(files: &[(&str, &[u8])]) -> bytes::Bytes {
    crate::bundle::pack_files(files.iter().copied()).unwrap()
}

/// The git CLI. Under `CI=true` its absence fails the test; elsewhere the
/// caller skips, saying so.
pub fn git_cli() -> Option<PathBuf> {
    for candidate in ["/usr/local/bin/git", "/usr/bin/git"] {
        if Path::new(candidate).exists() {
            return Some(candidate.into());
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the git CLI is required to build test repositories (scripts/test installs it)");
    }
    eprintln!("SKIPPED: no git CLI on this machine");
    None
}

/// A repository in a directory, driven through the git CLI.
#[derive(Debug, Clone)]
pub struct Repo {
    pub git: PathBuf,
    pub dir: PathBuf,
}

impl Repo {
    /// `git init -b main` in `dir` (created).
    pub fn init(git: &Path, dir: &Path) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        let repo = Repo {
            git: git.into(),
            dir: dir.into(),
        };
        repo.run(&["init", "-q", "-b", "main"]);
        repo
    }

    /// Runs git in the repository with a fixed identity; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.git)
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn write(&self, path: &str, contents: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    /// Writes the files and commits everything; returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, contents) in files {
            self.write(path, contents);
        }
        self.run(&["add", "-A"]);
        self.run(&["commit", "-q", "--allow-empty", "-m", message]);
        self.run(&["rev-parse", "HEAD"])
    }

    /// `git clone` of this repository into `dir` (`--depth N` when given).
    pub fn clone_to(&self, dir: &Path, depth: Option<u32>) -> Repo {
        let url = format!("file://{}", self.dir.display());
        let mut args = vec!["clone".to_owned(), "-q".to_owned()];
        if let Some(depth) = depth {
            args.extend(["--depth".to_owned(), depth.to_string()]);
        }
        args.extend([url, dir.display().to_string()]);
        let status = Command::new(&self.git).args(&args).status().unwrap();
        assert!(status.success(), "git {args:?}");
        Repo {
            git: self.git.clone(),
            dir: dir.into(),
        }
    }
}

/// A directory holding `python.sarif` (an analysis's output).
pub fn analysis_dir(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("python.sarif"), SARIF).unwrap();
    dir.into()
}
