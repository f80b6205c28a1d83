//! The engine of `ghcache demo` and `ghcache bench fleet`.
//!
//! One run per cache design ([`Mode`]), each against a fresh fake GitHub
//! with the same seed: the same world, the same plan of requests. Runners
//! are daemons in this process (store, proxy and mesh, as `ghcache daemon`
//! wires them) on loopback; the simulated clients are octocrab, pointed at
//! their runner's proxy. What GitHub received and charged is read from the
//! fake's own counters, beside what the daemons counted.

mod config;
mod nodes;
mod render;
mod tally;
mod workload;

use std::time::Instant;

use ghcache_fakehub::{FakeHub, FakeHubConfig, LatencyProfile};

pub use config::{FleetConfig, Latency, Mix, Mode, TokenMix};
pub use ghcache_proxy::UnitCauses;
pub use render::{markdown, text_table};
pub use tally::{ExtraUnits, FleetReport, GithubCounters, ModeResult, Outcomes, Percentiles};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot create {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the fake GitHub: {0}")]
    FakeHub(String),
    #[error("preparing the run: {0}")]
    Setup(String),
    #[error("a daemon of the fleet: {0}")]
    Daemon(String),
    #[error("the mesh: {0}")]
    Mesh(String),
    #[error("a simulated client's request failed: {0}")]
    Request(String),
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl FleetError {
    fn io(what: &'static str, source: std::io::Error) -> Self {
        FleetError::Io { what, source }
    }
}

/// What a run reports while it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A mode starts: its fake GitHub and daemons come up.
    Starting {
        mode: Mode,
        rounds: usize,
    },
    /// A round of every runner finished.
    Round {
        mode: Mode,
        round: usize,
    },
    Finished {
        mode: Mode,
    },
}

/// Runs `modes` one after the other with the same plan.
pub async fn run(
    config: &FleetConfig,
    modes: &[Mode],
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<FleetReport, FleetError> {
    config.validate().map_err(FleetError::Invalid)?;
    let mut results = Vec::with_capacity(modes.len());
    for &mode in modes {
        results.push(run_mode(config, mode, progress).await?);
    }
    Ok(FleetReport {
        config: config.clone(),
        modes: results,
    })
}

async fn run_mode(
    config: &FleetConfig,
    mode: Mode,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<ModeResult, FleetError> {
    progress(Progress::Starting {
        mode,
        rounds: config.rounds,
    });
    let mut hub_config = FakeHubConfig::with_seed(config.seed);
    hub_config.latency = match config.latency {
        Latency::None => LatencyProfile::zero(),
        Latency::Realistic => LatencyProfile::realistic(),
    };
    let hub = FakeHub::start(hub_config)
        .await
        .map_err(|e| FleetError::FakeHub(e.to_string()))?;
    let setup = workload::Setup::read(&hub, config).await?;
    let plan = setup.plan(config);
    let fleet = if mode == Mode::NoCache {
        None
    } else {
        Some(
            nodes::Fleet::start(mode, config.runners, &hub.base_url(), config.peer_deadline)
                .await?,
        )
    };
    let bases = match &fleet {
        Some(fleet) => fleet.base_urls(),
        None => vec![hub.base_url(); config.runners],
    };
    // Only the measured run counts: setup reads and token minting do not.
    hub.reset_stats();
    let started = Instant::now();
    let mut samples = Vec::new();
    for (round, runners) in plan.rounds.iter().enumerate() {
        let mut tasks = tokio::task::JoinSet::new();
        for (runner, (base, turns)) in bases.iter().zip(runners).enumerate() {
            let base = base.clone();
            let turns = turns.clone();
            tasks.spawn(async move {
                let mut samples = Vec::new();
                for turn in &turns {
                    samples.extend(workload::play(&base, runner, turn, started).await?);
                }
                Ok::<_, FleetError>(samples)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let runner = joined.map_err(|e| FleetError::Request(format!("a runner task: {e}")))?;
            samples.extend(runner?);
        }
        progress(Progress::Round { mode, round });
    }
    let wall = started.elapsed();
    let github = github_counters(&hub).await?;
    let (daemons, peer_copies, causes) = match &fleet {
        Some(fleet) => (
            Some(fleet.stats().await?),
            fleet.peer_hits().await,
            Some(fleet.unit_causes()),
        ),
        None => (None, 0, None),
    };
    if let Some(fleet) = fleet {
        fleet.shutdown().await;
    }
    hub.shutdown().await;
    progress(Progress::Finished { mode });
    Ok(tally::tally(
        mode,
        &samples,
        daemons.as_deref(),
        peer_copies,
        causes,
        github,
        wall,
    ))
}

/// What GitHub received and charged, from the fake's introspection
/// endpoint (`GET /_fakehub/stats`), as any client could read it.
async fn github_counters(hub: &FakeHub) -> Result<GithubCounters, FleetError> {
    let reader = workload::client(&hub.base_url(), "introspection")?;
    let stats: ghcache_fakehub::StatsSnapshot = reader
        .get("/_fakehub/stats", None::<&()>)
        .await
        .map_err(|e| FleetError::FakeHub(format!("reading its counters: {e}")))?;
    Ok(GithubCounters {
        requests: stats.totals.requests,
        units: stats.totals.units_consumed,
        not_modified: stats.totals.status_304,
    })
}
