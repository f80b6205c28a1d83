//! Counters for `/_ghcache/stats` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::counter::{Counters, HotCounter, Plain, Striped};
use crate::quota::QuotaTracker;
use crate::report::{
    ConnectionCounts, HitCounts, PartitionQuota, RateLimitReport, StatsReport, StoreReport,
    UpstreamCounts,
};

/// How a response was produced; sent as `X-Ghcache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh, same partition, no upstream request.
    Hit,
    /// Our stored ETag answered `304`.
    Revalidated,
    /// A body held for another partition (or a peer) answered `304` to the
    /// requester's synthesised ETag.
    Synthesized,
    /// Shared another request's upstream call.
    Coalesced,
    /// Fetched from upstream (or refused locally without a held copy).
    Miss,
    /// Not cacheable: passed through untouched.
    Bypass,
    /// Upstream failed or refused; a held copy was served.
    Stale,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Synthesized => "SYNTHESIZED",
            Outcome::Coalesced => "COALESCED",
            Outcome::Miss => "MISS",
            Outcome::Bypass => "BYPASS",
            Outcome::Stale => "STALE",
        }
    }

    /// Every outcome, by [`Outcome::index`] (checked at compile time).
    pub const ALL: [Outcome; 7] = [
        Outcome::Hit,
        Outcome::Revalidated,
        Outcome::Synthesized,
        Outcome::Coalesced,
        Outcome::Miss,
        Outcome::Bypass,
        Outcome::Stale,
    ];

    /// Its counter: a new outcome fails to compile here until counted.
    const fn index(self) -> usize {
        match self {
            Outcome::Hit => 0,
            Outcome::Revalidated => 1,
            Outcome::Synthesized => 2,
            Outcome::Coalesced => 3,
            Outcome::Miss => 4,
            Outcome::Bypass => 5,
            Outcome::Stale => 6,
        }
    }

    /// The outcome an `X-Ghcache` value names.
    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// [`Outcome::as_str`] as the `X-Ghcache` value.
    pub fn header_value(self) -> http::HeaderValue {
        HEADER_VALUES[self.index()].clone()
    }
}

/// Each outcome's `X-Ghcache` value by [`Outcome::index`], built at
/// compile time: `from_static` checks every byte when it runs.
static HEADER_VALUES: [http::HeaderValue; Outcome::ALL.len()] = [
    http::HeaderValue::from_static(Outcome::ALL[0].as_str()),
    http::HeaderValue::from_static(Outcome::ALL[1].as_str()),
    http::HeaderValue::from_static(Outcome::ALL[2].as_str()),
    http::HeaderValue::from_static(Outcome::ALL[3].as_str()),
    http::HeaderValue::from_static(Outcome::ALL[4].as_str()),
    http::HeaderValue::from_static(Outcome::ALL[5].as_str()),
    http::HeaderValue::from_static(Outcome::ALL[6].as_str()),
];

// `Outcome::ALL` lists every outcome at its own index.
const _: () = {
    let mut i = 0;
    while i < Outcome::ALL.len() {
        assert!(Outcome::ALL[i].index() == i);
        i += 1;
    }
};

/// Answers by outcome: the daemon's, and each job's. Indexed by
/// [`Outcome::index`]: striped for the daemon's totals, which every
/// request bumps; plain for a job's.
#[derive(Debug, Default)]
pub struct OutcomeCounters<C = Striped<{ Outcome::ALL.len() }>>(C);

/// A job's outcome counters.
pub type JobOutcomeCounters = OutcomeCounters<Plain<{ Outcome::ALL.len() }>>;

impl<C: Counters> OutcomeCounters<C> {
    pub fn record(&self, outcome: Outcome) {
        self.0.add(outcome.index(), 1);
    }

    /// Answers from what was held, with their total.
    pub fn hits(&self) -> HitCounts {
        let get = |o: Outcome| self.0.get(o.index());
        let hits = HitCounts {
            hit: get(Outcome::Hit),
            revalidated: get(Outcome::Revalidated),
            synthesized: get(Outcome::Synthesized),
            coalesced: get(Outcome::Coalesced),
            stale: get(Outcome::Stale),
            total: 0,
        };
        let total = hits.hit + hits.revalidated + hits.synthesized + hits.coalesced + hits.stale;
        HitCounts { total, ..hits }
    }

