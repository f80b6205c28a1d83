//! The command line: parsing only. Behaviour lives in the library crates.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use ghcache_config::{ListenAddr, LogFormat, Overrides, PeerAddr, Port, Seconds, Upstream};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  runtime failure (upstream unreachable, I/O error, …)
  2  usage or configuration error (bad flag, bad value, unknown key)

Configuration is layered: flags > environment > YAML file > defaults.
`ghcache config show` prints every effective value and where it came from.";

/// A shared GitHub API cache, CodeQL result cache and credential vault for
/// fleets of self-hosted GitHub Actions runners.
///
/// One daemon per host runs a caching reverse proxy for the GitHub API and
/// shares its entries with the other hosts over libp2p; every other command
/// is a client of that daemon.
#[derive(Debug, Parser)]
#[command(name = "ghcache", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Read configuration from this YAML file instead of discovering
    /// .github/cache-config.yml and .github/p2p-config.yml [env: GHCACHE_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the store, vault, registry record and peer identity
    /// [env: GHCACHE_STATE_DIR, CACHE_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log line format [env: GHCACHE_LOG_FORMAT]
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse::<LogFormat>)]
    pub log_format: Option<LogFormat>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,
}

/// Settings a daemon (and `config show`) can take as flags.
#[derive(Debug, Args, Default)]
pub struct SettingArgs {
    /// Address the caching proxy listens on [env: GHCACHE_PROXY_ADDR] [default: 127.0.0.1:8787]
    #[arg(long, value_name = "IP:PORT", value_parser = parse::<ListenAddr>)]
    pub proxy_addr: Option<ListenAddr>,
    /// GitHub API base URL (GHES: https://HOST/api/v3) [env: GHCACHE_UPSTREAM] [default: https://api.github.com]
    #[arg(long, value_name = "URL", value_parser = parse::<Upstream>)]
    pub upstream: Option<Upstream>,
    /// libp2p listen port, TCP and QUIC [env: CACHE_LISTEN_PORT] [default: 9100]
    #[arg(long, value_name = "PORT", value_parser = parse::<Port>)]
    pub listen_port: Option<Port>,
    /// A peer to dial at start (repeatable) [env: CACHE_BOOTSTRAP_PEERS, comma-separated]
    #[arg(long = "bootstrap-peer", value_name = "MULTIADDR", value_parser = parse::<PeerAddr>)]
    pub bootstrap_peers: Vec<PeerAddr>,
    /// Do not join the peer-to-peer mesh [env: CACHE_ENABLE_P2P=false]
    #[arg(long)]
    pub no_p2p: bool,
    /// Freshness for responses without max-age (300, 5m, 1h) [env: CACHE_DEFAULT_TTL] [default: 300]
    #[arg(long, value_name = "DURATION", value_parser = parse::<Seconds>)]
    pub default_ttl: Option<Seconds>,
}

pub(crate) fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

