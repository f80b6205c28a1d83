//! `inject-credentials`: a job's selection turned into masked file
//! commands. Every value is masked before anything else is printed, names
//! that would hijack later steps are refused, and nothing is written unless
//! everything asked for can be.

use ghcache_actions::{Console, FileCommand, FileCommandError, Summary, SummaryError};
use secrecy::ExposeSecret;

use crate::wire::WireSecret;
use crate::{Claims, RecordInfo};

/// Names the runner refuses from `GITHUB_ENV` (whatever `--allow-names` says).
const RUNNER_FORBIDS: &[&str] = &["NODE_OPTIONS"];
const RUNNER_PREFIXES: &[&str] = &["GITHUB_", "RUNNER_"];
/// Names that change how later steps run programs; only with `--allow-names`.
const HIJACKING: &[&str] = &[
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "DYLD_INSERT_LIBRARIES",
    "DYLD_LIBRARY_PATH",
];

/// What the job asked for.
#[derive(Debug, Clone, Default)]
pub struct InjectOptions {
    /// Required names; `None`: every credential the job's scope matches.
    pub names: Option<Vec<String>>,
    /// `true`: `GITHUB_ENV`; `false`: step outputs.
    pub export_env: bool,
    /// Names otherwise refused as hijacking (e.g. `PATH`).
    pub allow_names: Vec<String>,
}

/// What the vault answered for the job.
#[derive(Debug, Default)]
pub struct Selected {
    pub chosen: Vec<(RecordInfo, WireSecret)>,
    pub expired: Vec<RecordInfo>,
    pub missing: Vec<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("refusing to inject {}; nothing was written", .0.join("; "))]
    Refused(Vec<String>),
    #[error(
        "no credential {} matches this job (looked for {looked_for}); nothing was written. Add one with `ghcache creds set NAME --scope …` for one of those scopes",
        names.join(", ")
    )]
    Missing {
        names: Vec<String>,
        looked_for: String,
    },
    #[error(
        "required credential {} has expired (never injected); rotate it with `ghcache creds rotate`. Nothing was written",
        .0.join(", ")
    )]
    Expired(Vec<String>),
    #[error(
        "required credential {} could not be opened (see the warnings); nothing was written",
        .0.join(", ")
    )]
    Unreadable(Vec<String>),
    #[error(transparent)]
    Write(#[from] FileCommandError),
    #[error(transparent)]
    Summary(#[from] SummaryError),
}

impl InjectError {
    /// A refusal the workflow can fix in its inputs (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, InjectError::Refused(_))
    }
}

/// Why `name` may not become an environment variable, if it may not.
pub fn refusal(name: &str, allowed: &[String]) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if RUNNER_FORBIDS.contains(&upper.as_str()) {
        return Some("the runner refuses NODE_OPTIONS from GITHUB_ENV");
    }
    if RUNNER_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Some("GITHUB_* and RUNNER_* belong to the runner");
    }
    let is_allowed = allowed.iter().any(|a| a.eq_ignore_ascii_case(name));
    if HIJACKING.contains(&upper.as_str()) && !is_allowed {
        return Some(
            "it changes how later steps run programs; pass it in --allow-names if intended",
        );
    }
    None
}

/// Masks every value, checks names, writes the file commands and the job
/// summary. Returns the records injected.
pub fn inject(
    console: &Console,
    claims: &Claims,
    selected: Selected,
    options: &InjectOptions,
) -> Result<Vec<RecordInfo>, InjectError> {
    // Before anything else can print: every value this process holds.
    for (_, value) in &selected.chosen {
        console.add_mask(value.0.expose_secret());
    }
    for record in &selected.expired {
        console.warning(&format!(
            "credential {} ({}, version {}) expired at {}: not injected",
            record.name,
            record.scope,
            record.version,
            record.expiry_text()
        ));
    }
    for problem in &selected.problems {
        console.warning(&format!("vault record {problem}: skipped"));
    }
    if options.export_env {
        let refused: Vec<String> = selected
            .chosen
            .iter()
            .filter_map(|(r, _)| {
                refusal(&r.name, &options.allow_names).map(|why| format!("{}: {why}", r.name))
            })
            .collect();
        if !refused.is_empty() {
            return Err(InjectError::Refused(refused));
        }
    }
    if !selected.missing.is_empty() {
        return Err(InjectError::Missing {
            names: selected.missing,
            looked_for: claims.describe(),
        });
    }
    if options.names.is_some() {
        let expired: Vec<String> = selected.expired.iter().map(|r| r.name.clone()).collect();
        if !expired.is_empty() {
            return Err(InjectError::Expired(expired));
        }
        let unreadable: Vec<String> = options
            .names
            .iter()
            .flatten()
            .filter(|n| !selected.chosen.iter().any(|(r, _)| &r.name == *n))
            .cloned()
            .collect();
        if !unreadable.is_empty() {
            return Err(InjectError::Unreadable(unreadable));
        }
    }
    let command = if options.export_env {
        FileCommand::Env
    } else {
        FileCommand::Output
    };
    for (record, value) in &selected.chosen {
        console.write_secret(command, &record.name, value.0.expose_secret())?;
    }
    let injected: Vec<RecordInfo> = selected.chosen.into_iter().map(|(r, _)| r).collect();
    summary(console, &injected, &selected.expired, options.export_env)?;
    Ok(injected)
}

fn summary(
    console: &Console,
    injected: &[RecordInfo],
    expired: &[RecordInfo],
    export_env: bool,
) -> Result<(), SummaryError> {
    let row = |r: &RecordInfo| {
        vec![
            format!("`{}`", r.name),
            r.scope.to_string(),
            r.version.to_string(),
            r.expiry_text(),
        ]
    };
    let target = if export_env {
        "environment variables (GITHUB_ENV)"
    } else {
        "step outputs"
    };
    let mut summary = Summary::new()
        .heading(3, "Credentials injected")
        .paragraph(&format!(
            "{} credential(s) as masked {target}; values are never shown.",
            injected.len()
        ))
        .table(
            &["name", "scope", "version", "expires"],
            injected.iter().map(row),
        );
    if !expired.is_empty() {
        summary = summary.paragraph("Expired, not injected:").table(
            &["name", "scope", "version", "expired"],
            expired.iter().map(row),
        );
    }
    if let Some(markdown) = summary.write(console.context())? {
        // Outside Actions: the same facts on the terminal.
        console.notice(markdown.trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_names_are_always_refused_and_hijacking_ones_unless_allowed() {
        let allowed = vec!["path".to_owned(), "NODE_OPTIONS".to_owned()];
        for name in ["NODE_OPTIONS", "GITHUB_TOKEN", "runner_temp", "Github_Path"] {
            assert!(refusal(name, &allowed).is_some(), "{name}");
        }
        for name in ["LD_PRELOAD", "BASH_ENV", "ENV", "PATH"] {
            assert!(refusal(name, &[]).is_some(), "{name}");
        }
        assert_eq!(refusal("PATH", &allowed), None);
        assert_eq!(refusal("NPM_TOKEN", &[]), None);
    }
}
