//! The skip decision on real git repositories made by the tests, with the
//! daemon's service over a real redb store in-process.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ghcache_codeql::api::{LookupRequest, LookupResponse};
use ghcache_codeql::{
    AnalysisSource, CheckOptions, CodeqlService, Decision, FleetFuture, RawInputs, Reason,
    decide_after_lookup, load_config, prepare_save,
};

use ghcache_core::{ContentId, PartitionSecret};
use ghcache_store::{Store, StoreConfig};

use ghcache_codeql::testing::{Repo, SARIF, analysis_dir, git_cli};

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: Repo,
    service: Arc<CodeqlService>,
    sarif_out: PathBuf,
    sarif_in: PathBuf,
}

fn fixture() -> Option<Fixture> {
    let git = git_cli()?;
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&git, &tmp.path().join("repo"));
    let store = Arc::new(Store::open(&tmp.path().join("store"), StoreConfig::default()).unwrap());
    let service = Arc::new(CodeqlService::new(store, PartitionSecret::generate()));
    let sarif_in = analysis_dir(&tmp.path().join("analysis"));
    Some(Fixture {
        sarif_out: tmp.path().join("restored"),
        sarif_in,
        repo,
        service,
        _tmp: tmp,
    })
}

fn raw(languages: &str) -> RawInputs {
    RawInputs {
        repository: "octo/app".into(),
        languages: languages.into(),
        codeql_version: "2.19.3".into(),
        ..RawInputs::default()
    }
}

impl Fixture {
    fn options(&self, root: &Path) -> CheckOptions {
        CheckOptions {
            source_root: root.into(),
            sarif_dir: self.sarif_out.clone(),
            max_age: Duration::from_secs(7 * 86400),
            force: false,
            event: "push".into(),
            never_skip_events: vec!["schedule".into(), "workflow_dispatch".into()],
            max_ancestors: 50,
        }
    }

    fn save_at(&self, raw: &RawInputs, root: &Path, age_secs: u64) {
        let mut raw = raw.clone();
        load_config(&mut raw, root);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let request = prepare_save(&raw, root, &self.sarif_in, 240, now - age_secs).unwrap();
        self.service.save(&request).unwrap();
    }

    fn save(&self, raw: &RawInputs) {
        self.save_at(raw, &self.repo.dir, 0);
    }

    async fn check_with(
        &self,
        raw: &RawInputs,
        options: &CheckOptions,
        source: &dyn AnalysisSource,
    ) -> Decision {
        let mut raw = raw.clone();
        load_config(&mut raw, &options.source_root);
        decide_after_lookup(&raw, options, source).await
    }

    async fn check(&self, raw: &RawInputs) -> Decision {
        let options = self.options(&self.repo.dir);
        self.check_with(raw, &options, self.service.as_ref()).await
    }
}

fn assert_reason(d: &Decision, reason: Reason) {
    assert_eq!(d.reason, Some(reason), "{d:#?}");
    assert_eq!(d.skip, reason.is_skip(), "{d:#?}");
}

#[tokio::test]
async fn exact_hit_skips_and_restores_the_sarif() {
    let Some(f) = fixture() else { return };
    let head = f.repo.commit(&[("src/app.py", "print(1)\n")], "one");
    let inputs = raw("python");
    assert_reason(&f.check(&inputs).await, Reason::NoAnalysis);
    f.save(&inputs);
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::IdenticalTree);
    assert_eq!(d.analysed_commit, head);
    assert_eq!(d.time_saved_secs, 240);
    let restored = std::fs::read_to_string(f.sarif_out.join("python.sarif")).unwrap();
    assert_eq!(restored, SARIF);
}

#[tokio::test]
async fn docs_only_change_is_skipped_and_source_change_scanned() {
    let Some(f) = fixture() else { return };
    let analysed = f
        .repo
        .commit(&[("src/app.py", "print(1)\n"), ("README.md", "a")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    f.repo
        .commit(&[("README.md", "b"), ("docs/guide.md", "c")], "docs");
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::NoRelevantChanges);
    assert_eq!(d.analysed_commit, analysed);
    assert_eq!(d.ancestors_walked, 1);
    assert!(
        d.diff
            .irrelevant_sample
            .contains(&"docs/guide.md".to_owned())
    );
    f.repo.commit(&[("src/app.py", "print(2)\n")], "source");
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::RelevantChanges);
    assert_eq!(d.diff.first_relevant.as_deref(), Some("src/app.py"));
    assert!(d.sarif_path.is_empty());
}

#[tokio::test]
async fn build_file_change_is_scanned_for_a_compiled_language_only() {
    let Some(f) = fixture() else { return };
    f.repo
        .commit(&[("src/a.cpp", "int main(){}\n"), ("app.py", "1")], "one");
    let cpp = raw("cpp");
    let python = raw("python");
    f.save(&cpp);
    f.save(&python);
    f.repo
        .commit(&[("CMakeLists.txt", "project(x)\n")], "build");
    let d = f.check(&cpp).await;
    assert_reason(&d, Reason::RelevantChanges);
    assert_eq!(d.diff.first_relevant.as_deref(), Some("CMakeLists.txt"));
    assert_reason(&f.check(&python).await, Reason::NoRelevantChanges);
}

