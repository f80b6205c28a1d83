//! The skip decision, safe first: force and never-skip events scan; unknown
//! inputs scan; an exact key younger than `max-age` skips; an analysed
//! first-parent ancestor whose changes since are all irrelevant skips;
//! anything else scans. A skip stands only once its SARIF is restored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::ContentId;

use crate::api::{AnalysisRecord, LookupRequest, LookupResponse, SaveRequest};
use crate::bundle::SarifBundle;
use crate::git::{Checkout, DiffSummary};
use crate::inputs::{Inputs, RawInputs};
use crate::key::AnalysisKey;
use crate::relevance::{ConfigFilters, Relevance};
use crate::service::{CodeqlService, FleetFuture};

/// Why a scan was skipped or run; `label()` is the `reason` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    IdenticalTree,
    NoRelevantChanges,
    Forced,
    NeverSkipEvent,
    UnknownInput,
    NotARepository,
    DirtyWorktree,
    NoDaemon,
    NoAnalysis,
    ShallowClone,
    Expired,
    RelevantChanges,
    SarifMissing,
    CorruptSarif,
}

impl Reason {
    const ALL: [Reason; 14] = [
        Reason::IdenticalTree,
        Reason::NoRelevantChanges,
        Reason::Forced,
        Reason::NeverSkipEvent,
        Reason::UnknownInput,
        Reason::NotARepository,
        Reason::DirtyWorktree,
        Reason::NoDaemon,
        Reason::NoAnalysis,
        Reason::ShallowClone,
        Reason::Expired,
        Reason::RelevantChanges,
        Reason::SarifMissing,
        Reason::CorruptSarif,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::IdenticalTree => "identical-tree",
            Reason::NoRelevantChanges => "no-relevant-changes",
            Reason::Forced => "forced",
            Reason::NeverSkipEvent => "never-skip-event",
            Reason::UnknownInput => "unknown-input",
            Reason::NotARepository => "not-a-repository",
            Reason::DirtyWorktree => "dirty-worktree",
            Reason::NoDaemon => "no-daemon",
            Reason::NoAnalysis => "no-analysis",
            Reason::ShallowClone => "shallow-clone",
            Reason::Expired => "expired",
            Reason::RelevantChanges => "relevant-changes",
            Reason::SarifMissing => "sarif-missing",
            Reason::CorruptSarif => "corrupt-sarif",
        }
    }

    pub fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.label() == label)
    }

    pub fn is_skip(self) -> bool {
        matches!(self, Reason::IdenticalTree | Reason::NoRelevantChanges)
    }
}

/// Where analyses are looked up: the daemon's control API, or (in tests
/// and in-process) a [`CodeqlService`].
pub trait AnalysisSource: Send + Sync {
    fn lookup(&self, request: LookupRequest) -> FleetFuture<'_, Result<LookupResponse, String>>;
    fn bundle(&self, cid: ContentId) -> FleetFuture<'_, Result<Option<Bytes>, String>>;
}

impl AnalysisSource for CodeqlService {
    fn lookup(&self, request: LookupRequest) -> FleetFuture<'_, Result<LookupResponse, String>> {
        Box::pin(async move {
            CodeqlService::lookup(self, &request)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn bundle(&self, cid: ContentId) -> FleetFuture<'_, Result<Option<Bytes>, String>> {
        Box::pin(async move { Ok(CodeqlService::bundle(self, &cid).await) })
    }
}

/// The `max-age` input: an analysis up to a year old may be reused (the
/// relevance diff still decides); `0` reuses nothing.
pub const MAX_AGE_LIMITS: ghcache_core::DurationLimits = ghcache_core::DurationLimits {
    max: Duration::from_secs(365 * 86_400),
    max_name: "365-day",
    allow_zero: true,
};

/// Options of a check besides the key inputs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub source_root: PathBuf,
    pub sarif_dir: PathBuf,
    pub max_age: Duration,
    pub force: bool,
    /// The event that triggered the run (`GITHUB_EVENT_NAME`).
    pub event: String,
    pub never_skip_events: Vec<String>,
    pub max_ancestors: usize,
}

/// The outcome of a check, with what the summary shows.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub skip: bool,
    pub reason: Option<Reason>,
    /// One line saying why, for the log and the summary.
    pub detail: String,
    /// HEAD's analysis key (empty when the inputs are unknown).
    pub cache_key: String,
    pub head_commit: String,
    pub analysed_commit: String,
    pub sarif_path: String,
    pub time_saved_secs: u64,
    pub ancestors_walked: usize,
    pub diff: DiffSummary,
    pub dirty_files: Vec<String>,
    pub warnings: Vec<String>,
    pub inputs: Vec<(String, String)>,
}

impl Decision {
    fn scan(mut self, reason: Reason, detail: impl Into<String>) -> Decision {
        self.skip = false;
        self.reason = Some(reason);
        self.detail = detail.into();
        self.sarif_path.clear();
        self.time_saved_secs = 0;
        self
    }

    pub fn reason_label(&self) -> &'static str {
        self.reason.map_or("no-analysis", Reason::label)
    }
}

