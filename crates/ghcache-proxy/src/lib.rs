//! The GitHub-aware caching reverse proxy.
//!
//! This crate is for answering GitHub API requests from cache whenever GitHub
//! would have answered the same, and spending rate limit only when something
//! changed: fresh same-token hits with no request, revalidation with the
//! requester's own token (stored ETag, or the ETag GitHub would give that
//! token for a body we hold), coalescing of identical concurrent requests,
//! stale-if-error, and holding back a token whose quota is exhausted.
//!
//! It is not for storage (that is `ghcache-store`) or networking between
//! daemons (that is the mesh, plugged in as a [`PeerSource`]). It never
//! stores, logs or forwards a token anywhere but to the upstream it came for.

mod body;
mod causes;
mod control;
mod counter;
mod flight;
mod foreign;
mod freshness;
mod headers;
mod invalidation;
mod job;
mod memo;
mod metrics;
mod metrics_mesh;
mod peer;
mod pipeline;
mod prepared;
mod proxy;
mod quota;
mod report;
mod respond;
mod server;
mod stats;
mod ttl;
mod upstream;

pub use causes::UnitCauses;
pub use control::{ControlExtension, ControlFuture, ControlReply, ControlRequest, MetricCounter};
pub use headers::synthesize_etag;
pub use invalidation::affected_paths;
pub use job::{JobReport, valid_job_id};
pub use peer::{NoPeers, PeerCopy, PeerFuture, PeerSource, PeerStatus, PeerTrust, StatusFuture};
pub use proxy::{Proxy, ProxyConfig};
pub use report::{
    ConnectionCounts, HealthReport, HitCounts, InvalidationReport, PartitionQuota, RateLimitReport,
    StatsReport, StoreReport, UpstreamCounts, VaultReport,
};
pub use server::{RunningProxy, control_get, control_get_as, control_request};
pub use stats::Outcome;
pub use ttl::OperationTtls;

/// Error type of bodies flowing through the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub use body::Body;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy configuration: {0}")]
    Config(String),
    #[error(
        "cannot listen on {addr}: {source} (is another ghcache daemon or program using it? set GHCACHE_PROXY_ADDR or --proxy-addr)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("control API at {addr}: {message}")]
    Control {
        addr: std::net::SocketAddr,
        message: String,
    },
}
