//! Counters for `/_ghcache/stats` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    pub fn as_str(self) -> &'static str {
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
}

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub hit: AtomicU64,
    pub revalidated: AtomicU64,
    pub synthesized: AtomicU64,
    pub coalesced: AtomicU64,
    pub miss: AtomicU64,
    pub bypass: AtomicU64,
    pub stale: AtomicU64,
    pub upstream_requests: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub upstream_not_modified: AtomicU64,
    pub units_spent: AtomicU64,
    pub units_saved: AtomicU64,
    pub refused_quota: AtomicU64,
    pub store_errors: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    /// Idle connections closed to make room under the connection limit.
    pub connections_shed: AtomicU64,
    /// Connections refused: at the limit with every connection busy.
    pub connections_refused: AtomicU64,
}

impl Stats {
    pub fn record(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Hit => &self.hit,
            Outcome::Revalidated => &self.revalidated,
            Outcome::Synthesized => &self.synthesized,
            Outcome::Coalesced => &self.coalesced,
            Outcome::Miss => &self.miss,
            Outcome::Bypass => &self.bypass,
            Outcome::Stale => &self.stale,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The typed stats document (`/_ghcache/stats`).
    pub fn report(
        &self,
        store: &ghcache_store::StoreStats,
        quotas: &QuotaTracker,
        state_dir: Option<&str>,
    ) -> StatsReport {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let hits = HitCounts {
            hit: get(&self.hit),
            revalidated: get(&self.revalidated),
            synthesized: get(&self.synthesized),
            coalesced: get(&self.coalesced),
            stale: get(&self.stale),
            total: 0,
        };
        let total = hits.hit + hits.revalidated + hits.synthesized + hits.coalesced + hits.stale;
        let cacheable = total + get(&self.miss);
        let quota = quotas.snapshot();
        StatsReport {
            requests: get(&self.requests),
            hits: HitCounts { total, ..hits },
            misses: get(&self.miss),
            bypass: get(&self.bypass),
            hit_rate: if cacheable == 0 {
                0.0
            } else {
                total as f64 / cacheable as f64
            },
            upstream: UpstreamCounts {
                requests: get(&self.upstream_requests),
                not_modified: get(&self.upstream_not_modified),
                errors: get(&self.upstream_errors),
            },
            rate_limit: RateLimitReport {
                units_spent: get(&self.units_spent),
                units_saved: get(&self.units_saved),
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
        }
    }

    /// Prometheus text exposition. Partition labels are short keyed hashes.
    pub fn to_prometheus(
        &self,
        store: &ghcache_store::StoreStats,
        quotas: &QuotaTracker,
    ) -> String {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let quota = quotas.snapshot();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in rows {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "ghcache_requests_total",
            "counter",
            "Requests received by the proxy.",
            vec![(String::new(), get(&self.requests))],
        );
        metric(
            "ghcache_responses_total",
            "counter",
            "Responses by X-Ghcache outcome.",
            [
                ("HIT", &self.hit),
                ("REVALIDATED", &self.revalidated),
                ("SYNTHESIZED", &self.synthesized),
                ("COALESCED", &self.coalesced),
                ("MISS", &self.miss),
                ("BYPASS", &self.bypass),
                ("STALE", &self.stale),
            ]
            .into_iter()
            .map(|(name, c)| (format!("{{outcome=\"{name}\"}}"), get(c)))
            .collect(),
        );
        metric(
            "ghcache_upstream_requests_total",
            "counter",
            "Requests sent to GitHub.",
            vec![(String::new(), get(&self.upstream_requests))],
        );
        metric(
            "ghcache_upstream_errors_total",
            "counter",
            "Upstream failures (connect, timeout, 5xx).",
            vec![(String::new(), get(&self.upstream_errors))],
        );
        metric(
            "ghcache_rate_limit_units_spent_total",
            "counter",
            "Rate-limit units spent upstream.",
            vec![(String::new(), get(&self.units_spent))],
        );
        metric(
            "ghcache_rate_limit_units_saved_total",
            "counter",
            "Rate-limit units a cacheless client would have spent.",
            vec![(String::new(), get(&self.units_saved))],
        );
        metric(
            "ghcache_store_entries",
            "gauge",
            "Entries in the store.",
            vec![(String::new(), store.entries)],
        );
        metric(
            "ghcache_store_bytes",
            "gauge",
            "Unique body bytes in the store.",
            vec![(String::new(), store.bytes)],
        );
        metric(
            "ghcache_store_evictions_total",
            "counter",
            "Entries evicted.",
            vec![(String::new(), store.evictions)],
        );
        metric(
            "ghcache_store_persist_errors_total",
            "counter",
            "Failed writes to disk.",
            vec![(String::new(), store.persist_errors)],
        );
        metric(
            "ghcache_store_degraded",
            "gauge",
            "1 while the store runs from memory only.",
            vec![(String::new(), u64::from(store.degraded))],
        );
        metric(
            "ghcache_rate_limit_remaining",
            "gauge",
            "Last known remaining quota of the partitions (keyed hash) closest to exhaustion.",
            quota
                .rows
                .into_iter()
                .map(|(p, r, q)| {
                    (
                        format!("{{partition=\"{p}\",resource=\"{r}\"}}"),
                        q.remaining,
                    )
                })
                .collect(),
        );
        metric(
            "ghcache_connections_open",
            "gauge",
            "Client connections open now.",
            vec![(String::new(), get(&self.connections_open))],
        );
        metric(
            "ghcache_connections_shed_total",
            "counter",
            "Idle client connections closed to stay under the connection limit.",
            vec![(String::new(), get(&self.connections_shed))],
        );
        metric(
            "ghcache_connections_refused_total",
            "counter",
            "Client connections refused at the limit with every connection busy.",
            vec![(String::new(), get(&self.connections_refused))],
        );
        metric(
            "ghcache_rate_limit_partitions",
            "gauge",
            "Partitions whose quota is tracked (at most 4096).",
            vec![(String::new(), quota.tracked as u64)],
        );
        metric(
            "ghcache_rate_limit_backing_off",
            "gauge",
            "Partitions GitHub told to back off (Retry-After, secondary limit), answered locally.",
            vec![(String::new(), quota.backing_off as u64)],
        );
        out
    }
}
