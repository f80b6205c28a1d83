//! Configuration of a fake hub: seed, rate limits, latency and faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything that shapes one fake hub. `Default` is the test configuration:
/// seed 42, zero latency, no faults, GitHub's documented limits.
#[derive(Debug, Clone)]
pub struct FakeHubConfig {
    /// Seed of the deterministic world generator (ids, shas, tokens, bodies).
    pub seed: u64,
    /// Injected latency per endpoint class.
    pub latency: LatencyProfile,
    /// Injected faults (errors, hangs, resets, outages).
    pub faults: FaultConfig,
    /// More than this many in-flight requests for one identity are refused
    /// with GitHub's secondary-rate-limit answer. GitHub documents 100.
    pub secondary_concurrency_limit: usize,
    /// Lifetime of minted installation tokens (GitHub: 1 hour).
    pub token_ttl: Duration,
    /// Primary rate limits per principal kind and category.
    pub limits: RateLimits,
    /// Number of workflow runs generated for each of the two busy repositories
    /// (`acme/widgets`, `acme/gadgets`). Other repositories get a few dozen.
    pub busy_repo_runs: usize,
    /// Test knob: seconds added to the `Date` header the fake sends, as if
    /// GitHub's clock and this host's disagreed (doctor's clock-skew check).
    /// `0` (the default) leaves `Date` to the HTTP server: the wall clock.
    pub date_skew_secs: i64,
}

impl Default for FakeHubConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            latency: LatencyProfile::zero(),
            faults: FaultConfig::default(),
            secondary_concurrency_limit: 100,
            token_ttl: Duration::from_secs(3600),
            limits: RateLimits::default(),
            busy_repo_runs: 320,
            date_skew_secs: 0,
        }
    }
}

impl FakeHubConfig {
    /// Like `Default`, with latency shaped like api.github.com seen from a
    /// runner: roughly 100–300 ms depending on the endpoint class.
    pub fn realistic() -> Self {
        Self {
            latency: LatencyProfile::realistic(),
            ..Self::default()
        }
    }

    /// Convenience: default config with another seed.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// Primary rate limits (units per window). Defaults are GitHub's documented
/// numbers for github.com (non-Enterprise-Cloud).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// Unauthenticated requests, per client IP (GitHub: 60/h).
    pub anonymous: u64,
    /// Personal access token, per user (GitHub: 5,000/h). Also GraphQL points.
    pub pat: u64,
    /// `GITHUB_TOKEN`, per repository (GitHub: 1,000/h). Also GraphQL points.
    pub github_token: u64,
    /// App installation, per installation (GitHub: 5,000/h minimum).
    pub installation: u64,
    /// Search category, authenticated (GitHub: 30/min).
    pub search_authenticated: u64,
    /// Search category, anonymous (GitHub: 10/min).
    pub search_anonymous: u64,
    /// `code_scanning_upload` category (SARIF uploads).
    pub code_scanning_upload: u64,
    /// `actions_runner_registration` category.
    pub actions_runner_registration: u64,
    /// Length of a primary window (GitHub: 1 hour from its first request).
    #[serde(with = "duration_secs")]
    pub window: Duration,
    /// Length of a search window (GitHub: 1 minute).
    #[serde(with = "duration_secs")]
    pub search_window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            anonymous: 60,
            pat: 5000,
            github_token: 1000,
            installation: 5000,
            search_authenticated: 30,
            search_anonymous: 10,
            code_scanning_upload: 1000,
            actions_runner_registration: 10000,
            window: Duration::from_secs(3600),
            search_window: Duration::from_secs(60),
        }
    }
}

/// Latency of one endpoint class: `base + uniform(0, jitter)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyRange {
    /// Minimum added latency.
    #[serde(with = "duration_ms")]
    pub base: Duration,
    /// Maximum extra on top of `base`, drawn uniformly.
    #[serde(with = "duration_ms")]
    pub jitter: Duration,
}

impl LatencyRange {
    /// `base + uniform(0, jitter)`.
    pub const fn new(base: Duration, jitter: Duration) -> Self {
        Self { base, jitter }
    }
    /// Largest latency this range can produce.
    pub fn max(&self) -> Duration {
        self.base + self.jitter
    }
}

/// Injected latency per endpoint class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyProfile {
    /// Single-resource GETs (`/repos/o/r`, `/user`, a run, a commit…).
    pub read: LatencyRange,
    /// Collection GETs (runs, issues, pulls, repos, runners…).
    pub list: LatencyRange,
    /// POST/PATCH/PUT/DELETE on the REST API.
    pub write: LatencyRange,
    /// `POST /graphql`.
    pub graphql: LatencyRange,
}

impl LatencyProfile {
    /// No added latency.
    pub const fn zero() -> Self {
        let z = LatencyRange::new(Duration::ZERO, Duration::ZERO);
        Self {
            read: z,
            list: z,
            write: z,
            graphql: z,
        }
    }

    /// The same range for every class.
    pub const fn uniform(base: Duration, jitter: Duration) -> Self {
        let r = LatencyRange::new(base, jitter);
        Self {
            read: r,
            list: r,
            write: r,
            graphql: r,
        }
    }

    /// Roughly what a runner in a cloud region sees from api.github.com.
    pub const fn realistic() -> Self {
        Self {
            read: LatencyRange::new(Duration::from_millis(90), Duration::from_millis(80)),
            list: LatencyRange::new(Duration::from_millis(140), Duration::from_millis(140)),
            write: LatencyRange::new(Duration::from_millis(180), Duration::from_millis(120)),
            graphql: LatencyRange::new(Duration::from_millis(150), Duration::from_millis(150)),
        }
    }
}

/// A window of virtual time (seconds since the hub started, on the virtual
/// clock) during which every API request answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageWindow {
    /// Start, seconds since hub start (inclusive).
    pub start_secs: u64,
    /// End, seconds since hub start (exclusive).
    pub end_secs: u64,
}

/// Injected faults. Rates are probabilities in `[0, 1]` per API request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Probability of a 502/503 with a GitHub-style JSON body.
    pub error_rate: f64,
    /// Probability of a hang of `timeout_hang`, after which the connection is
    /// closed without an answer.
    pub timeout_rate: f64,
    /// How long a "timeout" hangs. Default (zero) means 120 s.
    #[serde(with = "duration_ms")]
    pub timeout_hang: Duration,
    /// Probability that the connection is dropped without any response.
    pub reset_rate: f64,
    /// Full outage now: every API request answers 503.
    pub outage: bool,
    /// Scheduled outages on the virtual clock.
    pub outage_windows: Vec<OutageWindow>,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }
    /// Every API request answers 503 until changed.
    pub fn outage() -> Self {
        Self {
            outage: true,
            ..Self::default()
        }
    }
    pub(crate) fn hang(&self) -> Duration {
        if self.timeout_hang.is_zero() {
            Duration::from_secs(120)
        } else {
            self.timeout_hang
        }
    }
}

/// A `Duration` as whole milliseconds in serde (`#[serde(with = ...)]`).
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}