#[tokio::test]
async fn a_changed_config_or_key_input_never_skips() {
    let Some(f) = fixture() else { return };
    f.repo.commit(
        &[
            ("src/app.py", "1"),
            (".github/codeql/config.yml", "paths-ignore: [docs]\n"),
        ],
        "one",
    );
    let mut inputs = raw("python");
    inputs.config_file = ".github/codeql/config.yml".into();
    f.save(&inputs);
    assert_reason(&f.check(&inputs).await, Reason::IdenticalTree);
    for change in [
        |r: &mut RawInputs| r.queries = "security-extended".into(),
        |r: &mut RawInputs| r.codeql_version = "2.20.0".into(),
        |r: &mut RawInputs| r.build_mode = "none".into(),
        |r: &mut RawInputs| r.category = "/language:python".into(),
        |r: &mut RawInputs| r.languages = "python,go".into(),
    ] {
        let mut changed = inputs.clone();
        change(&mut changed);
        assert_reason(&f.check(&changed).await, Reason::NoAnalysis);
    }
    f.repo.commit(
        &[(".github/codeql/config.yml", "paths-ignore: [docs, test]\n")],
        "config",
    );
    assert_reason(&f.check(&inputs).await, Reason::NoAnalysis);
    // A config file that cannot be read is an unknown input.
    let mut missing = inputs.clone();
    missing.config_file = "nope.yml".into();
    assert_reason(&f.check(&missing).await, Reason::UnknownInput);
}

#[tokio::test]
async fn paths_ignore_is_honoured_only_where_codeql_honours_it() {
    let Some(f) = fixture() else { return };
    f.repo.commit(
        &[
            ("src/App.java", "class App {}"),
            ("src/app.py", "1"),
            ("codeql.yml", "paths-ignore:\n  - vendor\n"),
        ],
        "one",
    );
    let with_config = |languages: &str, mode: &str| {
        let mut r = raw(languages);
        r.config_file = "codeql.yml".into();
        r.build_mode = mode.into();
        r
    };
    let python = with_config("python", "");
    let java_built = with_config("java", "autobuild");
    let java_no_build = with_config("java", "none");
    for inputs in [&python, &java_built, &java_no_build] {
        f.save(inputs);
    }
    f.repo.commit(
        &[("vendor/lib.py", "2"), ("vendor/Lib.java", "class Lib {}")],
        "vendor",
    );
    assert_reason(&f.check(&python).await, Reason::NoRelevantChanges);
    assert_reason(&f.check(&java_built).await, Reason::RelevantChanges);
    assert_reason(&f.check(&java_no_build).await, Reason::NoRelevantChanges);
}

#[tokio::test]
async fn max_age_expires_analyses() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1")], "one");
    let inputs = raw("python");
    f.save_at(&inputs, &f.repo.dir.clone(), 8 * 86400);
    assert_reason(&f.check(&inputs).await, Reason::Expired);
    let mut options = f.options(&f.repo.dir);
    options.max_age = Duration::from_secs(9 * 86400);
    assert_reason(
        &f.check_with(&inputs, &options, f.service.as_ref()).await,
        Reason::IdenticalTree,
    );
}

#[tokio::test]
async fn force_and_never_skip_events_scan() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    let mut options = f.options(&f.repo.dir);
    options.force = true;
    assert_reason(
        &f.check_with(&inputs, &options, f.service.as_ref()).await,
        Reason::Forced,
    );
    let mut options = f.options(&f.repo.dir);
    options.event = "schedule".into();
    assert_reason(
        &f.check_with(&inputs, &options, f.service.as_ref()).await,
        Reason::NeverSkipEvent,
    );
    options.event = "pull_request".into();
    assert_reason(
        &f.check_with(&inputs, &options, f.service.as_ref()).await,
        Reason::IdenticalTree,
    );
}

/// A source that answers lookups from the service but tampers with bundles.
struct Tampering<'a> {
    inner: &'a CodeqlService,
    bundle: Option<Bytes>,
}

impl AnalysisSource for Tampering<'_> {
    fn lookup(&self, request: LookupRequest) -> FleetFuture<'_, Result<LookupResponse, String>> {
        Box::pin(async move { self.inner.lookup(&request).await.map_err(|e| e.to_string()) })
    }
    fn bundle(&self, _: ContentId) -> FleetFuture<'_, Result<Option<Bytes>, String>> {
        let bundle = self.bundle.clone();
        Box::pin(async move { Ok(bundle) })
    }
}

#[tokio::test]
async fn corrupt_or_missing_sarif_scans_with_a_warning() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    let options = f.options(&f.repo.dir);
    let corrupt = Tampering {
        inner: &f.service,
        bundle: Some(Bytes::from_static(b"\x1f\x8b garbage")),
    };
    let d = f.check_with(&inputs, &options, &corrupt).await;
    assert_reason(&d, Reason::CorruptSarif);
    assert!(d.warnings.iter().any(|w| w.contains("refused")), "{d:#?}");
    assert!(!f.sarif_out.join("python.sarif").exists());
    let missing = Tampering {
        inner: &f.service,
        bundle: None,
    };
    let d = f.check_with(&inputs, &options, &missing).await;
    assert_reason(&d, Reason::SarifMissing);
    assert!(!d.warnings.is_empty());
}

