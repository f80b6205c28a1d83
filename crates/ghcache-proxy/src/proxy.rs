//! The proxy: configuration, shared state, and the pipeline's one entry
//! (`begin`, then `finish` for what waits) and one exit (`exit`). The steps live in `pipeline` (cacheable requests),
//! `flight` (the coalesced upstream exchange) and `respond` (building the
//! answers); `exit` counts every response and sets `X-Ghcache` on it.
//!
//! Steps, numbered as in ARCHITECTURE.md: 1 classify → 2 fresh hit →
//! 3 quota gate → 4 foreign copy → 5 coalesced upstream fetch → 6 act.
//! Control routes (`/_ghcache/*`, `/metrics`) are the server's, not steps.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ghcache_core::{Partition, PartitionSecret};
use ghcache_store::Store;
use http::{Request, Response};
use hyper::body::Incoming;
use parking_lot::Mutex;

use crate::flight::{Flight, FlightKey, Keeper};
use crate::invalidation::Invalidations;
use crate::peer::{NoPeers, PeerSource, PeerTrust};
use crate::pipeline::{Lookup, Route};
use crate::quota::QuotaTracker;
use crate::report::StatsReport;
use crate::respond::Served;
use crate::stats::Stats;
use crate::ttl::OperationTtls;
use crate::upstream::Upstream;
use crate::{Body, ProxyError};

/// Everything the proxy needs to know; built from `ghcache-config` by the binary.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: std::net::SocketAddr,
    /// GitHub API base: `https://api.github.com` or `https://HOST/api/v3`.
    pub upstream: String,
    /// Freshness when the upstream sends no `max-age`.
    pub default_ttl: Duration,
    pub operation_ttls: OperationTtls,
    /// `false`: every request is passed through (`BYPASS`).
    pub cache_enabled: bool,
    /// Serve fresh entries across partitions without asking GitHub.
    pub fleet_trust: bool,
    /// Use other partitions' copies (here or a peer's), confirmed by a
    /// synthesised ETag. `false` keeps each partition to its own entries
    /// (Prow ghproxy's design); the fleet benchmark compares the two.
    pub cross_partition: bool,
    /// Larger bodies are streamed to the client and not cached.
    pub max_cacheable_body: usize,
    /// Limit for an upstream response head and for its body.
    pub upstream_timeout: Duration,
    /// Longest a peer lookup may take.
    pub peer_deadline: Duration,
    /// Whether a peer's copy may be served before GitHub confirmed it.
    pub peer_trust: PeerTrust,
    /// Longest a request waits for another partition's fetch of the same
    /// resource (here or a member's), to confirm its body for free.
    pub in_flight_wait: Duration,
    /// Upstream body bytes all in-flight responses may buffer together;
    /// past it, responses stream through uncached.
    pub max_buffered_bytes: usize,
    /// Client connections at once; past it the oldest idle one is closed.
    pub max_connections: usize,
    /// A connection with no request in progress is closed after this long:
    /// an idle keep-alive connection, or a client still sending its head.
    pub idle_timeout: Duration,
    /// Shown in stats.
    pub state_dir: Option<String>,
}

impl ProxyConfig {
    pub fn new(listen: std::net::SocketAddr, upstream: impl Into<String>) -> Self {
        ProxyConfig {
            listen,
            upstream: upstream.into(),
            default_ttl: Duration::from_secs(300),
            operation_ttls: OperationTtls::default(),
            cache_enabled: true,
            fleet_trust: false,
            cross_partition: true,
            max_cacheable_body: 8 << 20,
            upstream_timeout: Duration::from_secs(30),
            peer_deadline: Duration::from_millis(50),
            peer_trust: PeerTrust::Verify,
            in_flight_wait: Duration::from_secs(5),
            max_buffered_bytes: 64 << 20,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(30),
            state_dir: None,
        }
    }
}

/// No entry is fresher than this, whatever GitHub says: it bounds how long
/// a write-invalidation record must be kept.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Partitions GitHub accepted, remembered for fleet trust.
const ACCEPTED_PARTITIONS: usize = 4096;

