//! `ghcache codeql check|save|stats` (and `setup-codeql-cache`): clients of
//! the daemon's `/_ghcache/codeql/*` routes. Parsing and output only; the
//! decision is `ghcache_codeql::decide_after_lookup`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use ghcache_actions::{Console, JobContext, Summary};
use ghcache_codeql::api::{self, DecisionReport, LookupRequest, LookupResponse, SaveResponse};
use ghcache_codeql::{
    AnalysisSource, CheckOptions, CodeqlStats, Decision, FleetFuture, RawInputs,
    decide_after_lookup, load_config, prepare_save,
};
use ghcache_config::Config;
use ghcache_core::ContentId;

use crate::daemon::UsageError;

#[derive(Debug, Args)]
pub struct CodeqlArgs {
    #[command(subcommand)]
    pub command: CodeqlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CodeqlCommand {
    /// Decide whether this CodeQL scan can be skipped; on a skip, restore the SARIF.
    ///
    /// Skips when an analysis with the same key (repository, HEAD's tree,
    /// languages, queries, config file contents, CodeQL version, build mode,
    /// category) is held by this daemon or the fleet and is younger than
    /// max-age, or when the newest analysed first-parent ancestor differs from
    /// HEAD only in files CodeQL would not read. Scans when forced, on a
    /// never-skip event, on unknown inputs, when relevant tracked files are
    /// modified in the worktree, and whenever in doubt. Always exits 0 once it
    /// decided (also when no daemon answers: then it scans, with a warning).
    ///
    /// Step outputs: should-skip-scan, reason, cache-key, sarif-path,
    /// analysed-commit, time-saved-seconds. Environment for later steps:
    /// GHCACHE_CODEQL_SHOULD_SKIP_SCAN, GHCACHE_CODEQL_SARIF_PATH.
    Check(CheckArgs),
    /// Store the SARIF of the analysis just run, under the key of HEAD's tree.
    ///
    /// Takes the same key inputs as `check`. Nothing is saved when relevant
    /// tracked files are modified (the analysis would not be of HEAD).
    Save(SaveArgs),
    /// Print the daemon's CodeQL cache counters: skips by reason, seconds saved.
    Stats(CodeqlStatsArgs),
}

/// The inputs that make the analysis key. Each flag is also read from the
/// environment variable INPUT_<FLAG> (how the action passes its inputs); an
/// empty value means "not given".
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// CodeQL languages, comma- or newline-separated (actions, c-cpp, csharp, go,
    /// java-kotlin, javascript-typescript, python, ruby, rust, swift, or their
    /// aliases cpp, java, kotlin, javascript, typescript)
    #[arg(long, env = "INPUT_LANGUAGES", value_name = "LIST")]
    pub languages: Option<String>,
    /// Query suites or packs, as given to codeql-action's `queries` (a `./dir`
    /// entry makes that directory's files relevant) [default: the default suite]
    #[arg(long, env = "INPUT_QUERIES", value_name = "LIST")]
    pub queries: Option<String>,
    /// The CodeQL configuration file, relative to the source root; its
    /// contents are in the key and its paths/paths-ignore are honoured where
    /// CodeQL honours them (interpreted languages; compiled ones only with
    /// build-mode none)
    #[arg(long, env = "INPUT_CONFIG_FILE", value_name = "PATH")]
    pub config_file: Option<String>,
    /// The CodeQL bundle or CLI version the scan uses (required: without it
    /// the scan always runs)
    #[arg(long, env = "INPUT_CODEQL_VERSION", value_name = "VERSION")]
    pub codeql_version: Option<String>,
    /// Build mode of compiled languages: none, autobuild or manual [default: CodeQL's choice]
    #[arg(long, env = "INPUT_BUILD_MODE", value_name = "MODE")]
    pub build_mode: Option<String>,
    /// The analysis category, as given to codeql-action/analyze
    #[arg(long, env = "INPUT_CATEGORY", value_name = "CATEGORY")]
    pub category: Option<String>,
    /// The repository, owner/name
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    pub repository: Option<String>,
    /// The checkout to analyse [default: $GITHUB_WORKSPACE, else .]
    #[arg(long, env = "INPUT_SOURCE_ROOT", value_name = "DIR")]
    pub source_root: Option<PathBuf>,
    /// Control API of the daemon [default: the configured proxy address]
    #[arg(long, env = "GHCACHE_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Oldest analysis that may be reused (300, 12h, 7d, 4w; at most 365d) [default: 7d]
    #[arg(long, env = "INPUT_MAX_AGE", value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Never skip: always scan (true/false)
    #[arg(long, env = "INPUT_FORCE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub force: Option<String>,
    /// Events on which the scan always runs, comma-separated [default: schedule,workflow_dispatch]
    #[arg(long, env = "INPUT_NEVER_SKIP_EVENTS", value_name = "LIST")]
    pub never_skip_events: Option<String>,
    /// How many first-parent ancestors to look at for an analysis [default: 50]
    #[arg(long, env = "INPUT_MAX_ANCESTORS", value_name = "N")]
    pub max_ancestors: Option<String>,
    /// Where restored SARIF files go [default: $RUNNER_TEMP/ghcache-codeql-sarif]
    #[arg(long, env = "INPUT_SARIF_DIR", value_name = "DIR")]
    pub sarif_dir: Option<PathBuf>,
    /// The event that triggered this run
    #[arg(long, env = "GITHUB_EVENT_NAME", value_name = "EVENT")]
    pub event: Option<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Directory holding the analysis's .sarif files (codeql-action/analyze's `output`)
    #[arg(long, env = "INPUT_SARIF_DIR", value_name = "DIR")]
    pub sarif_dir: Option<PathBuf>,
    /// How long the analysis took, in seconds (what a later skip saves)
    #[arg(long, env = "INPUT_DURATION", value_name = "SECONDS")]
    pub duration: Option<String>,
}