/// Reads the configuration file named by `raw.config_file` under
/// `source_root` into `raw.config_contents` (left `None` when unreadable,
/// which makes the input unknown).
pub fn load_config(raw: &mut RawInputs, source_root: &Path) {
    let path = raw.config_file.trim();
    if !path.is_empty() {
        raw.config_contents = std::fs::read(source_root.join(path)).ok();
    }
}

/// Validated inputs and the relevance rules they imply.
pub fn prepare(raw: &RawInputs) -> Result<(Inputs, Relevance), String> {
    let inputs = raw.validate().map_err(|e| e.to_string())?;
    let filters = match &inputs.config_contents {
        Some(c) => ConfigFilters::parse(c).map_err(|e| {
            format!(
                "configuration file {}: {e}",
                inputs.config_file.as_deref().unwrap_or("")
            )
        })?,
        None => ConfigFilters::default(),
    };
    let relevance = Relevance::new(&inputs, filters);
    Ok((inputs, relevance))
}

fn describe_inputs(raw: &RawInputs) -> Vec<(String, String)> {
    vec![
        ("repository".into(), raw.repository.clone()),
        ("languages".into(), raw.languages.clone()),
        ("queries".into(), raw.queries.clone()),
        ("config-file".into(), raw.config_file.clone()),
        ("codeql-version".into(), raw.codeql_version.clone()),
        ("build-mode".into(), raw.build_mode.clone()),
        ("category".into(), raw.category.clone()),
    ]
}

/// Decides whether this scan can be skipped and, if so, restores the SARIF
/// of the analysis that covers it into `options.sarif_dir`.
pub async fn decide_after_lookup(
    raw: &RawInputs,
    options: &CheckOptions,
    source: &dyn AnalysisSource,
) -> Decision {
    let mut decision = Decision {
        inputs: describe_inputs(raw),
        ..Decision::default()
    };
    if options.force {
        return decision.scan(Reason::Forced, "force is set");
    }
    if options
        .never_skip_events
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&options.event))
    {
        let detail = format!("`{}` is a never-skip event", options.event);
        return decision.scan(Reason::NeverSkipEvent, detail);
    }
    let (inputs, relevance) = match prepare(raw) {
        Ok(prepared) => prepared,
        Err(e) => return decision.scan(Reason::UnknownInput, e),
    };
    let checkout = match Checkout::open(&options.source_root) {
        Ok(c) => c,
        Err(e) => return decision.scan(Reason::NotARepository, e.to_string()),
    };
    let chain = match checkout.first_parent_chain(options.max_ancestors) {
        Ok(c) => c,
        Err(e) => return decision.scan(Reason::NotARepository, e.to_string()),
    };
    let keys: Vec<AnalysisKey> = chain
        .commits
        .iter()
        .map(|c| AnalysisKey::compute(&inputs, &c.tree))
        .collect();
    decision.cache_key = keys[0].to_hex();
    decision.head_commit = chain.commits[0].commit.clone();
    if chain.shallow_boundary {
        decision.warnings.push(format!(
            "shallow clone: only {} commit(s) of history are here, so only an analysis of them (an exact hit, at depth 1) can skip; check out with `fetch-depth: {}` to let ancestors match",
            chain.commits.len(),
            options.max_ancestors + 1
        ));
    }
    match checkout.dirty_relevant_files(&relevance, DiffSummary::SAMPLE) {
        Ok(dirty) if !dirty.is_empty() => {
            decision.dirty_files = dirty;
            return decision.scan(
                Reason::DirtyWorktree,
                "relevant tracked files differ from the commit: the analysis key is of HEAD's tree, and CodeQL would scan the modified files",
            );
        }
        Ok(_) => {}
        Err(e) => return decision.scan(Reason::NotARepository, e.to_string()),
    }
    let request = LookupRequest {
        candidates: keys,
        max_age_secs: options.max_age.as_secs(),
    };
    let response = match source.lookup(request).await {
        Ok(r) => r,
        Err(e) => {
            decision
                .warnings
                .push(format!("the ghcache daemon did not answer: {e}"));
            return decision.scan(Reason::NoDaemon, "no ghcache daemon answered; scanning");
        }
    };
    let Some(found) = response.found else {
        if response.expired > 0 {
            return decision.scan(
                Reason::Expired,
                format!(
                    "analyses are held but older than max-age ({} s)",
                    options.max_age.as_secs()
                ),
            );
        }
        if chain.shallow_boundary {
            return decision.scan(
                Reason::ShallowClone,
                "no analysis of this tree, and the shallow clone holds no older ancestor to compare with",
            );
        }
        return decision.scan(
            Reason::NoAnalysis,
            format!(
                "no analysis of this commit or its {} first-parent ancestors",
                chain.commits.len() - 1
            ),
        );
    };
    decision.ancestors_walked = found.index;
    let Some(ancestor) = chain.commits.get(found.index) else {
        return decision.scan(
            Reason::NoAnalysis,
            "the daemon answered a candidate we did not ask for",
        );
    };
    decision.analysed_commit = found.record.commit.clone();
    let reason = if found.index == 0 {
        Reason::IdenticalTree
    } else {
        match checkout.diff(&ancestor.tree, &chain.commits[0].tree, &relevance) {
            Ok(diff) => {
                let relevant = diff.first_relevant.clone();
                decision.diff = diff;
                if let Some(path) = relevant {
                    return decision.scan(
                        Reason::RelevantChanges,
                        format!("`{path}` changed since the analysis of {}", ancestor.commit),
                    );
                }
                Reason::NoRelevantChanges
            }
            Err(e) => return decision.scan(Reason::NotARepository, e.to_string()),
        }
    };
    restore(decision, &found.record, reason, options, source).await
}

