//! Decision time of `ghcache codeql check` (the library part: walk, keys,
//! lookup in a real store, diff, dirty check, SARIF restore) on a generated
//! repository of 10,000 files and 1,000 commits.
//!
//! `cargo bench -p ghcache-codeql --bench decision` (needs the git CLI to
//! generate the repository; ghcache reads it with gix). Prints min, median
//! and max over 20 runs of each scenario. Run by the test suite (no
//! `--bench`), it checks the same scenarios on a small repository instead.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use ghcache_codeql::api::{AnalysisRecord, SaveRequest};
use ghcache_codeql::{
    AnalysisKey, CheckOptions, Checkout, CodeqlService, RawInputs, Reason, SarifBundle, SarifFile,
    decide_after_lookup,
};
use ghcache_core::{ContentId, PartitionSecret};
use ghcache_store::{Store, StoreConfig};

/// Repository size and runs: (files, commits, runs).
const FULL: (usize, usize, usize) = (10_000, 1_000, 20);
const SMOKE: (usize, usize, usize) = (200, 60, 2);

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// One commit with 10,000 files (half Python, half Markdown), then 999
/// commits each changing one Markdown file, through `git fast-import`.
fn generate(dir: &Path, (files_count, commits): (usize, usize)) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = std::io::BufWriter::new(child.stdin.take().unwrap());
    for commit in 0..commits {
        writeln!(stream, "commit refs/heads/main").unwrap();
        writeln!(
            stream,
            "committer bench <bench@example.com> {} +0000",
            1_700_000_000 + commit
        )
        .unwrap();
        writeln!(stream, "data 6\ncommit").unwrap();
        let mut files: Vec<(String, String)> = Vec::new();
        if commit == 0 {
            for i in 0..files_count {
                let (dir, ext) = if i % 2 == 0 {
                    ("src", "py")
                } else {
                    ("docs", "md")
                };
                files.push((
                    format!("{dir}/{}/f{i}.{ext}", i % 100),
                    format!("x = {i}\n"),
                ));
            }
        } else {
            files.push((
                format!("docs/{}/f{}.md", commit % 100, (commit % 100) * 2 + 1),
                format!("edit {commit}\n"),
            ));
        }
        for (path, contents) in files {
            writeln!(
                stream,
                "M 644 inline {path}\ndata {}\n{contents}",
                contents.len()
            )
            .unwrap();
        }
    }
    drop(stream);
    assert!(child.wait().unwrap().success());
    git(dir, &["reset", "-q", "--hard", "main"]);
}

fn save_at(service: &CodeqlService, raw: &RawInputs, root: &Path, ancestor: usize) {
    let inputs = raw.validate().unwrap();
    let chain = Checkout::open(root)
        .unwrap()
        .first_parent_chain(ancestor)
        .unwrap();
    let at = &chain.commits[ancestor];
    let file = SarifFile::new(
        "python.sarif",
        br#"{"version":"2.1.0","runs":[{"results":[]}]}"#.to_vec(),
    )
    .unwrap();
    let bundle = SarifBundle::new(vec![file]).unwrap();
    let packed = bundle.pack().unwrap();
    let record = AnalysisRecord {
        key: AnalysisKey::compute(&inputs, &at.tree),
        repository: inputs.repository.clone(),
        commit: at.commit.clone(),
        tree: at.tree.clone(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        duration_secs: 600,
        codeql_version: inputs.codeql_version.clone(),
        languages: vec!["python".into()],
        category: String::new(),
        results: Default::default(),
        bundle_cid: ContentId::of(&packed).to_string(),
        bundle_len: packed.len() as u64,
        files: vec!["python.sarif".into()],
    };
    let bundle = base64::engine::general_purpose::STANDARD.encode(&packed);
    service.save(&SaveRequest { record, bundle }).unwrap();
}

fn service(dir: &Path) -> CodeqlService {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    CodeqlService::new(store, PartitionSecret::generate())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The test harness protocol (cargo test / nextest list targets first).
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("decision: test");
        }
        return;
    }
    let (files, commits, runs) = if args.iter().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    if ghcache_codeql::testing::git_cli().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let started = Instant::now();
    generate(&repo, (files, commits));
    println!(
        "generated {files} files, {commits} commits in {:?}",
        started.elapsed()
    );
    let raw = RawInputs {
        repository: "bench/repo".into(),
        languages: "python".into(),
        codeql_version: "2.19.3".into(),
        ..RawInputs::default()
    };
    let exact = service(&tmp.path().join("store-exact"));
    save_at(&exact, &raw, &repo, 0);
    let walk = service(&tmp.path().join("store-walk"));
    save_at(&walk, &raw, &repo, 50);
    let options = CheckOptions {
        source_root: repo.clone(),
        sarif_dir: tmp.path().join("sarif"),
        max_age: Duration::from_secs(7 * 86_400),
        force: false,
        event: "push".into(),
        never_skip_events: vec![],
        max_ancestors: 50,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "scenario", "min", "median", "max"
    );
    for (name, service, reason) in [
        ("identical-tree hit", &exact, Reason::IdenticalTree),
        (
            "50-ancestor walk, docs-only diff",
            &walk,
            Reason::NoRelevantChanges,
        ),
    ] {
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let d = runtime.block_on(decide_after_lookup(&raw, &options, service));
                let elapsed = t.elapsed();
                assert_eq!(d.reason, Some(reason), "{d:#?}");
                elapsed
            })
            .collect();
        times.sort();
        println!(
            "{name:<34} {:>7.1}ms {:>7.1}ms {:>7.1}ms",
            times[0].as_secs_f64() * 1e3,
            times[runs / 2].as_secs_f64() * 1e3,
            times[runs - 1].as_secs_f64() * 1e3
        );
    }
}
