//! `ghcache creds …`: the vault's administration commands, as clients of
//! the daemon's vault socket (or of the vault opened here without one).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ghcache_config::Config;
use ghcache_vault::wire::{Request, Response};
use ghcache_vault::{RecordInfo, Scope, parse_duration, time_text};

use crate::vault::{call, claims, read_value};

const SCOPES: &str = "\
Scopes (the most specific match wins; equally specific scopes of one name that
could match one job are refused):
  global                                           every job
  runner:NAME-OR-LABEL                             a runner name or --labels entry (globs: gpu-*)
  repo:OWNER/NAME                                  one repository (globs: acme/*)
  workflow:OWNER/NAME/.github/workflows/F.yml[@REF]  one workflow, optionally at one ref

Values are read from stdin or --value-file, never from the command line. The
vault is the daemon's (over <state>/vault.sock); without a daemon the command
opens it itself under its lock.";

#[derive(Debug, Args)]
#[command(after_help = SCOPES)]
pub struct CredsArgs {
    #[command(subcommand)]
    pub command: CredsCommand,
}

#[derive(Debug, Args)]
pub struct Target {
    /// Credential name: the environment variable it becomes (letters, digits, _)
    pub name: String,
    /// Who it is for: global, repo:OWNER/NAME, workflow:OWNER/NAME/PATH[@REF], runner:NAME
    #[arg(long, value_name = "SCOPE", value_parser = parse_scope)]
    pub scope: Scope,
}

#[derive(Debug, Subcommand)]
pub enum CredsCommand {
    /// Store a new credential (version 1); the value comes from stdin or --value-file
    Set {
        #[command(flatten)]
        target: Target,
        /// Lifetime (3600, 30m, 12h, 90d, 2w); expired values are never injected [default: none]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// Free text shown by `list` (never the value)
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Read the value from this file (exact bytes, UTF-8) instead of stdin
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
    },
    /// Print one value on stdout, exactly (for scripts); audited
    Get {
        #[command(flatten)]
        target: Target,
    },
    /// List credentials: name, scope, version, created, expiry, description (never values)
    List {
        /// Print JSON: {"records": [...], "problems": [...]}
        #[arg(long)]
        json: bool,
    },
    /// Remove every version of a credential for one scope
    Rm {
        #[command(flatten)]
        target: Target,
    },
    /// Store a new version; the previous one stays valid for the grace period
    Rotate {
        #[command(flatten)]
        target: Target,
        /// Lifetime of the new version [default: none]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// How long the previous version stays valid
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
        grace: std::time::Duration,
        /// Read the new value from this file instead of stdin
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
    },
    /// Print the last audit lines (JSON, never values), or `audit verify` the chain
    Audit {
        /// How many of the last lines to print
        #[arg(long, value_name = "N", default_value_t = 50)]
        last: usize,
        #[command(subcommand)]
        command: Option<AuditCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exit 1 naming the first edited, removed, reordered or truncated line
    Verify,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
        .map_err(|e: ghcache_vault::VaultError| e.to_string())
}

pub fn run(config: &Config, args: &CredsArgs) -> anyhow::Result<ExitCode> {
    let request = match &args.command {
        CredsCommand::Set {
            target,
            ttl,
            description,
            value_file,
        } => Request::Set {
            name: target.name.clone(),
            scope: target.scope.clone(),
            value: read_value(value_file.as_ref())?,
            ttl_secs: ttl.map(|t| t.as_secs()),
            description: description.clone(),
        },
        CredsCommand::Get { target } => Request::Get {
            name: target.name.clone(),
            scope: target.scope.clone(),
        },
        CredsCommand::List { .. } => Request::List,
        CredsCommand::Rm { target } => Request::Remove {
            name: target.name.clone(),
            scope: target.scope.clone(),
        },
        CredsCommand::Rotate {
            target,
            ttl,
            grace,
            value_file,
        } => Request::Rotate {
            name: target.name.clone(),
            scope: target.scope.clone(),
            value: read_value(value_file.as_ref())?,
            ttl_secs: ttl.map(|t| t.as_secs()),
            grace_secs: grace.as_secs(),
        },
        CredsCommand::Audit {
            command: Some(AuditCommand::Verify),
            ..
        } => Request::AuditVerify,
        CredsCommand::Audit { last, .. } => Request::Audit { last: *last },
    };
    let json = matches!(args.command, CredsCommand::List { json: true });
    match call(config, claims(&[]), request)? {
        Response::Record { record } => println!(
            "stored {} for {} (version {}, expires {})",
            record.name,
            record.scope,
            record.version,
            record.expiry_text()
        ),
        Response::Value { value, .. } => {
            use secrecy::ExposeSecret;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(value.0.expose_secret().as_bytes())?;
            out.flush()?;
        }
        Response::Records { records, problems } => print_list(&records, &problems, json)?,
        Response::Removed { versions } => println!("removed {versions} version(s)"),
        Response::AuditLines { lines } => {
            for line in lines {
                println!("{line}");
            }
        }
        Response::Verified { lines } => {
            println!("audit log intact: {lines} line(s), chain and head agree")
        }
        other => anyhow::bail!("unexpected answer from the vault: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(records: &[RecordInfo], problems: &[String], json: bool) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({ "records": records, "problems": problems });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<40} {:>4}  {:<29}  {:<29}  DESCRIPTION",
        "NAME", "SCOPE", "VER", "CREATED", "EXPIRES"
    );
    for r in records {
        println!(
            "{:<24} {:<40} {:>4}  {:<29}  {:<29}  {}",
            r.name,
            r.scope.to_string(),
            r.version,
            time_text(r.created),
            r.expiry_text(),
            r.description.as_deref().unwrap_or("")
        );
    }
    for problem in problems {
        tracing::warn!("vault record {problem}");
    }
    Ok(())
}