async fn restore(
    mut decision: Decision,
    record: &AnalysisRecord,
    reason: Reason,
    options: &CheckOptions,
    source: &dyn AnalysisSource,
) -> Decision {
    let Ok(cid) = record.bundle_cid.parse::<ContentId>() else {
        return decision.scan(
            Reason::CorruptSarif,
            "the analysis record names no valid bundle",
        );
    };
    let packed = match source.bundle(cid).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            decision
                .warnings
                .push("the SARIF of the analysis is no longer held anywhere; scanning".into());
            return decision.scan(Reason::SarifMissing, "the analysis's SARIF is missing");
        }
        Err(e) => {
            decision
                .warnings
                .push(format!("fetching the SARIF failed: {e}"));
            return decision.scan(Reason::NoDaemon, "the daemon stopped answering");
        }
    };
    let bundle = match SarifBundle::unpack_verified(&packed, &cid) {
        Ok(b) => b,
        Err(e) => {
            decision
                .warnings
                .push(format!("the stored SARIF was refused: {e}; scanning"));
            return decision.scan(Reason::CorruptSarif, e.to_string());
        }
    };
    if let Err(e) = clear_sarif(&options.sarif_dir).and_then(|()| {
        bundle
            .restore(&options.sarif_dir)
            .map_err(|e| e.to_string())
    }) {
        decision
            .warnings
            .push(format!("cannot restore the SARIF: {e}; scanning"));
        return decision.scan(Reason::CorruptSarif, e);
    }
    decision.skip = true;
    decision.reason = Some(reason);
    decision.detail = match reason {
        Reason::IdenticalTree => format!("this tree was analysed at {}", record.commit),
        _ => format!(
            "no relevant file changed since the analysis of {} ({} changed file(s) seen, none relevant)",
            record.commit, decision.diff.files_seen
        ),
    };
    decision.sarif_path = options.sarif_dir.display().to_string();
    decision.time_saved_secs = record.duration_secs;
    decision
}

/// Removes `*.sarif` files left in the directory, so an upload sends only
/// the restored ones.
fn clear_sarif(dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".sarif") {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Builds the save request for an analysis of HEAD whose SARIF is in
/// `sarif_dir`. Refused when relevant tracked files are modified: the
/// analysis would not be of HEAD's tree.
pub fn prepare_save(
    raw: &RawInputs,
    source_root: &Path,
    sarif_dir: &Path,
    duration_secs: u64,
    now_secs: u64,
) -> Result<SaveRequest, String> {
    use base64::Engine;
    let (inputs, relevance) = prepare(raw)?;
    let checkout = Checkout::open(source_root).map_err(|e| e.to_string())?;
    let chain = checkout.first_parent_chain(0).map_err(|e| e.to_string())?;
    let head = &chain.commits[0];
    let dirty = checkout
        .dirty_relevant_files(&relevance, 5)
        .map_err(|e| e.to_string())?;
    if !dirty.is_empty() {
        return Err(format!(
            "relevant tracked files are modified ({}): the analysis is not of commit {}, so it is not saved",
            dirty.join(", "),
            head.commit
        ));
    }
    let bundle = SarifBundle::read_dir(sarif_dir).map_err(|e| e.to_string())?;
    let packed = bundle.pack().map_err(|e| e.to_string())?;
    let record = AnalysisRecord {
        key: AnalysisKey::compute(&inputs, &head.tree),
        repository: inputs.repository.clone(),
        commit: head.commit.clone(),
        tree: head.tree.clone(),
        created_at: now_secs,
        duration_secs,
        codeql_version: inputs.codeql_version.clone(),
        languages: inputs.languages.iter().map(|l| l.to_string()).collect(),
        category: inputs.category.clone(),
        results: bundle.result_counts(),
        bundle_cid: ContentId::of(&packed).to_string(),
        bundle_len: packed.len() as u64,
        files: bundle.files().iter().map(|f| f.name().to_owned()).collect(),
    };
    Ok(SaveRequest {
        record,
        bundle: base64::engine::general_purpose::STANDARD.encode(&packed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_reaches_a_year_and_no_further() {
        let p = |t: &str| ghcache_core::parse_duration(t, MAX_AGE_LIMITS);
        assert_eq!(p("365d"), Ok(Duration::from_secs(365 * 86_400)));
        assert_eq!(p("52w"), Ok(Duration::from_secs(52 * 7 * 86_400)));
        assert_eq!(p("0"), Ok(Duration::ZERO));
        assert!(p("366d").unwrap_err().to_string().contains("365-day"));
    }
}
