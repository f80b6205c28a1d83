//! Turning a run's samples and counters into its row of figures.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use ghcache_proxy::{Outcome, StatsReport, UnitCauses};
use serde::{Deserialize, Serialize};

use crate::config::{FleetConfig, Mode};
use crate::workload::Sample;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetReport {
    pub config: FleetConfig,
    pub modes: Vec<ModeResult>,
}

impl FleetReport {
    pub fn mode(&self, mode: Mode) -> Option<&ModeResult> {
        self.modes.iter().find(|m| m.mode == mode)
    }
}

/// How the clients' requests were answered (`X-Ghcache`), by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Fresh, same token, no request to GitHub.
    pub hit: u64,
    /// Our ETag answered `304`.
    pub revalidated: u64,
    /// Another token's or a peer's copy, confirmed by a synthesised ETag.
    pub synthesized: u64,
    /// Shared a concurrent identical request's answer.
    pub coalesced: u64,
    /// Fetched from GitHub.
    pub miss: u64,
    /// Not cacheable (writes), passed through.
    pub bypass: u64,
    pub stale: u64,
    /// No daemon in the way (the no-cache mode).
    pub direct: u64,
}

/// Nearest-rank percentiles of the clients' latencies, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Reads that reached GitHub for a version some client had already been
/// sent or was being sent (only the first delivery of each version is
/// unavoidable). Counted from the clients' side: a `MISS` (or, without a
/// cache, any read) of a body already delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraUnits {
    /// Started before the version's first delivery had ended: a concurrent
    /// fetch of the same version under another token (coalescing is per
    /// token) or on another host.
    pub concurrent: u64,
    /// Started after the version had been delivered on another runner: the
    /// fleet held it, but this runner's daemon did not get it from a peer.
    pub held_elsewhere: u64,
    /// Started after the version had been delivered on this runner: its own
    /// daemon held it (under another token) and still fetched.
    pub held_here: u64,
    /// The paths costing the most extra units, with their count.
    pub top_paths: Vec<(String, u64)>,
}

/// What the fake GitHub itself counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubCounters {
    pub requests: u64,
    pub units: u64,
    pub not_modified: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeResult {
    pub mode: Mode,
    pub title: String,
    /// Requests the clients made.
    pub requests: u64,
    /// Requests sent to GitHub, as the daemons counted them (the clients'
    /// own count without a cache).
    pub upstream_requests: u64,
    /// Rate-limit units spent, as the daemons counted them.
    pub units: u64,
    pub outcomes: Outcomes,
    /// Entries the daemons got from a peer (served as `HIT` under fleet
    /// trust, otherwise confirmed by GitHub as `SYNTHESIZED`).
    pub peer_copies: u64,
    pub latency: Percentiles,
    pub wall_ms: u64,
    /// Distinct resource versions the clients received, plus writes: one
    /// unit each is the least any cache could spend.
    pub physical_limit: u64,
    /// Answers that were not 2xx.
    pub failed: u64,
    /// A few of them: `STATUS path`.
    pub failures: Vec<String>,
    /// Where the units above the physical limit went.
    pub extra_units: ExtraUnits,
    /// Every unit the daemons spent, by why they went to GitHub (`None`
    /// without a cache).
    pub unit_causes: Option<UnitCauses>,
    /// Bodies octocrab's models refused (distinct messages).
    pub shape_errors: Vec<String>,
    /// The fake GitHub's own counters for the run.
    pub github: GithubCounters,
}