/// The caching proxy. Cheap to clone; all state is shared.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.inner.upstream.base)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: ProxyConfig,
    pub(crate) upstream: Upstream,
    pub(crate) store: Arc<Store>,
    pub(crate) secret: PartitionSecret,
    /// The last request's partition and resource id, per thread.
    pub(crate) keys: crate::memo::KeyMemo,
    /// Ready-to-send heads of held entries, per thread.
    pub(crate) heads: crate::prepared::Heads,
    pub(crate) peers: Arc<dyn PeerSource>,
    pub(crate) stats: Stats,
    pub(crate) quotas: QuotaTracker,
    pub(crate) flights: Mutex<HashMap<FlightKey, (Flight, Keeper)>>,
    /// Resources being fetched, any partition: what other partitions and
    /// members wait for (`flight.rs`).
    pub(crate) under_way: Arc<ghcache_peer::Flights>,
    /// Units spent, by cause.
    pub(crate) causes: crate::causes::CauseCounters,
    /// Paths writes made stale.
    pub(crate) invalidated: Invalidations,
    /// Upstream body bytes buffered by all in-flight responses.
    pub(crate) buffered: std::sync::atomic::AtomicUsize,
    /// Partitions GitHub answered with something other than `401`: the only
    /// ones fleet trust serves other partitions' copies to.
    pub(crate) accepted: Mutex<lru::LruCache<Partition, ()>>,
    /// Control routes answered by other crates (`/_ghcache/codeql/*`).
    pub(crate) extensions: Vec<Arc<dyn crate::ControlExtension>>,
    /// The vault server's counters, when the daemon serves one.
    pub(crate) vault: std::sync::OnceLock<VaultSource>,
    /// The swarm's metrics (libp2p-metrics), rendered after ours.
    pub(crate) registry: std::sync::OnceLock<Arc<prometheus_client::registry::Registry>>,
    /// Per-job counters of requests under `/_job/<id>/` (bounded).
    pub(crate) jobs: crate::job::Jobs,
}

type VaultSource = Arc<dyn Fn() -> crate::VaultReport + Send + Sync>;

/// What [`Proxy::begin`] made of a request.
pub(crate) enum Begun {
    /// Answered without waiting (a hit, or a refusal of step 3).
    Answered(Response<Body>),
    /// Steps that wait on the network, for [`Proxy::finish`].
    Later(Later),
}