impl Cli {
    /// The flag layer of the configuration.
    pub fn overrides(&self) -> Overrides {
        let mut overrides = Overrides {
            config_file: self.global.config.clone(),
            state_dir: self.global.state_dir.clone(),
            log_format: self.global.log_format,
            ..Overrides::default()
        };
        let settings = match &self.command {
            Command::Daemon(args) => Some(&args.settings),
            Command::Stats(StatsArgs { proxy_addr, .. })
            | Command::Peers(StatsArgs { proxy_addr, .. })
            | Command::Doctor(StatsArgs { proxy_addr, .. })
            | Command::Health(StatsArgs { proxy_addr, .. })
            | Command::Report(crate::report::ReportArgs { proxy_addr, .. }) => {
                overrides.proxy_addr = *proxy_addr;
                None
            }
            Command::Config(ConfigArgs {
                command: ConfigCommand::Show { settings, .. },
            }) => Some(settings),
            _ => None,
        };
        if let Some(s) = settings {
            overrides.proxy_addr = s.proxy_addr;
            overrides.upstream = s.upstream.clone();
            overrides.listen_port = s.listen_port;
            overrides.bootstrap_peers = s.bootstrap_peers.clone();
            overrides.no_p2p = s.no_p2p;
            overrides.default_ttl = s.default_ttl;
        }
        overrides
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the per-host daemon: the caching proxy, the peer mesh and the control API.
    ///
    /// Long-lived, one per host, owner of all state in the state directory.
    /// Clients (gh, octokit, curl, scripts) point GITHUB_API_URL at the proxy.
    Daemon(DaemonArgs),
    /// Action entry point: decide whether this CodeQL scan can be skipped.
    ///
    /// The same as `ghcache codeql check`: computes the analysis key of the
    /// checkout and, on a hit, sets `should-skip-scan=true` and restores the
    /// stored SARIF.
    SetupCodeqlCache(crate::codeql::CheckArgs),
    /// Action entry point: inject scoped, expiring credentials as masked environment variables.
    InjectCredentials(crate::inject::InjectArgs),
    /// The CodeQL result cache: decide whether a scan can be skipped, save an analysis, counters.
    Codeql(crate::codeql::CodeqlArgs),
    /// Manage vault credentials: add, list, rotate, revoke, audit.
    Creds(crate::creds::CredsArgs),
    /// Print the daemon's cache statistics: hits, misses, rate-limit units saved.
    Stats(StatsArgs),
    /// Print the daemon's peers: connected, discovered (by source), rejected.
    Peers(StatsArgs),
    /// Write the job summary: what this job was served and saved (the job's last step).
    ///
    /// Reads the counters the daemon kept for the job's GHCACHE_API_URL prefix
    /// (GHCACHE_JOB_ID, exported by setup-github-cache) and writes a Markdown
    /// table with a Mermaid chart to GITHUB_STEP_SUMMARY (stdout outside
    /// Actions). `--state` writes the cache's state instead.
    Report(crate::report::ReportArgs),
    /// Diagnose a host: container and network mode, ports, state, registry, peers, upstream, clock.
    ///
    /// Every check prints ✔ or ✘ (ℹ and ⚠ for information and warnings)
    /// and, when not passed, its fix. Checks the upstream with GITHUB_TOKEN
    /// (never printed) through the free `GET /rate_limit`. Exits 1 when
    /// anything failed (for example a peer holding another cluster secret).
    Doctor(StatsArgs),
    /// Ask the daemon whether it is ready; exit 1 when it does not answer.
    ///
    /// Prints `status=`, `version=`, `upstream=`, `peer-id=` and
    /// `connected-peers=` lines (the image's HEALTHCHECK and the actions use it).
    Health(StatsArgs),
    /// Run an offline demonstration: a fake GitHub, a fleet of daemons and simulated runners.
    ///
    /// Runs the same workload without a cache and through a meshed fleet of
    /// daemons, and prints what GitHub received and charged in each case.
    Demo(crate::fleet_args::DemoArgs),
    /// Benchmarks: `ghcache bench fleet` compares cache designs on a simulated fleet.
    Bench(crate::fleet_args::BenchArgs),
    /// Inspect the effective configuration.
    Config(ConfigArgs),
    /// Serve the fake GitHub API used by tests, the demo and benchmarks.
    ///
    /// A seeded world of organisations, users, repositories, runs and runners,
    /// with GitHub's rate limits, ETags and pagination. Prints its tokens.
    Fakehub(FakehubArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub settings: SettingArgs,
    /// If the store file is corrupt or foreign, move it aside (renamed with a
    /// timestamp, never deleted) and start with an empty store
    #[arg(long)]
    pub recover_store: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print the daemon's JSON document as is
    #[arg(long)]
    pub json: bool,
    /// Proxy address of the daemon to ask [env: GHCACHE_PROXY_ADDR]
    #[arg(long, value_name = "IP:PORT", value_parser = parse::<ListenAddr>)]
    pub proxy_addr: Option<ListenAddr>,
}

#[derive(Debug, Args)]
pub struct FakehubArgs {
    /// Address to listen on
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9999", value_parser = parse::<ListenAddr>)]
    pub addr: ListenAddr,
    /// Seed of the generated world (same seed, same world)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Inject GitHub-like latency (about 100-300 ms per request)
    #[arg(long)]
    pub realistic: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every effective setting with its origin (flag, env, file:line or
    /// default), like `git config --show-origin`. Secrets are redacted.
    Show {
        /// Print JSON: {"settings": {key: {value, origin}}, "files", "warnings"}
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: SettingArgs,
    },
}