fn extra_units(samples: &[Sample]) -> ExtraUnits {
    use std::collections::HashMap;
    // The first delivery of each version: (ended, runner).
    let mut first: HashMap<&(String, [u8; 32]), &Sample> = HashMap::new();
    for s in samples {
        if let Some(v) = &s.version {
            let entry = first.entry(v).or_insert(s);
            if s.ended < entry.ended {
                *entry = s;
            }
        }
    }
    let mut extra = ExtraUnits::default();
    let mut paths: HashMap<&str, u64> = HashMap::new();
    for s in samples {
        let paid = match s.outcome.as_deref() {
            None => true,
            Some(text) => Outcome::parse(text) == Some(Outcome::Miss),
        };
        let (Some(v), true) = (&s.version, paid) else {
            continue;
        };
        let Some(f) = first.get(v) else { continue };
        if std::ptr::eq(*f, s) {
            continue;
        }
        let slot = if s.started < f.ended {
            &mut extra.concurrent
        } else if s.runner == f.runner {
            &mut extra.held_here
        } else {
            &mut extra.held_elsewhere
        };
        *slot += 1;
        *paths.entry(s.path.as_str()).or_default() += 1;
    }
    let mut top: Vec<(String, u64)> = paths.into_iter().map(|(p, n)| (p.to_owned(), n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(5);
    extra.top_paths = top;
    extra
}

pub(crate) fn tally(
    mode: Mode,
    samples: &[Sample],
    daemons: Option<&[StatsReport]>,
    peer_copies: u64,
    unit_causes: Option<UnitCauses>,
    github: GithubCounters,
    wall: Duration,
) -> ModeResult {
    let mut outcomes = Outcomes::default();
    for sample in samples {
        let slot = match sample.outcome.as_deref().map(Outcome::parse) {
            Some(Some(Outcome::Hit)) => &mut outcomes.hit,
            Some(Some(Outcome::Revalidated)) => &mut outcomes.revalidated,
            Some(Some(Outcome::Synthesized)) => &mut outcomes.synthesized,
            Some(Some(Outcome::Coalesced)) => &mut outcomes.coalesced,
            Some(Some(Outcome::Bypass)) => &mut outcomes.bypass,
            Some(Some(Outcome::Stale)) => &mut outcomes.stale,
            Some(Some(Outcome::Miss) | None) => &mut outcomes.miss,
            None => &mut outcomes.direct,
        };
        *slot += 1;
    }
    let versions: HashSet<&(String, [u8; 32])> =
        samples.iter().filter_map(|s| s.version.as_ref()).collect();
    let writes = samples.iter().filter(|s| s.write).count() as u64;
    let (upstream_requests, units) = match daemons {
        Some(reports) => (
            reports.iter().map(|r| r.upstream.requests).sum(),
            reports.iter().map(|r| r.rate_limit.units_spent).sum(),
        ),
        // Without a cache every request reaches GitHub, and none is a
        // conditional request.
        None => (samples.len() as u64, samples.len() as u64),
    };
    let shape_errors: BTreeSet<String> = samples
        .iter()
        .filter_map(|s| s.shape_error.clone())
        .collect();
    ModeResult {
        mode,
        title: mode.title().to_owned(),
        requests: samples.len() as u64,
        upstream_requests,
        units,
        outcomes,
        peer_copies,
        latency: percentiles(samples.iter().map(|s| s.latency).collect()),
        wall_ms: wall.as_millis() as u64,
        physical_limit: versions.len() as u64 + writes,
        failed: samples
            .iter()
            .filter(|s| !(200..300).contains(&s.status))
            .count() as u64,
        failures: samples
            .iter()
            .filter(|s| !(200..300).contains(&s.status))
            .map(|s| format!("{} {}", s.status, s.path))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(5)
            .collect(),
        extra_units: extra_units(samples),
        unit_causes,
        shape_errors: shape_errors.into_iter().take(5).collect(),
        github,
    }
}

fn percentiles(mut latencies: Vec<Duration>) -> Percentiles {
    if latencies.is_empty() {
        return Percentiles::default();
    }
    latencies.sort();
    let at = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1e3
    };
    Percentiles {
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |n: u64| Duration::from_millis(n);
        let p = percentiles((1..=100).map(ms).collect());
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(percentiles(vec![ms(7)]).p50_ms, 7.0);
    }
}