#[derive(Debug, Args)]
pub struct CodeqlStatsArgs {
    /// Print the daemon's JSON document as is
    #[arg(long)]
    pub json: bool,
    /// Control API of the daemon [default: the configured proxy address]
    #[arg(long, env = "GHCACHE_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
}

/// A flag's value, `None` when absent or empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// The daemon's control address: `GHCACHE_API_URL` (`http://IP:PORT`), else
/// the configured proxy address.
fn api_addr(api_url: &Option<String>, config: &Config) -> anyhow::Result<SocketAddr> {
    let Some(url) = given(api_url) else {
        return Ok(config.proxy_addr.value.0);
    };
    // A job's URL (`http://IP:PORT/_job/<id>`) names the same daemon.
    let hostport = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().map_err(|_| {
        usage(format!(
            "GHCACHE_API_URL / --api-url `{url}` is not http://IP:PORT (the daemon's proxy address)"
        ))
    })
}

fn raw_inputs(key: &KeyArgs, source_root: &std::path::Path) -> RawInputs {
    let text = |v: &Option<String>| given(v).unwrap_or("").to_owned();
    let mut raw = RawInputs {
        repository: text(&key.repository),
        languages: text(&key.languages),
        queries: text(&key.queries),
        config_file: text(&key.config_file),
        config_contents: None,
        codeql_version: text(&key.codeql_version),
        build_mode: text(&key.build_mode),
        category: text(&key.category),
    };
    load_config(&mut raw, source_root);
    raw
}

fn source_root(key: &KeyArgs, ctx: &JobContext) -> PathBuf {
    key.source_root
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| ctx.workspace.clone())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The daemon's CodeQL routes over HTTP.
struct DaemonSource {
    addr: SocketAddr,
}

impl DaemonSource {
    async fn call(
        &self,
        method: http::Method,
        route: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let path = format!("{}{route}", api::PREFIX);
        ghcache_proxy::control_request(self.addr, method, &path, body, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        value: &impl serde::Serialize,
    ) -> Result<T, String> {
        let body = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        let (status, body) = self
            .call(
                http::Method::POST,
                route,
                Bytes::from(body),
                Duration::from_secs(30),
            )
            .await?;
        if !status.is_success() {
            return Err(format!(
                "{route} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            format!("{route}: unexpected answer ({e}); is the daemon another version?")
        })
    }
}

impl AnalysisSource for DaemonSource {
    fn lookup(&self, request: LookupRequest) -> FleetFuture<'_, Result<LookupResponse, String>> {
        Box::pin(async move { self.post_json("lookup", &request).await })
    }

    fn bundle(&self, cid: ContentId) -> FleetFuture<'_, Result<Option<Bytes>, String>> {
        Box::pin(async move {
            let route = format!("bundle/{cid}");
            let (status, body) = self
                .call(
                    http::Method::GET,
                    &route,
                    Bytes::new(),
                    Duration::from_secs(60),
                )
                .await?;
            match status.as_u16() {
                200 => Ok(Some(body)),
                404 => Ok(None),
                _ => Err(format!("{route} answered {status}")),
            }
        })
    }
}