/// A request's remaining steps (boxed: a hit's future stays small).
pub(crate) enum Later {
    /// Steps 4–6 of a cacheable request.
    Lookup(Box<Lookup>),
    /// Pass-through.
    Pass(Box<Request<Incoming>>),
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Proxy {
    pub fn new(
        config: ProxyConfig,
        store: Arc<Store>,
        secret: PartitionSecret,
    ) -> Result<Proxy, ProxyError> {
        let upstream = Upstream::new(&config.upstream, config.upstream_timeout)?;
        // Every TTL is capped at MAX_TTL, so older records can go.
        let horizon = MAX_TTL.as_millis() as u64;
        let invalidated = Invalidations::load(store.clone(), horizon, now_ms());
        let accepted = lru::LruCache::new(
            std::num::NonZeroUsize::new(ACCEPTED_PARTITIONS).unwrap_or(std::num::NonZeroUsize::MIN),
        );
        Ok(Proxy {
            inner: Arc::new(Inner {
                config,
                upstream,
                store,
                keys: crate::memo::KeyMemo::new(&secret),
                heads: Default::default(),
                secret,
                peers: Arc::new(NoPeers),
                stats: Stats::default(),
                quotas: QuotaTracker::default(),
                flights: Mutex::new(HashMap::new()),
                under_way: ghcache_peer::Flights::new(),
                causes: Default::default(),
                invalidated,
                buffered: std::sync::atomic::AtomicUsize::new(0),
                accepted: Mutex::new(accepted),
                extensions: Vec::new(),
                vault: std::sync::OnceLock::new(),
                registry: std::sync::OnceLock::new(),
                jobs: crate::job::Jobs::default(),
            }),
        })
    }

    /// Plugs in a peer source (the mesh). Call before serving.
    pub fn with_peers(self, peers: Arc<dyn PeerSource>) -> Result<Proxy, ProxyError> {
        let inner = Arc::try_unwrap(self.inner).map_err(|_| {
            ProxyError::Config("with_peers must be called before the proxy is shared".into())
        })?;
        peers.share_flights(inner.under_way.clone());
        Ok(Proxy {
            inner: Arc::new(Inner { peers, ..inner }),
        })
    }

    /// Registers control routes answered by `extension` (before sharing).
    pub fn with_control(
        self,
        extension: Arc<dyn crate::ControlExtension>,
    ) -> Result<Proxy, ProxyError> {
        let mut inner = Arc::try_unwrap(self.inner).map_err(|_| {
            ProxyError::Config("with_control must be called before the proxy is shared".into())
        })?;
        inner.extensions.push(extension);
        Ok(Proxy {
            inner: Arc::new(inner),
        })
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The stats document served at `/_ghcache/stats`.
    pub fn stats_report(&self) -> StatsReport {
        let i = &self.inner;
        let mut report = i
            .stats
            .report(&i.store.stats(), &i.quotas, i.config.state_dir.as_deref());
        report.invalidations.records = i.invalidated.len() as u64;
        (report.upstream.answered, report.upstream.latency_us_total) = i.upstream.latency();
        if let Some(vault) = i.vault.get() {
            report.vault = vault();
        }
        for extension in &i.extensions {
            let (name, value) = extension.stats();
            report.extensions.insert(name.to_owned(), value);
        }
        report
    }

    /// Units spent so far, by cause (what `ghcache bench fleet` explains
    /// its units with).
    pub fn unit_causes(&self) -> crate::causes::UnitCauses {
        self.inner.causes.snapshot()
    }

    /// Reports the vault server's counters in stats and metrics (once).
    pub fn report_vault(&self, source: impl Fn() -> crate::VaultReport + Send + Sync + 'static) {
        let _ = self.inner.vault.set(Arc::new(source));
    }

    /// Adds another registry's metrics (the mesh's libp2p-metrics) to
    /// `/metrics` (once).
    pub fn report_registry(&self, registry: Arc<prometheus_client::registry::Registry>) {
        let _ = self.inner.registry.set(registry);
    }

    /// Marks every cached variant of these paths stale (a write here or in
    /// the fleet).
    pub fn invalidate_paths(&self, paths: &[String]) {
        self.inner.invalidated.record(paths, now_ms());
    }

    /// Applies the fleet's write announcements as they arrive, until the
    /// sender closes (the mesh's `invalidations()` feed).
    pub fn follow_invalidations(
        &self,
        mut invalidations: tokio::sync::broadcast::Receiver<Vec<String>>,
    ) -> tokio::task::JoinHandle<()> {
        use tokio::sync::broadcast::error::RecvError;
        let proxy = self.clone();
        tokio::spawn(async move {
            loop {
                match invalidations.recv().await {
                    Ok(paths) => proxy.invalidate_paths(&paths),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "fell behind on fleet invalidations")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// How many write-invalidation records are held (bounded).
    pub fn invalidation_records(&self) -> usize {
        self.inner.invalidated.len()
    }

    pub(crate) fn invalidated_since(&self, path: &str, stored_at_ms: u64) -> bool {
        self.inner.invalidated.since(path, stored_at_ms)
    }

    /// The pipeline's entry for one GitHub API request; `base` is where
    /// the client reached us (`http://IP:PORT`). Steps 1–3, which never
    /// wait: a hit is answered here. The server
    /// calls this from hyper's service call itself, so that the request
    /// (and hyper's read buffer, which its header values point into) is
    /// released before hyper reads again; held into the future, hyper
    /// allocated a new 8 KiB buffer for every request.
    pub(crate) fn begin(&self, request: Request<Incoming>, base: &Arc<str>) -> Begun {
        self.inner.stats.requests.fetch_add(1, Relaxed);
        match self.classify(request, base.clone()) {
            Route::Cache(ctx) => match self.held_here(ctx) {
                ControlFlow::Break(served) => Begun::Answered(self.exit(served)),
                ControlFlow::Continue(lookup) => Begun::Later(Later::Lookup(Box::new(lookup))),
            },
            Route::Pass(request) | Route::Inexact(request) => {
                Begun::Later(Later::Pass(Box::new(request)))
            }
        }
    }

    /// The steps that wait (boxed, so that the future of a hit stays
    /// small: hyper moves it once per request, whatever its path).
    pub(crate) async fn finish(&self, later: Later, base: Arc<str>) -> Response<Body> {
        let served = match later {
            Later::Lookup(lookup) => Box::pin(self.held_elsewhere(*lookup)).await,
            Later::Pass(request) => Box::pin(self.pass_through(*request, &base)).await,
        };
        self.exit(served)
    }

    /// An API request refused before the pipeline (a malformed job path),
    /// counted and marked like any other: a local refusal, `MISS`. It
    /// counts for no job: the refused ids are invalid ones.
    pub(crate) fn refused(&self, response: Response<Body>) -> Response<Body> {
        self.inner.stats.requests.fetch_add(1, Relaxed);
        self.exit(Served::new(response, crate::stats::Outcome::Miss))
    }

    /// The one exit: every response is counted and says how it was made.
    fn exit(&self, served: Served) -> Response<Body> {
        let Served {
            mut response,
            outcome,
            has_outcome,
        } = served;
        let stats = &self.inner.stats;
        stats.record(outcome);
        // A hit spared the client an upstream round trip: count the mean one.
        let saved_us = if outcome == crate::stats::Outcome::Hit {
            let us = self.inner.upstream.mean_latency_us();
            stats.time_saved_us.fetch_add(us, Relaxed);
            us
        } else {
            0
        };
        crate::job::record(outcome, saved_us);
        let value = outcome.header_value();
        let headers = response.headers_mut();
        if has_outcome {
            debug_assert_eq!(
                headers
                    .get_all(&crate::headers::X_GHCACHE)
                    .iter()
                    .collect::<Vec<_>>(),
                [&value]
            );
        } else {
            headers.insert(crate::headers::X_GHCACHE.clone(), value);
        }
        response
    }

    pub(crate) fn connection_opened(&self) {
        let stats = &self.inner.stats;
        stats
            .connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats
            .connections_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.inner
            .stats
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn connection_shed(&self) {
        self.inner
            .stats
            .connections_shed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.inner
            .stats
            .connections_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