#[tokio::test]
async fn a_shallow_clone_allows_exact_hits_only_and_says_why() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    f.repo.commit(&[("README.md", "docs")], "docs");
    let shallow = f.repo.dir.parent().unwrap().join("shallow");
    f.repo.clone_to(&shallow, Some(1));
    let options = f.options(&shallow);
    let d = f.check_with(&inputs, &options, f.service.as_ref()).await;
    assert_reason(&d, Reason::ShallowClone);
    assert!(
        d.warnings.iter().any(|w| w.contains("shallow clone")),
        "{d:#?}"
    );
    // The full clone skips the same change.
    assert_reason(&f.check(&inputs).await, Reason::NoRelevantChanges);
    // An analysis of the shallow HEAD itself is an exact hit there.
    f.save(&inputs);
    assert_reason(
        &f.check_with(&inputs, &options, f.service.as_ref()).await,
        Reason::IdenticalTree,
    );
}

#[tokio::test]
async fn renames_count_on_both_sides() {
    let Some(f) = fixture() else { return };
    f.repo.commit(
        &[
            ("src/app.py", "x = 1\n"),
            ("notes/a.txt", "print(1)\n"),
            ("README.md", "r"),
        ],
        "one",
    );
    let inputs = raw("python");
    f.save(&inputs);
    // A relevant file renamed to an irrelevant name: its old side counts.
    f.repo.run(&["mv", "src/app.py", "src/app.txt"]);
    f.repo.commit(&[], "rename away");
    assert_reason(&f.check(&inputs).await, Reason::RelevantChanges);
    f.repo.run(&["reset", "-q", "--hard", "HEAD~1"]);
    // An irrelevant file renamed to a relevant name: its new side counts.
    f.repo.run(&["mv", "notes/a.txt", "notes/a.py"]);
    f.repo.commit(&[], "rename in");
    assert_reason(&f.check(&inputs).await, Reason::RelevantChanges);
    f.repo.run(&["reset", "-q", "--hard", "HEAD~1"]);
    f.repo.run(&["mv", "README.md", "GUIDE.md"]);
    f.repo.commit(&[], "docs move");
    assert_reason(&f.check(&inputs).await, Reason::NoRelevantChanges);
}

#[tokio::test]
async fn a_merge_commit_is_compared_with_its_first_parent() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1"), ("README.md", "r")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    f.repo.run(&["checkout", "-q", "-b", "feature"]);
    f.repo.commit(&[("feature.py", "2")], "feature");
    f.repo.run(&["checkout", "-q", "main"]);
    f.repo
        .run(&["merge", "-q", "--no-ff", "-m", "merge feature", "feature"]);
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::RelevantChanges);
    assert_eq!(d.diff.first_relevant.as_deref(), Some("feature.py"));
    f.save(&inputs);
    f.repo.run(&["checkout", "-q", "-b", "docs"]);
    f.repo.commit(&[("README.md", "new")], "docs");
    f.repo.run(&["checkout", "-q", "main"]);
    f.repo
        .run(&["merge", "-q", "--no-ff", "-m", "merge docs", "docs"]);
    assert_reason(&f.check(&inputs).await, Reason::NoRelevantChanges);
}

#[tokio::test]
async fn a_dirty_worktree_scans_and_is_not_saved() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1"), ("README.md", "r")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    f.repo.write("README.md", "irrelevant edit");
    assert_reason(&f.check(&inputs).await, Reason::IdenticalTree);
    f.repo.write("app.py", "2");
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::DirtyWorktree);
    assert_eq!(d.dirty_files, vec!["app.py".to_owned()]);
    let err = prepare_save(&inputs, &f.repo.dir, &f.sarif_in, 1, 0).unwrap_err();
    assert!(err.contains("app.py"), "{err}");
}

#[tokio::test]
async fn a_huge_diff_is_walked_in_bounded_memory() {
    let Some(f) = fixture() else { return };
    f.repo.commit(&[("app.py", "1")], "one");
    let inputs = raw("python");
    f.save(&inputs);
    for dir in 0..100 {
        for file in 0..200 {
            f.repo.write(&format!("docs/{dir}/{file}.md"), "x");
        }
    }
    f.repo.commit(&[], "20k docs");
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::NoRelevantChanges);
    assert_eq!(d.diff.files_seen, 20_000);
    assert_eq!(d.diff.irrelevant_sample.len(), 20);
    // One relevant file among them stops the walk at it.
    f.repo.commit(&[("docs/0/conf.py", "1")], "one relevant");
    let d = f.check(&inputs).await;
    assert_reason(&d, Reason::RelevantChanges);
    assert!(d.diff.files_seen < 20_000, "{}", d.diff.files_seen);
}
