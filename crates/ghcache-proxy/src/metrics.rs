//! `/metrics`: the stats report in the OpenMetrics text format, encoded by
//! `prometheus-client` (its escaping and format rules, not ours). Built from
//! the same `StatsReport` as `/_ghcache/stats`, so the two cannot disagree.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::report::StatsReport;

/// The content type `render` produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
struct Snapshot(StatsReport, crate::PeerStatus, Vec<crate::MetricCounter>);

pub(crate) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

pub(crate) fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let r = &self.0;
        let e = &mut encoder;
        counter(
            e,
            "ghcache_requests",
            "Requests received by the proxy (control routes excluded).",
            r.requests,
        )?;
        {
            let mut family = e.encode_descriptor(
                "ghcache_responses",
                "Responses by X-Ghcache outcome.",
                None,
                MetricType::Counter,
            )?;
            for (outcome, value) in [
                ("HIT", r.hits.hit),
                ("REVALIDATED", r.hits.revalidated),
                ("SYNTHESIZED", r.hits.synthesized),
                ("COALESCED", r.hits.coalesced),
                ("MISS", r.misses),
                ("BYPASS", r.bypass),
                ("STALE", r.hits.stale),
            ] {
                let labels = [("outcome", outcome)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            e,
            "ghcache_upstream_requests",
            "Requests sent to GitHub.",
            r.upstream.requests,
        )?;
        {
            let mut family = e.encode_descriptor(
                "ghcache_upstream_responses",
                "Upstream answers by HTTP status code.",
                None,
                MetricType::Counter,
            )?;
            for (status, value) in &r.upstream.by_status {
                let labels = [("status", status.as_str())];
                ConstCounter::new(*value).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            e,
            "ghcache_upstream_answered",
            "Upstream exchanges that got a response head.",
            r.upstream.answered,
        )?;
        seconds(
            e,
            "ghcache_upstream_latency_seconds",
            "Summed time to the upstream response head (divide by ghcache_upstream_answered_total for the mean).",
            r.upstream.latency_us_total,
        )?;
        seconds(
            e,
            "ghcache_time_saved_seconds",
            "Upstream time HITs saved: each counts the mean upstream latency measured until then.",
            r.time_saved_us,
        )?;
        counter(
            e,
            "ghcache_upstream_errors",
            "Upstream failures (connect, timeout, 5xx).",
            r.upstream.errors,
        )?;
        counter(
            e,
            "ghcache_rate_limit_units_spent",
            "Rate-limit units spent upstream.",
            r.rate_limit.units_spent,
        )?;
        counter(
            e,
            "ghcache_rate_limit_units_saved",
            "Rate-limit units a cacheless client would have spent.",
            r.rate_limit.units_saved,
        )?;
        gauge(
            e,
            "ghcache_store_entries",
            "Entries in the store.",
            r.store.entries,
        )?;
        gauge(
            e,
            "ghcache_store_bytes",
            "Unique body bytes plus entry metadata bytes in the store.",
            r.store.bytes + r.store.meta_bytes,
        )?;
        counter(
            e,
            "ghcache_store_evictions",
            "Entries evicted.",
            r.store.evictions,
        )?;
        counter(
            e,
            "ghcache_store_persist_errors",
            "Failed writes to disk.",
            r.store.persist_errors,
        )?;
        gauge(
            e,
            "ghcache_store_degraded",
            "1 while the store runs from memory only.",
            u64::from(r.store.degraded),
        )?;
        gauge(
            e,
            "ghcache_connections_open",
            "Client connections open now.",
            r.connections.open,
        )?;
        counter(
            e,
            "ghcache_connections_shed",
            "Idle client connections closed to stay under the connection limit.",
            r.connections.shed,
        )?;
        counter(
            e,
            "ghcache_connections_refused",
            "Client connections refused at the limit with every connection busy.",
            r.connections.refused,
        )?;
        {
            let mut family = e.encode_descriptor(
                "ghcache_rate_limit_remaining",
                "Last known remaining quota of the partitions (keyed hash) closest to exhaustion.",
                None,
                MetricType::Gauge,
            )?;
            for p in &r.rate_limit.partitions {
                let labels = [
                    ("partition", p.partition.as_str()),
                    ("resource", p.resource.as_str()),
                ];
                ConstGauge::new(i64::try_from(p.remaining).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        gauge(
            e,
            "ghcache_rate_limit_partitions",
            "Partitions whose quota is tracked (at most 4096).",
            r.rate_limit.partitions_tracked,
        )?;
        gauge(
            e,
            "ghcache_rate_limit_backing_off",
            "Partitions GitHub told to back off (Retry-After, secondary limit), answered locally.",
            r.rate_limit.partitions_backing_off,
        )?;
        gauge(
            e,
            "ghcache_invalidation_records",
            "Write-invalidation records held (bounded).",
            r.invalidations.records,
        )?;
        counter(
            e,
            "ghcache_vault_requests",
            "Requests answered on the credential vault's socket.",
            r.vault.requests,
        )?;
        counter(
            e,
            "ghcache_vault_refused_callers",
            "Vault socket callers refused for running as another user.",
            r.vault.refused_callers,
        )?;
        counter(
            e,
            "ghcache_credentials_injected",
            "Credentials handed to jobs by inject-credentials through the daemon.",
            r.vault.credentials_injected,
        )?;
        crate::metrics_mesh::encode(e, &self.1)?;
        for family in &self.2 {
            if let [(None, value)] = family.samples.as_slice() {
                counter(e, family.name, family.help, *value)?;
                continue;
            }
            let mut metric =
                e.encode_descriptor(family.name, family.help, None, MetricType::Counter)?;
            for (label, value) in &family.samples {
                let (name, text) = label
                    .as_ref()
                    .map_or(("kind", ""), |(n, t)| (*n, t.as_str()));
                let labels = [(name, text)];
                ConstCounter::new(*value).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A counter of seconds, kept in µs.
fn seconds(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    micros: u64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(micros as f64 / 1e6).encode(metric)
}

/// The OpenMetrics text of a stats report, the mesh's status and the
/// swarm's own registry (libp2p-metrics), when the daemon has a mesh.
pub fn render(
    report: StatsReport,
    peers: &crate::PeerStatus,
    extensions: Vec<crate::MetricCounter>,
    swarm: Option<&std::sync::Arc<Registry>>,
) -> String {
    use prometheus_client::encoding::text;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(report, peers.clone(), extensions)));
    let mut out = String::new();
    let encoded = text::encode_registry(&mut out, &registry)
        .and_then(|()| swarm.map_or(Ok(()), |r| text::encode_registry(&mut out, r)))
        .and_then(|()| text::encode_eof(&mut out));
    if let Err(e) = encoded {
        // Writing to a String cannot fail; say so if it ever does.
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    out
}