pub async fn run(config: &Config, args: &CodeqlArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        CodeqlCommand::Check(check) => run_check(config, check).await,
        CodeqlCommand::Save(save) => run_save(config, save).await,
        CodeqlCommand::Stats(stats) => run_stats(config, stats).await,
    }
}

fn check_options(args: &CheckArgs, ctx: &JobContext) -> anyhow::Result<CheckOptions> {
    let inputs = ghcache_codeql::CheckInputs {
        max_age: args.max_age.as_deref(),
        force: args.force.as_deref(),
        max_ancestors: args.max_ancestors.as_deref(),
        never_skip_events: args.never_skip_events.as_deref(),
        event: args.event.as_deref(),
    };
    let sarif_dir = args
        .sarif_dir
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| {
            ctx.runner_temp
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .join("ghcache-codeql-sarif")
        });
    CheckOptions::from_inputs(&inputs, source_root(&args.key, ctx), sarif_dir)
        .map_err(|e| usage(e.to_string()))
}

async fn run_check(config: &Config, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let ctx = JobContext::from_process_env();
    let options = check_options(args, &ctx)?;
    let addr = api_addr(&args.key.api_url, config)?;
    let raw = raw_inputs(&args.key, &options.source_root);
    let source = DaemonSource { addr };
    let started = std::time::Instant::now();
    let decision = decide_after_lookup(&raw, &options, &source).await;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "decided");
    let report = DecisionReport {
        skipped: decision.skip,
        reason: decision.reason_label().to_owned(),
        seconds_saved: decision.time_saved_secs,
    };
    if decision.reason != Some(ghcache_codeql::Reason::NoDaemon) {
        // Counting is best effort: the decision stands either way.
        if let Err(e) = source
            .post_json::<serde_json::Value>("decision", &report)
            .await
        {
            tracing::debug!(error = %e, "could not report the decision to the daemon");
        }
    }
    let console = Console::stdout(ctx.clone());
    for warning in &decision.warnings {
        console.warning(warning);
    }
    write_outputs(&console, &decision).context("cannot write the step outputs")?;
    if let Err(e) = summary(&decision).write(&ctx) {
        console.warning(&format!("cannot write the job summary: {e}"));
    }
    println!(
        "{}: {} ({})",
        if decision.skip { "skip" } else { "scan" },
        decision.reason_label(),
        decision.detail
    );
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(console: &Console, d: &Decision) -> anyhow::Result<()> {
    let skip = if d.skip { "true" } else { "false" };
    console.set_output("should-skip-scan", skip)?;
    console.set_output("reason", d.reason_label())?;
    console.set_output("cache-key", &d.cache_key)?;
    console.set_output("sarif-path", &d.sarif_path)?;
    console.set_output("analysed-commit", &d.analysed_commit)?;
    console.set_output("time-saved-seconds", &d.time_saved_secs.to_string())?;
    console.export_variable("GHCACHE_CODEQL_SHOULD_SKIP_SCAN", skip)?;
    console.export_variable("GHCACHE_CODEQL_SARIF_PATH", &d.sarif_path)?;
    Ok(())
}

