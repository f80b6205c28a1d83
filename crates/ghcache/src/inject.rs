//! `ghcache inject-credentials`: the job's credentials as masked
//! environment variables (or step outputs). Each flag also reads the
//! action input the runner exports as `INPUT_<NAME>`.

use std::process::ExitCode;

use clap::{ArgAction, Args};
use ghcache_actions::{Console, JobContext};
use ghcache_config::Config;
use ghcache_vault::inject::{InjectOptions, Selected, inject};
use ghcache_vault::wire::{Request, Response};

use crate::vault::{call, claims};

const CONTEXT: &str = "\
The job is read from GITHUB_REPOSITORY, GITHUB_WORKFLOW_REF, GITHUB_REF, RUNNER_NAME
and GITHUB_RUN_ID (unverified: on a shared host, scopes are policy, not a security
boundary). Every value is masked (::add-mask::, each line of multi-line values too)
before anything else is printed; values go to GITHUB_ENV (or GITHUB_OUTPUT) through
heredocs with random delimiters, and GITHUB_STEP_SUMMARY lists names, scopes,
versions and expiry, never values. Refused names: NODE_OPTIONS, GITHUB_*, RUNNER_*
always; PATH, LD_PRELOAD, LD_LIBRARY_PATH, BASH_ENV, ENV and other names that change
how programs run, unless listed in --allow-names.";

#[derive(Debug, Args)]
#[command(after_help = CONTEXT)]
pub struct InjectArgs {
    /// Credential names to inject, comma- or newline-separated; every one is
    /// required (the step fails naming the scope looked for). Without it:
    /// every credential this job's scope matches
    #[arg(long, env = "INPUT_NAMES", value_name = "NAMES")]
    pub names: Option<String>,
    /// This runner's labels, for runner: scopes (the runner does not export
    /// them), comma- or newline-separated
    #[arg(long, env = "INPUT_LABELS", value_name = "LABELS")]
    pub labels: Option<String>,
    /// true: export to GITHUB_ENV for later steps; false: set step outputs instead
    #[arg(long, env = "INPUT_EXPORT_ENV", value_name = "true|false",
          default_value = "true", action = ArgAction::Set, value_parser = parse_bool)]
    pub export_env: bool,
    /// Names otherwise refused because they change how later steps run
    /// programs (e.g. PATH, LD_PRELOAD), comma- or newline-separated
    #[arg(long, env = "INPUT_ALLOW_NAMES", value_name = "NAMES")]
    pub allow_names: Option<String>,
}

/// The spellings `@actions/core`'s getBooleanInput accepts; empty (an
/// unset action input) is the default, true.
fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "" => Ok(true),
        other => ghcache_actions::parse_bool(other)
            .ok_or_else(|| format!("{other:?}: expected true or false")),
    }
}

fn list(text: Option<&str>) -> Vec<String> {
    ghcache_actions::split_list(text.unwrap_or_default())
}

pub fn run(config: &Config, args: &InjectArgs) -> anyhow::Result<ExitCode> {
    let console = Console::stdout(JobContext::from_process_env());
    let names = Some(list(args.names.as_deref())).filter(|n| !n.is_empty());
    let claims = claims(&list(args.labels.as_deref()));
    let request = Request::Select {
        names: names.clone(),
    };
    let Response::Selection {
        chosen,
        expired,
        missing,
        problems,
    } = call(config, claims.clone(), request)?
    else {
        anyhow::bail!("unexpected answer from the vault");
    };
    let options = InjectOptions {
        names,
        export_env: args.export_env,
        allow_names: list(args.allow_names.as_deref()),
    };
    let selected = Selected {
        chosen,
        expired,
        missing,
        problems,
    };
    match inject(&console, &claims, selected, &options) {
        Ok(injected) => {
            let names: Vec<&str> = injected.iter().map(|r| r.name.as_str()).collect();
            tracing::info!(count = injected.len(), names = ?names, "credentials injected");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            console.error(&err.to_string());
            Ok(ExitCode::from(if err.is_usage() { 2 } else { 1 }))
        }
    }
}
