//! The `ghcache` binary: argument parsing and wiring, nothing else.

mod cli;
mod codeql;
mod codeql_daemon;
mod creds;
mod daemon;
mod doctor;
#[cfg(feature = "fakehub")]
mod fleet;
mod fleet_args;
mod health;
mod inject;
mod logging;
mod report;
mod vault;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand};

/// mimalloc: with glibc's malloc the allocator took 11 % of the daemon's CPU
/// samples on fresh hits, with it 6 %, and a hit costs 15 % less CPU
/// (docs/BENCHMARKS.md). Without the `mimalloc` feature: the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for usage and configuration errors (also clap's).
const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = ghcache_config::Sources::from_process();
    let config = match ghcache_config::load(&cli.overrides(), &sources) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // The demo and benchmark run daemons in this process: their log lines
    // (a lone mesh's Kademlia warning, say) would bury the table.
    let quiet = match cli.command {
        Command::Demo(_) | Command::Bench(_) if cli.global.verbose == 0 => cli.global.quiet.max(2),
        _ => cli.global.quiet,
    };
    logging::init(config.log_format.value, cli.global.verbose, quiet);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match run(&cli, &config) {
        Ok(code) => code,
        Err(err) if err.downcast_ref::<daemon::UsageError>().is_some() => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(cli: &Cli, config: &ghcache_config::Config) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config(args) => match &args.command {
            ConfigCommand::Show { json, .. } => {
                if *json {
                    println!("{}", serde_json::to_string_pretty(&config.render_json())?);
                } else {
                    print!("{}", config.render_text());
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Daemon(args) => {
            runtime()?.block_on(daemon::run_daemon(config, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats(args) => {
            runtime()?.block_on(daemon::run_stats(config, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Peers(args) => {
            runtime()?.block_on(daemon::run_peers(config, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health(args) => {
            runtime()?.block_on(health::run(config, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            runtime()?.block_on(report::run(config, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Codeql(args) => runtime()?.block_on(codeql::run(config, args)),
        Command::SetupCodeqlCache(args) => runtime()?.block_on(codeql::run(
            config,
            &codeql::CodeqlArgs {
                command: codeql::CodeqlCommand::Check(args.clone()),
            },
        )),
        Command::Doctor(args) => {
            let healthy = runtime()?.block_on(doctor::run(config, args.json))?;
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Creds(args) => creds::run(config, args),
        Command::InjectCredentials(args) => inject::run(config, args),
        #[cfg(feature = "fakehub")]
        Command::Fakehub(args) => {
            runtime()?.block_on(daemon::run_fakehub(args))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "fakehub")]
        Command::Demo(args) => {
            runtime()?.block_on(fleet::demo(args))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "fakehub")]
        Command::Bench(args) => {
            runtime()?.block_on(fleet::bench(args))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(feature = "fakehub"))]
        Command::Fakehub(_) | Command::Demo(_) | Command::Bench(_) => {
            eprintln!("error: this build has no fake GitHub (built without the `fakehub` feature)");
            Ok(ExitCode::from(EXIT_USAGE))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