fn summary(d: &Decision) -> Summary {
    let verdict = if d.skip { "skipped" } else { "runs" };
    let mut s = Summary::new()
        .heading(3, &format!("CodeQL scan {verdict}: {}", d.reason_label()))
        .paragraph(&d.detail);
    if d.skip {
        s = s.paragraph(&format!(
            "Reused the analysis of `{}`; about {} s saved. SARIF restored to `{}`.",
            d.analysed_commit, d.time_saved_secs, d.sarif_path
        ));
    }
    for warning in &d.warnings {
        s = s.paragraph(&format!("Note: {warning}"));
    }
    let mut rows: Vec<Vec<String>> = d
        .inputs
        .iter()
        .map(|(k, v)| {
            vec![
                k.clone(),
                if v.is_empty() {
                    "(not set)".into()
                } else {
                    v.clone()
                },
            ]
        })
        .collect();
    rows.push(vec!["HEAD".into(), d.head_commit.clone()]);
    rows.push(vec!["cache key".into(), d.cache_key.clone()]);
    s = s.table(&["input", "value"], rows);
    if let Some(path) = &d.diff.first_relevant {
        s = s.paragraph(&format!(
            "Relevant change (the diff stops at the first): `{path}`"
        ));
    }
    if !d.dirty_files.is_empty() {
        s = s.paragraph(&format!("Modified tracked files: {}", list(&d.dirty_files)));
    }
    if !d.diff.irrelevant_sample.is_empty() {
        let more = d.diff.files_seen as usize
            - d.diff.irrelevant_sample.len()
            - usize::from(d.diff.first_relevant.is_some());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        s = s.paragraph(&format!(
            "Changed files CodeQL does not read: {}{tail}",
            list(&d.diff.irrelevant_sample)
        ));
    }
    s
}

fn list(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run_save(config: &Config, args: &SaveArgs) -> anyhow::Result<ExitCode> {
    let ctx = JobContext::from_process_env();
    let root = source_root(&args.key, &ctx);
    let Some(sarif_dir) = args.sarif_dir.clone().filter(|p| !p.as_os_str().is_empty()) else {
        return Err(usage(
            "save needs --sarif-dir (the directory analyze wrote its .sarif files to)".into(),
        ));
    };
    let duration = match given(&args.duration) {
        Some(text) => text.parse::<u64>().map_err(|_| {
            usage(format!(
                "duration: `{text}` is not a whole number of seconds"
            ))
        })?,
        None => 0,
    };
    let addr = api_addr(&args.key.api_url, config)?;
    let raw = raw_inputs(&args.key, &root);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let console = Console::stdout(ctx);
    let request = match prepare_save(&raw, &root, &sarif_dir, duration, now) {
        Ok(r) => r,
        Err(e) => {
            // The analysis itself succeeded: not caching it must not fail the job.
            console.warning(&format!("CodeQL analysis not saved: {e}"));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let source = DaemonSource { addr };
    match source.post_json::<SaveResponse>("save", &request).await {
        Ok(saved) => {
            println!(
                "saved the analysis of {} under key {} (SARIF bundle {}, {} bytes)",
                request.record.commit, saved.key, saved.bundle_cid, request.record.bundle_len
            );
        }
        Err(e) => console.warning(&format!(
            "CodeQL analysis not saved: the daemon refused it: {e}"
        )),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_stats(config: &Config, args: &CodeqlStatsArgs) -> anyhow::Result<ExitCode> {
    let addr = api_addr(&args.api_url, config)?;
    let path = format!("{}stats", api::PREFIX);
    if args.json {
        let value = ghcache_proxy::control_get(addr, &path).await?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let stats: CodeqlStats = ghcache_proxy::control_get_as(addr, &path).await?;
    print_stats(&stats);
    Ok(ExitCode::SUCCESS)
}

/// The CodeQL lines of `ghcache stats` and `ghcache codeql stats`.
pub fn print_stats(stats: &CodeqlStats) {
    let skipped = stats.skips.identical_tree + stats.skips.no_relevant_changes;
    println!(
        "codeql skipped      {skipped} (identical tree {}, no relevant changes {})",
        stats.skips.identical_tree, stats.skips.no_relevant_changes
    );
    let scans: Vec<String> = stats
        .scans
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!(
        "codeql scanned      {} ({})",
        stats.scans.values().sum::<u64>(),
        scans.join(", ")
    );
    println!("codeql time saved   {} s", stats.seconds_saved);
    println!(
        "codeql analyses     lookups {}, found here {}, found in the fleet {}, saved {}, refused {}",
        stats.lookups, stats.hits_local, stats.hits_fleet, stats.saves, stats.refused
    );
}
