//! `ghcache demo` and `ghcache bench fleet`: argument parsing and printing
//! around `ghcache-fleet`, which does the work.

use std::io::IsTerminal;
use std::time::Duration;

use ghcache_fleet::{FleetConfig, Latency, Mode, Progress};

use crate::daemon::UsageError;
use crate::fleet_args::{BenchArgs, BenchCommand, DemoArgs, RunArgs};

fn parse<T: std::str::FromStr<Err = String>>(flag: &str, text: &str) -> Result<T, UsageError> {
    text.parse()
        .map_err(|e| UsageError(format!("--{flag}: {e}")))
}

fn base_config(run: &RunArgs, runners: usize, rounds: usize) -> Result<FleetConfig, UsageError> {
    let config = FleetConfig {
        runners: run.runners.unwrap_or(runners),
        rounds: run.rounds.unwrap_or(rounds),
        seed: run.seed,
        latency: parse("latency", &run.latency)?,
        ..FleetConfig::default()
    };
    config
        .validate()
        .map_err(|e| UsageError(format!("--runners, --rounds: {e}")))?;
    Ok(config)
}

pub async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let config = base_config(&args.run, 5, 4)?;
    let modes = [Mode::NoCache, Mode::MeshSynthesis];
    if !args.run.json {
        println!(
            "ghcache demo: a fake GitHub ({} latency), {} runner hosts each with a ghcache daemon, meshed;",
            match config.latency {
                Latency::Realistic => "realistic",
                Latency::None => "no",
            },
            config.runners
        );
        println!(
            "autoscaler polls, CI jobs with their own GITHUB_TOKEN and a bot with a rotating App token, through octocrab."
        );
        println!(
            "The same {} rounds run without a cache, then through the fleet.\n",
            config.rounds
        );
    }
    let report = run_with_progress(&config, &modes).await?;
    if args.run.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print!("{}", ghcache_fleet::text_table(&report));
    if let (Some(before), Some(after)) =
        (report.mode(Mode::NoCache), report.mode(Mode::MeshSynthesis))
    {
        let saved = before.units.saturating_sub(after.units);
        println!(
            "\nThe fleet spent {} of GitHub's rate-limit units instead of {} ({saved} saved, {:.0}%); \
             {} is the least any cache could spend.",
            after.units,
            before.units,
            saved as f64 * 100.0 / before.units.max(1) as f64,
            after.physical_limit
        );
    }
    Ok(())
}

pub async fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let BenchCommand::Fleet(args) = &args.command;
    let mut config = base_config(&args.run, 10, 6)?;
    config.tokens = parse("tokens", &args.tokens)?;
    config.mix = parse("mix", &args.mix)?;
    config.peer_deadline = Duration::from_millis(args.peer_deadline_ms);
    let modes = if args.modes.is_empty() {
        Mode::ALL.to_vec()
    } else {
        args.modes
            .iter()
            .map(|m| parse("modes", m))
            .collect::<Result<Vec<Mode>, _>>()?
    };
    let report = run_with_progress(&config, &modes).await?;
    if args.run.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.markdown {
        print!("{}", ghcache_fleet::markdown(&report));
    } else {
        print!("{}", ghcache_fleet::text_table(&report));
    }
    Ok(())
}

/// A progress bar on a terminal; plain lines on stderr otherwise.
async fn run_with_progress(
    config: &FleetConfig,
    modes: &[Mode],
) -> anyhow::Result<ghcache_fleet::FleetReport> {
    let total = (modes.len() * config.rounds) as u64;
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rounds  {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let on_progress = |event: Progress| match (&bar, event) {
        (Some(bar), Progress::Starting { mode, .. }) => bar.set_message(mode.title()),
        (Some(bar), Progress::Round { .. }) => bar.inc(1),
        (Some(_), Progress::Finished { .. }) => {}
        (None, Progress::Starting { mode, rounds }) => {
            eprintln!("{}: starting ({rounds} rounds)", mode.title())
        }
        (None, Progress::Round { mode, round }) => {
            eprintln!("{}: round {} done", mode.title(), round + 1)
        }
        (None, Progress::Finished { mode }) => eprintln!("{}: finished", mode.title()),
    };
    let report = ghcache_fleet::run(config, modes, &on_progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    Ok(report?)
}
