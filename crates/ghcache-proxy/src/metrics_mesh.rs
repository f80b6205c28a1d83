//! The mesh's part of `/metrics`, from the same typed `PeerStatus` that
//! `/_ghcache/peers` serves (so `ghcache peers --json` and `/metrics`
//! cannot disagree). Without a mesh only `ghcache_mesh_enabled 0` is shown.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::PeerStatus;
use crate::metrics::{counter, gauge};

/// A family of counters (or gauges) with one label.
fn family(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    samples: &[(&str, u64)],
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, kind)?;
    for (value_label, value) in samples {
        let labels = [(label, *value_label)];
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
            _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(sample)?,
        }
    }
    Ok(())
}

pub(crate) fn encode(e: &mut DescriptorEncoder<'_>, peers: &PeerStatus) -> std::fmt::Result {
    let mesh = peers.mesh.as_ref().filter(|_| peers.enabled);
    gauge(
        e,
        "ghcache_mesh_enabled",
        "1 when this daemon shares its cache over the peer mesh.",
        u64::from(mesh.is_some()),
    )?;
    let Some(m) = mesh else { return Ok(()) };
    gauge(
        e,
        "ghcache_mesh_running",
        "1 while the mesh's event loop runs (0: it stopped, nothing is shared).",
        u64::from(m.running),
    )?;
    let members = |want: Option<bool>| {
        m.connected_peers
            .iter()
            .filter(|p| p.member == want)
            .count() as u64
    };
    family(
        e,
        "ghcache_peers_connected",
        "Connected peers by membership verdict (member: same cluster key).",
        MetricType::Gauge,
        "member",
        &[
            ("true", members(Some(true))),
            ("false", members(Some(false))),
            ("unknown", members(None)),
        ],
    )?;
    let d = &m.discovered;
    family(
        e,
        "ghcache_peers_discovered",
        "Peers found, by discovery source.",
        MetricType::Gauge,
        "source",
        &[
            ("registry", d.registry.len() as u64),
            ("bootstrap", d.bootstrap.len() as u64),
            ("mdns", d.mdns.len() as u64),
            ("kademlia", d.kademlia.len() as u64),
            ("manual", d.manual.len() as u64),
        ],
    )?;
    gauge(
        e,
        "ghcache_peers_banned",
        "Peers banned for sending what does not open under the cluster key.",
        m.banned_peers.len() as u64,
    )?;
    gauge(
        e,
        "ghcache_mesh_announce_peers",
        "Peers subscribed to the announcement topic.",
        m.announce_peers as u64,
    )?;
    family(
        e,
        "ghcache_mesh_fetches",
        "Fetch requests from peers we answered, by result.",
        MetricType::Counter,
        "result",
        &[
            ("served", m.fetches_served),
            ("not_found", m.fetches_not_found),
        ],
    )?;
    family(
        e,
        "ghcache_mesh_lookups",
        "Our lookups at peers, by result.",
        MetricType::Counter,
        "result",
        &[("hit", m.peer_hits), ("miss", m.peer_misses)],
    )?;
    counter(
        e,
        "ghcache_mesh_provider_lookups",
        "Lookups that went on to ask Kademlia for providers.",
        m.provider_lookups,
    )?;
    counter(
        e,
        "ghcache_mesh_provider_hits",
        "Peer hits from a peer found through a provider record.",
        m.provider_hits,
    )?;
    gauge(
        e,
        "ghcache_mesh_provided_keys",
        "Resources we publish provider records for.",
        m.provided_keys as u64,
    )?;
    family(
        e,
        "ghcache_mesh_bytes",
        "Payload bytes exchanged with peers, by direction.",
        MetricType::Counter,
        "direction",
        &[("in", m.bytes_in), ("out", m.bytes_out)],
    )?;
    family(
        e,
        "ghcache_mesh_announcements",
        "Version and invalidation announcements, by direction.",
        MetricType::Counter,
        "direction",
        &[
            ("sent", m.announcements_sent),
            ("received", m.announcements_received),
        ],
    )?;
    let r = &m.rejected;
    family(
        e,
        "ghcache_mesh_rejected_messages",
        "Peer messages refused, by reason.",
        MetricType::Counter,
        "reason",
        &[
            ("decrypt", r.decrypt),
            ("cid_mismatch", r.cid_mismatch),
            ("oversized", r.oversized),
            ("malformed", r.malformed),
            ("replayed", r.replayed),
        ],
    )?;
    // Declared always, sampled once an announcement arrived.
    let metric = e.encode_descriptor(
        "ghcache_mesh_announcement_lag_seconds",
        "Sender's clock to our receipt of the last valid announcement (negative: its clock is ahead).",
        None,
        MetricType::Gauge,
    )?;
    if let Some(lag) = m.last_announcement_lag_ms {
        ConstGauge::new(lag as f64 / 1000.0).encode(metric)?;
    }
    Ok(())
}
