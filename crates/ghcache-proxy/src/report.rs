//! The documents of `/_ghcache/stats` and `/_ghcache/health`, typed both
//! ways: the daemon serialises them, `ghcache stats`, `health` and `doctor`
//! deserialise them.

use serde::{Deserialize, Serialize};

/// `/_ghcache/health`: the daemon answers, and which upstream it forwards to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthReport {
    /// `ok` whenever the daemon answers.
    pub status: String,
    pub version: String,
    /// The GitHub API base it forwards to.
    pub upstream: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsReport {
    /// Requests that entered the pipeline (control routes excluded).
    pub requests: u64,
    pub hits: HitCounts,
    pub misses: u64,
    pub bypass: u64,
    pub hit_rate: f64,
    /// Upstream time `HIT`s saved: each hit counts the mean upstream
    /// latency measured until then (µs).
    pub time_saved_us: u64,
    pub upstream: UpstreamCounts,
    pub rate_limit: RateLimitReport,
    pub store: StoreReport,
    pub connections: ConnectionCounts,
    pub invalidations: InvalidationReport,
    pub state_dir: Option<String>,
    pub vault: VaultReport,
    /// Sections of control extensions (`codeql`), by name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extensions: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HitCounts {
    pub hit: u64,
    pub revalidated: u64,
    pub synthesized: u64,
    pub coalesced: u64,
    pub stale: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamCounts {
    pub requests: u64,
    pub not_modified: u64,
    pub errors: u64,
    /// Answers by status code (`"200"`, `"304"`, …).
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Exchanges that got a response head, and their summed time to it (µs).
    pub answered: u64,
    pub latency_us_total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitReport {
    pub units_spent: u64,
    pub units_saved: u64,
    pub refused_while_exhausted: u64,
    /// The partitions closest to exhaustion (at most 20).
    pub partitions: Vec<PartitionQuota>,
    pub partitions_tracked: u64,
    pub partitions_backing_off: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionQuota {
    /// A keyed hash, never a token.
    pub partition: String,
    pub resource: String,
    pub limit: u64,
    pub remaining: u64,
    pub used: u64,
    /// Unix seconds.
    pub reset: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreReport {
    pub entries: u64,
    pub bytes: u64,
    pub meta_bytes: u64,
    pub resident_bytes: u64,
    pub evictions: u64,
    pub corrupt_dropped: u64,
    pub persist_errors: u64,
    pub write_errors: u64,
    pub degraded: bool,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionCounts {
    pub open: u64,
    pub total: u64,
    pub shed: u64,
    pub refused: u64,
}

/// The credential vault's local channel, as its server counts it (never
/// names or values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VaultReport {
    pub served: bool,
    pub requests: u64,
    pub refused_callers: u64,
    pub credentials_injected: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InvalidationReport {
    pub records: u64,
}
