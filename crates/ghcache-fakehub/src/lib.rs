//! A faithful fake of the GitHub REST API (and a sliver of GraphQL), served
//! over real HTTP on loopback, for ghcache's tests, demo and benchmarks.
//!
//! **What it is for.** Anything that must talk to "GitHub" without GitHub:
//! the proxy's integration tests, the demo's simulated runners, and the
//! benchmarks that publish how many rate-limit units the cache saves. It
//! models GitHub's *documented* behaviour — per-token ETags, free
//! authenticated `304`s, primary limits per principal kind, the secondary
//! concurrency limit, `Cache-Control`/`Vary`, `Link` pagination, 404 hiding
//! of private resources, expiring installation tokens — over a seeded,
//! deterministic world of orgs, users, repositories, pull requests, issues,
//! commits, workflow runs and jobs, runners and code-scanning analyses.
//! It never bends a rule to flatter a cache: numbers measured against it
//! should hold against api.github.com. Every rule and its source is listed
//! in `docs/FAKEHUB.md`.
//!
//! **What it is not for.** It is not a GitHub clone: there is no git
//! protocol, no web UI, no webhooks, no search, and only the endpoints
//! listed in `docs/FAKEHUB.md`. It keeps state in memory only. It is not a
//! mock of ghcache's own components and contains no ghcache logic.
//!
//! ```no_run
//! # async fn t() -> std::io::Result<()> {
//! use ghcache_fakehub::{FakeHub, FakeHubConfig};
//! let hub = FakeHub::start(FakeHubConfig::default()).await?;
//! let token = hub.world().pat("alice").to_string();
//! let url = format!("{}/repos/{}", hub.base_url(), hub.world().private_repo());
//! # let _ = (token, url);
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
#![recursion_limit = "512"]

// Leaves first: `hub`, `reply` and `ctx` hold the types every layer shares
// and import nothing from `gates`, `api`, `graphql`, `server` or `render`,
// so the layers above form a tree (server -> api -> graphql), not a loop.
mod config;
mod ctx;
mod hub;
mod reply;
mod stats;
mod time;
mod world;

mod api;
mod gates;
mod graphql;
mod introspect;
mod render;
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use config::duration_ms;
pub use config::{
    FakeHubConfig, FaultConfig, LatencyProfile, LatencyRange, OutageWindow, RateLimits,
};
pub use reply::etag_for;
pub use server::EVERY_ANSWER;
pub use stats::{IdentityStats, StatsSnapshot};
pub use world::{AccountInfo, RepoAccess, RepoInfo, TokenInfo, TokenKind, World};

use hub::Hub;

/// A running fake GitHub.
#[derive(Debug)]
pub struct FakeHub {
    hub: Arc<Hub>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeHub {
    /// Starts a hub on `127.0.0.1:0` (an ephemeral port).
    pub async fn start(config: FakeHubConfig) -> std::io::Result<FakeHub> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a hub on `addr`.
    pub async fn start_on(addr: SocketAddr, config: FakeHubConfig) -> std::io::Result<FakeHub> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), addr.port())
        } else {
            addr
        };
        let base = format!("http://{host}");
        let generated = world::generate(config.seed, config.busy_repo_runs);
        let clock = time::Clock::new();
        let mut state = generated.state;
        let ttl = i64::try_from(config.token_ttl.as_secs()).unwrap_or(3600);
        let now = clock.now();
        for m in state.minted.values_mut() {
            m.expires_at = now + ttl;
        }
        let hub = Arc::new(Hub {
            base,
            faults: RwLock::new(config.faults.clone()),
            latency: RwLock::new(config.latency),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(7))),
            cfg: config,
            state: RwLock::new(state),
            tokens: generated.tokens,
            app_jwt: generated.app_jwt,
            world: generated.world,
            clock,
            rate: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            stats: stats::Stats::default(),
            cache: RwLock::new(HashMap::new()),
            seq: AtomicU64::new(1),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::serve(hub.clone(), listener, rx));
        tracing::info!(%addr, "fakehub listening");
        Ok(FakeHub {
            hub,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        self.hub.base.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The seeded world (tokens, accounts, repositories) as generated.
    pub fn world(&self) -> &World {
        &self.hub.world
    }

    /// Counters per identity (same data as `GET /_fakehub/stats`).
    pub fn stats(&self) -> StatsSnapshot {
        self.hub.stats.snapshot()
    }

    /// Zeroes the counters (not the rate-limit windows).
    pub fn reset_stats(&self) {
        self.hub.stats.reset();
    }

    /// Replaces the fault configuration; applies to requests arriving after.
    pub fn set_faults(&self, faults: FaultConfig) {
        *self.hub.faults.write() = faults;
    }

    /// Replaces the latency profile; applies to requests arriving after.
    pub fn set_latency(&self, latency: LatencyProfile) {
        *self.hub.latency.write() = latency;
    }

    /// Moves the virtual clock forward (rate-limit resets, token expiry).
    pub fn advance_clock(&self, by: Duration) {
        self.hub.clock.advance(by);
    }

    /// Virtual now, Unix seconds.
    pub fn now(&self) -> i64 {
        self.hub.clock.now()
    }

    /// Bumps the version of the resource at `path` (e.g. `/repos/o/r`,
    /// `/repos/o/r/issues/3`, `/repos/o/r/actions/runs`). Returns false if no
    /// such resource exists.
    pub fn bump(&self, path: &str) -> bool {
        self.hub.bump(path)
    }

    /// Stops accepting, closes connections, and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs a hub on `addr` until Ctrl-C, logging its base URL and the
/// well-known tokens' identities. For the `ghcache fakehub` command.
pub async fn serve_until_ctrl_c(addr: SocketAddr, config: FakeHubConfig) -> std::io::Result<()> {
    let hub = FakeHub::start_on(addr, config).await?;
    tracing::info!(
        base_url = %hub.base_url(),
        "fakehub ready; GET {}/_fakehub/world lists the seeded tokens",
        hub.base_url()
    );
    tokio::signal::ctrl_c().await?;
    hub.shutdown().await;
    Ok(())
}
