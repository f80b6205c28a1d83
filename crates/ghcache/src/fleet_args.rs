//! The arguments of `ghcache demo` and `ghcache bench fleet`, compiled in
//! every build (the commands themselves need the `fakehub` feature).

use clap::{Args, Subcommand};

/// Settings shared by the demo and the benchmark.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Runner hosts, one daemon each [default: demo 5, bench 10]
    #[arg(long)]
    pub runners: Option<usize>,
    /// Rounds: each runner runs its autoscaler polls and CI jobs once per round [default: demo 4, bench 6]
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seed of the fake GitHub's world and of the workload
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Latency the fake GitHub adds: realistic (like api.github.com) or none
    #[arg(long, default_value = "realistic")]
    pub latency: String,
    /// Print the figures as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Compare cache designs on one simulated fleet, side by side in one run:
    /// no cache, per-host cache, mesh, mesh + ETag synthesis, fleet trust.
    Fleet(FleetBenchArgs),
}

#[derive(Debug, Args)]
pub struct FleetBenchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Which token each CI job reads with: per-job (like GITHUB_TOKEN) or shared
    #[arg(long, default_value = "per-job")]
    pub tokens: String,
    /// Actors per round: jobs and polls per runner, bot passes per round
    #[arg(long, default_value = "jobs=1,polls=1,bot=1")]
    pub mix: String,
    /// Modes to run, comma-separated: no-cache, per-host, mesh, mesh-synthesis, fleet-trust [default: all]
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Longest a daemon waits for its peers, in milliseconds
    #[arg(long, default_value_t = 50)]
    pub peer_deadline_ms: u64,
    /// Print a Markdown table (for docs/BENCHMARKS.md) instead of the terminal table
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
}