    pub fn misses(&self) -> u64 {
        self.0.get(Outcome::Miss.index())
    }

    pub fn bypassed(&self) -> u64 {
        self.0.get(Outcome::Bypass.index())
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Bumped on every request: striped.
    pub requests: HotCounter,
    pub outcomes: OutcomeCounters,
    pub upstream_requests: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub upstream_not_modified: AtomicU64,
    pub units_spent: AtomicU64,
    /// Bumped on every hit: striped.
    pub units_saved: HotCounter,
    pub refused_quota: AtomicU64,
    pub store_errors: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    /// Idle connections closed to make room under the connection limit.
    pub connections_shed: AtomicU64,
    /// Connections refused: at the limit with every connection busy.
    pub connections_refused: AtomicU64,
    /// Upstream answers by status code.
    pub upstream_status: StatusCounts,
    /// Upstream time saved by `HIT`s: the mean upstream latency at the
    /// moment of each hit, summed (µs).
    pub time_saved_us: HotCounter,
}

/// One counter per status code 100–599, so counting is one atomic add.
#[derive(Debug)]
pub struct StatusCounts(Box<[AtomicU64]>);

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts((100..600).map(|_| AtomicU64::new(0)).collect())
    }
}

impl StatusCounts {
    pub fn count(&self, status: http::StatusCode) {
        if let Some(c) = self.0.get(usize::from(status.as_u16()).wrapping_sub(100)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The codes seen, with their counts.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        (100u16..)
            .zip(self.0.iter())
            .map(|(code, c)| (code, c.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(code, n)| (code.to_string(), n))
            .collect()
    }
}

impl Stats {
    pub fn record(&self, outcome: Outcome) {
        self.outcomes.record(outcome);
    }

    /// The typed stats document (`/_ghcache/stats`).
    pub fn report(
        &self,
        store: &ghcache_store::StoreStats,
        quotas: &QuotaTracker,
        state_dir: Option<&str>,
    ) -> StatsReport {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let hits = self.outcomes.hits();
        let total = hits.total;
        let cacheable = total + self.outcomes.misses();
        let quota = quotas.snapshot();
        StatsReport {
            requests: self.requests.load(Relaxed),
            hits,
            misses: self.outcomes.misses(),
            bypass: self.outcomes.bypassed(),
            hit_rate: if cacheable == 0 {
                0.0
            } else {
                total as f64 / cacheable as f64
            },
            upstream: UpstreamCounts {
                requests: get(&self.upstream_requests),
                not_modified: get(&self.upstream_not_modified),
                errors: get(&self.upstream_errors),
                by_status: self.upstream_status.snapshot(),
                ..UpstreamCounts::default()
            },
            time_saved_us: self.time_saved_us.load(Relaxed),
            rate_limit: RateLimitReport {
                units_spent: get(&self.units_spent),
                units_saved: self.units_saved.load(Relaxed),
                refused_while_exhausted: get(&self.refused_quota),
                partitions: quota
                    .rows
                    .into_iter()
                    .map(|(partition, resource, q)| PartitionQuota {
                        partition,
                        resource,
                        limit: q.limit,
                        remaining: q.remaining,
                        used: q.used,
                        reset: q.reset,
                    })
                    .collect(),
                partitions_tracked: quota.tracked as u64,
                partitions_backing_off: quota.backing_off as u64,
            },
            store: StoreReport {
                entries: store.entries,
                bytes: store.bytes,
                meta_bytes: store.meta_bytes,
                resident_bytes: store.resident_bytes,
                evictions: store.evictions,
                corrupt_dropped: store.corrupt_dropped,
                persist_errors: store.persist_errors,
                write_errors: get(&self.store_errors),
                degraded: store.degraded,
                path: store.path.as_ref().map(|p| p.display().to_string()),
            },
            connections: ConnectionCounts {
                open: get(&self.connections_open),
                total: get(&self.connections_total),
                shed: get(&self.connections_shed),
                refused: get(&self.connections_refused),
            },
            invalidations: Default::default(),
            state_dir: state_dir.map(str::to_owned),
            vault: Default::default(),
            extensions: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_says_its_own_name() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.header_value(), outcome.as_str());
            assert_eq!(
                Outcome::parse(outcome.header_value().to_str().unwrap()),
                Some(outcome)
            );
        }
    }
}
