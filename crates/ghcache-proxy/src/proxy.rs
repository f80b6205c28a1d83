//! The request pipeline. Each step is a method; `handle` reads as the list
//! of steps: control → classify → local store → quota gate → peers →
//! coalesced upstream fetch → store and serve.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use ghcache_core::{ContentId, Partition, PartitionSecret, ResourceId, ResourceKey};
use ghcache_store::{EntryMeta, Hit, Store};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::json;

use crate::headers::{
    self, cache_control, etag_like, header_str, if_none_match_matches, kept_headers,
    merge_not_modified, synthesize_etag,
};
use crate::invalidation::{Invalidations, affected_paths, cacheable_path};
use crate::peer::{NoPeers, PeerSource, PeerTrust};
use crate::quota::{Quota, QuotaTracker, Refusal, resource_for};
use crate::stats::{Outcome, Stats};
use crate::ttl::OperationTtls;
use crate::upstream::{Fetched, Upstream, UpstreamFailure};
use crate::{Body, BoxError, ProxyError};

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
    /// Larger bodies are streamed to the client and not cached.
    pub max_cacheable_body: usize,
    /// Limit for an upstream response head and for its body.
    pub upstream_timeout: Duration,
    /// Longest a peer lookup may take.
    pub peer_deadline: Duration,
    /// Whether a peer's copy may be served before GitHub confirmed it.
    pub peer_trust: PeerTrust,
    /// Upstream body bytes all in-flight responses may buffer together;
    /// past it, responses stream through uncached.
    pub max_buffered_bytes: usize,
    /// Client connections at once; past it the oldest idle one is closed.
    pub max_connections: usize,
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
            max_cacheable_body: 8 << 20,
            upstream_timeout: Duration::from_secs(30),
            peer_deadline: Duration::from_millis(50),
            peer_trust: PeerTrust::Verify,
            max_buffered_bytes: 64 << 20,
            max_connections: 4096,
            state_dir: None,
        }
    }
}

/// No entry is fresher than this, whatever GitHub says: it bounds how long
/// a write-invalidation record must be kept.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Partitions GitHub accepted, remembered for fleet trust.
const ACCEPTED_PARTITIONS: usize = 4096;

/// Identifies one upstream exchange that concurrent requests may share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlightKey {
    resource: ResourceId,
    partition: Partition,
    /// The validator sent, if any: requests with different conditionals
    /// cannot share an answer.
    validator: Option<String>,
}

#[derive(Clone)]
enum FlightResult {
    Done(Arc<Fetched>),
    Failed(Arc<UpstreamFailure>),
    /// Over the cacheable size: the first taker streams it, others retry alone.
    TooLarge(Arc<Mutex<Option<Response<Body>>>>),
}

type Flight = Shared<BoxFuture<'static, FlightResult>>;

/// The caching proxy. Cheap to clone; all state is shared.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.inner.upstream.base)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ProxyConfig,
    upstream: Upstream,
    store: Arc<Store>,
    secret: PartitionSecret,
    peers: Arc<dyn PeerSource>,
    stats: Stats,
    quotas: QuotaTracker,
    flights: Mutex<HashMap<FlightKey, Flight>>,
    /// Paths writes made stale.
    invalidated: Invalidations,
    /// Upstream body bytes buffered by all in-flight responses.
    buffered: std::sync::atomic::AtomicUsize,
    /// Partitions GitHub answered with something other than `401`: the only
    /// ones fleet trust serves other partitions' copies to.
    accepted: Mutex<lru::LruCache<Partition, ()>>,
}

/// What `classify` decided for a request.
enum Route {
    Cache(Ctx),
    Pass(Request<Incoming>),
    /// Key headers that cannot be represented exactly: never cached.
    Inexact(Request<Incoming>),
}

/// The socket address a client connected to (set by the server), from which
/// rewritten links are built: never the client's `Host` header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub std::net::SocketAddr);

/// One classified cacheable request.
struct Ctx {
    path: String,
    path_and_query: String,
    headers: HeaderMap,
    head_only: bool,
    authorization: Option<String>,
    accept: Option<String>,
    partition: Partition,
    resource: ResourceId,
    proxy_base: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An error in GitHub's JSON shape, saying what failed.
fn github_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
    });
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
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
                secret,
                peers: Arc::new(NoPeers),
                stats: Stats::default(),
                quotas: QuotaTracker::default(),
                flights: Mutex::new(HashMap::new()),
                invalidated,
                buffered: std::sync::atomic::AtomicUsize::new(0),
                accepted: Mutex::new(accepted),
            }),
        })
    }

    /// Plugs in a peer source (the mesh). Call before serving.
    pub fn with_peers(self, peers: Arc<dyn PeerSource>) -> Result<Proxy, ProxyError> {
        let inner = Arc::try_unwrap(self.inner).map_err(|_| {
            ProxyError::Config("with_peers must be called before the proxy is shared".into())
        })?;
        Ok(Proxy {
            inner: Arc::new(Inner { peers, ..inner }),
        })
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The stats document served at `/_ghcache/stats`.
    pub fn stats_json(&self) -> serde_json::Value {
        let i = &self.inner;
        let mut doc = i
            .stats
            .to_json(&i.store.stats(), &i.quotas, i.config.state_dir.as_deref());
        doc["invalidations"] = json!({ "records": i.invalidated.len() });
        doc
    }

    /// Marks every cached variant of these paths stale (a write here or in
    /// the fleet).
    pub fn invalidate_paths(&self, paths: &[String]) {
        self.inner.invalidated.record(paths, now_ms());
    }

    /// How many write-invalidation records are held (bounded).
    pub fn invalidation_records(&self) -> usize {
        self.inner.invalidated.len()
    }

    fn invalidated_since(&self, path: &str, stored_at_ms: u64) -> bool {
        self.inner.invalidated.since(path, stored_at_ms)
    }

    /// Handles one client request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let stats = &self.inner.stats;
        stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = request.uri().path().to_owned();
        if path == "/_ghcache/peers" {
            let peers = self.inner.peers.describe().await;
            let mut r = Response::new(full(peers.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return r;
        }
        if let Some(response) = self.control(&path) {
            return response;
        }
        match self.classify(request) {
            Route::Cache(ctx) => self.cacheable(ctx).await,
            Route::Pass(request) | Route::Inexact(request) => self.pass_through(request).await,
        }
    }

    /// Step 0: the control surface.
    fn control(&self, path: &str) -> Option<Response<Body>> {
        let json_response = |value: serde_json::Value| {
            let mut r = Response::new(full(value.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        match path {
            "/_ghcache/health" => Some(json_response(json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "upstream": self.inner.upstream.base,
            }))),
            "/_ghcache/stats" => Some(json_response(self.stats_json())),
            "/metrics" => {
                let i = &self.inner;
                let mut r = Response::new(full(i.stats.to_prometheus(&i.store.stats(), &i.quotas)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Some(r)
            }
            _ => None,
        }
    }

    /// Step 1: is this a request we may answer from cache?
    /// The cache context of a cacheable request (which it consumes: its
    /// headers move into the context), or the request back to pass through.
    fn classify(&self, request: Request<Incoming>) -> Route {
        let head_only = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return Route::Pass(request),
        };
        let headers = request.headers();
        let cc = cache_control(headers);
        let personal = headers.contains_key(header::COOKIE)
            || headers.contains_key("x-github-otp")
            || headers.contains_key(header::RANGE);
        if !self.inner.config.cache_enabled
            || cc.no_store
            || personal
            || !cacheable_path(request.uri().path())
        {
            return Route::Pass(request);
        }
        // The key must be built from exactly what is forwarded: a repeated
        // or non-visible-ASCII key header would otherwise key as absent.
        let (Ok(authorization), Ok(accept), Ok(api_version)) = (
            headers::exact_single(headers, header::AUTHORIZATION),
            headers::exact_single(headers, header::ACCEPT),
            headers::exact_single(headers, "x-github-api-version"),
        ) else {
            return Route::Inexact(request);
        };
        let uri = request.uri();
        let path = uri.path().to_owned();
        let query = uri.query().unwrap_or("");
        let authorization = authorization.map(str::to_owned);
        let accept = accept.map(str::to_owned);
        let resource = ResourceId::compute(&ResourceKey {
            host: &self.inner.upstream.host,
            method: "GET",
            path: &path,
            query,
            accept: accept.as_deref(),
            api_version,
        });
        let partition = self.inner.secret.partition_for(authorization.as_deref());
        let path_and_query = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let proxy_base = self.proxy_base(&request);
        Route::Cache(Ctx {
            path,
            path_and_query,
            headers: request.into_parts().0.headers,
            head_only,
            authorization,
            accept,
            partition,
            resource,
            proxy_base,
        })
    }

    /// Where this client reached us, for rewriting `Link` headers: the
    /// socket's local address, never the client-supplied `Host`.
    fn proxy_base<B>(&self, request: &Request<B>) -> String {
        let addr = request
            .extensions()
            .get::<LocalAddr>()
            .map_or(self.inner.config.listen, |a| a.0);
        format!("http://{addr}")
    }

    fn is_fresh(&self, ctx: &Ctx, meta: &EntryMeta) -> bool {
        !meta.stale
            && now_ms() < meta.stored_at_ms.saturating_add(meta.ttl_ms)
            && !self.invalidated_since(&ctx.path, meta.stored_at_ms)
    }

    /// Steps 2–6 for a cacheable request.
    async fn cacheable(&self, ctx: Ctx) -> Response<Body> {
        let i = &self.inner;
        let client_cc = cache_control(&ctx.headers);
        let own = i.store.get(&ctx.resource, &ctx.partition);

        // Step 2: a fresh copy of our own.
        if let Some(hit) = &own
            && !client_cc.no_cache
            && self.is_fresh(&ctx, &hit.meta)
        {
            self.count_saved(&ctx);
            return self.serve_hit(&ctx, hit, Outcome::Hit, None);
        }

        // Step 3: a partition GitHub told to back off, or whose quota is
        // exhausted, is not sent upstream before the time GitHub named.
        if let Some(refusal) = i.quotas.backing_off(&ctx.partition) {
            i.stats
                .refused_quota
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return match &own {
                Some(hit) => self.serve_hit(
                    &ctx,
                    hit,
                    Outcome::Stale,
                    Some("GitHub asked to back off (Retry-After)"),
                ),
                None => self.replay_refusal(&refusal),
            };
        }
        let bucket = resource_for(&Method::GET, &ctx.path);
        if let Some(quota) = i.quotas.exhausted(&ctx.partition, bucket) {
            i.stats
                .refused_quota
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return match &own {
                Some(hit) => self.serve_hit(
                    &ctx,
                    hit,
                    Outcome::Stale,
                    Some("quota exhausted until reset"),
                ),
                None => self.refuse_exhausted(bucket, &quota),
            };
        }

        // Step 4: someone else's copy (another token here, or a peer).
        let foreign = if own.is_some() {
            None
        } else {
            match i.store.get_any(&ctx.resource) {
                Some((partition, hit)) => Some((partition, hit, false)),
                None => tokio::time::timeout(
                    i.config.peer_deadline,
                    i.peers
                        .lookup(&ctx.resource, &ctx.partition, i.config.peer_deadline),
                )
                .await
                .ok()
                .flatten()
                .map(|copy| {
                    (
                        copy.partition,
                        Hit {
                            meta: copy.meta,
                            body: copy.body,
                        },
                        true,
                    )
                }),
            }
        };
        if let Some((partition, hit, from_peer)) = &foreign {
            // A peer's label is not proof: by default its copy is served
            // only after GitHub answers our synthesised ETag with a 304.
            let vouched = !from_peer || i.config.peer_trust == PeerTrust::Members;
            let trusted =
                vouched && (*partition == ctx.partition || self.fleet_may_serve(&ctx, partition));
            if trusted && !client_cc.no_cache && self.is_fresh(&ctx, &hit.meta) {
                self.count_saved(&ctx);
                self.keep(&ctx, hit.meta.clone(), hit.body.clone());
                return self.serve_hit(&ctx, hit, Outcome::Hit, None);
            }
        }

        // Step 5: ask upstream, with the best validator we can send.
        let (held, validator, synthesized) = match (&own, &foreign) {
            (Some(hit), _) => (Some(hit.clone()), hit.meta.etag.clone(), false),
            (None, Some((_, hit, _))) => {
                let opaque = synthesize_etag(
                    ctx.accept.as_deref(),
                    ctx.authorization.as_deref(),
                    None,
                    &hit.body,
                );
                let tag = etag_like(hit.meta.etag.as_deref(), &opaque);
                (Some(hit.clone()), Some(tag), true)
            }
            (None, None) => (
                None,
                header_str(&ctx.headers, header::IF_NONE_MATCH).map(str::to_owned),
                false,
            ),
        };
        let (result, leader) = self.flight(&ctx, validator.clone(), held.is_some());
        let result = result.await;
        let shared = if leader {
            None
        } else {
            Some(Outcome::Coalesced)
        };

        // Step 6: act on the answer.
        match result {
            FlightResult::Failed(failure) => match own.as_ref() {
                Some(hit) => self.serve_hit(&ctx, hit, Outcome::Stale, Some(&failure.message)),
                None => {
                    i.stats.record(Outcome::Miss);
                    let status = if failure.timed_out {
                        StatusCode::GATEWAY_TIMEOUT
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    let mut r = github_error(status, &format!("ghcache: {}", failure.message));
                    self.mark(&mut r, Outcome::Miss);
                    r
                }
            },
            FlightResult::TooLarge(slot) => match take_stream(&slot) {
                Some(mut response) => {
                    i.stats.record(Outcome::Bypass);
                    self.mark(&mut response, Outcome::Bypass);
                    response
                }
                None => Box::pin(self.cacheable_alone(ctx)).await,
            },
            FlightResult::Done(fetched) => {
                let status = fetched.status;
                if status == StatusCode::NOT_MODIFIED {
                    if let Some(hit) = held {
                        return self.revalidated(&ctx, hit, &fetched, synthesized, shared);
                    }
                    // The client's own conditional, answered by GitHub.
                    return self.serve_fetched(&ctx, &fetched, shared.unwrap_or(Outcome::Miss));
                }
                if (status.is_server_error() || is_rate_limit_refusal(&fetched))
                    && let Some(hit) = own.as_ref()
                {
                    let reason = format!("upstream answered {status}");
                    return self.serve_hit(&ctx, hit, Outcome::Stale, Some(&reason));
                }
                if status.is_success() {
                    self.store_fetched(
                        &ctx,
                        &fetched,
                        own.as_ref().or(foreign.as_ref().map(|f| &f.1)),
                    );
                }
                if shared.is_some() {
                    self.count_saved(&ctx);
                }
                self.serve_fetched(&ctx, &fetched, shared.unwrap_or(Outcome::Miss))
            }
        }
    }

    /// A request that could not share an oversized flight: fetch alone.
    async fn cacheable_alone(&self, ctx: Ctx) -> Response<Body> {
        let request = match self.upstream_request(&ctx, None) {
            Ok(r) => r,
            Err(f) => {
                return github_error(StatusCode::BAD_GATEWAY, &format!("ghcache: {}", f.message));
            }
        };
        match self.inner.upstream.send(request).await {
            Ok(response) => {
                self.account_upstream(
                    &ctx.partition,
                    &ctx.path,
                    response.status(),
                    response.headers(),
                    ctx.authorization.is_some(),
                );
                let mut response = self.stream_response(response, &ctx.proxy_base);
                self.inner.stats.record(Outcome::Bypass);
                self.mark(&mut response, Outcome::Bypass);
                response
            }
            Err(f) => github_error(StatusCode::BAD_GATEWAY, &format!("ghcache: {}", f.message)),
        }
    }

    /// Joins or starts the upstream exchange for this request.
    fn flight(&self, ctx: &Ctx, validator: Option<String>, ours: bool) -> (Flight, bool) {
        let key = FlightKey {
            resource: ctx.resource,
            partition: ctx.partition,
            validator: validator.clone(),
        };
        let mut flights = self.inner.flights.lock();
        if let Some(flight) = flights.get(&key) {
            return (flight.clone(), false);
        }
        let request = self.upstream_request(ctx, validator.as_deref().map(|v| (v, ours)));
        let this = self.clone();
        let partition = ctx.partition;
        let path = ctx.path.clone();
        let authenticated = ctx.authorization.is_some();
        let proxy_base = ctx.proxy_base.clone();
        let flight_key = key.clone();
        // Spawned so that a client hanging up never cancels the others' answer.
        let task = tokio::spawn(async move {
            let result = match request {
                Err(failure) => FlightResult::Failed(Arc::new(failure)),
                Ok(request) => {
                    this.fetch(request, &partition, &path, authenticated, &proxy_base)
                        .await
                }
            };
            this.inner.flights.lock().remove(&flight_key);
            result
        });
        let flight: Flight = async move {
            task.await.unwrap_or_else(|e| {
                FlightResult::Failed(Arc::new(UpstreamFailure {
                    timed_out: false,
                    message: format!("upstream task failed: {e}"),
                }))
            })
        }
        .boxed()
        .shared();
        flights.insert(key, flight.clone());
        (flight, true)
    }

    async fn fetch(
        &self,
        request: Request<Body>,
        partition: &Partition,
        path: &str,
        authenticated: bool,
        proxy_base: &str,
    ) -> FlightResult {
        let upstream = &self.inner.upstream;
        let response = match upstream.send(request).await {
            Ok(r) => r,
            Err(failure) => {
                self.inner
                    .stats
                    .upstream_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return FlightResult::Failed(Arc::new(failure));
            }
        };
        let (parts, body) = response.into_parts();
        self.account_upstream(partition, path, parts.status, &parts.headers, authenticated);
        let budget = crate::upstream::Budget::new(
            &self.inner.buffered,
            self.inner.config.max_buffered_bytes,
        );
        match upstream
            .read_body(body, self.inner.config.max_cacheable_body, budget)
            .await
        {
            Ok(Ok(body)) => {
                let fetched = Fetched {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                };
                if is_rate_limit_refusal(&fetched) {
                    self.inner.quotas.observe_refusal(
                        partition,
                        fetched.status,
                        &fetched.headers,
                        &fetched.body,
                    );
                }
                FlightResult::Done(Arc::new(fetched))
            }
            Ok(Err((prefix, rest))) => {
                let prefix = futures_util::stream::once(std::future::ready(Ok::<_, BoxError>(
                    hyper::body::Frame::data(Bytes::from(prefix)),
                )));
                let rest = http_body_util::BodyStream::new(rest.map_err(BoxError::from));
                let stream = futures_util::StreamExt::chain(prefix, rest);
                let body = http_body_util::StreamBody::new(stream).boxed_unsync();
                let mut response = Response::from_parts(parts, body);
                headers::strip_hop_by_hop(response.headers_mut());
                self.rewrite_links(response.headers_mut(), proxy_base);
                FlightResult::TooLarge(Arc::new(Mutex::new(Some(response))))
            }
            Err(failure) => {
                self.inner
                    .stats
                    .upstream_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                FlightResult::Failed(Arc::new(failure))
            }
        }
    }

    /// Counts the upstream exchange and remembers the quota it reported.
    fn account_upstream(
        &self,
        partition: &Partition,
        path: &str,
        status: StatusCode,
        headers: &HeaderMap,
        authenticated: bool,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.inner.stats;
        stats.upstream_requests.fetch_add(1, Relaxed);
        if status == StatusCode::NOT_MODIFIED {
            stats.upstream_not_modified.fetch_add(1, Relaxed);
        }
        if status.is_server_error() {
            stats.upstream_errors.fetch_add(1, Relaxed);
        }
        // An authenticated 304 is free; `/rate_limit` always is.
        let free = path == "/rate_limit" || (status == StatusCode::NOT_MODIFIED && authenticated);
        if !free {
            stats.units_spent.fetch_add(1, Relaxed);
        }
        self.inner.quotas.observe(partition, headers);
        if authenticated && status != StatusCode::UNAUTHORIZED {
            self.inner.accepted.lock().put(*partition, ());
        }
    }

    /// Fleet trust serves another partition's fresh copy only to a token
    /// GitHub has accepted, and a token's body never to an anonymous request.
    fn fleet_may_serve(&self, ctx: &Ctx, copy_partition: &Partition) -> bool {
        if !self.inner.config.fleet_trust {
            return false;
        }
        copy_partition.is_anonymous()
            || (!ctx.partition.is_anonymous()
                && self.inner.accepted.lock().contains(&ctx.partition))
    }

    /// GitHub's refusal, replayed while its back-off lasts.
    fn replay_refusal(&self, refusal: &Refusal) -> Response<Body> {
        self.inner.stats.record(Outcome::Miss);
        let mut response = Response::new(full(refusal.body.clone()));
        *response.status_mut() = refusal.status;
        *response.headers_mut() = refusal.headers.clone();
        let wait = refusal
            .until
            .saturating_sub(crate::quota::now_secs())
            .max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        response
            .headers_mut()
            .insert("x-ghcache-reason", HeaderValue::from_static("backing-off"));
        self.mark(&mut response, Outcome::Miss);
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

    fn count_saved(&self, ctx: &Ctx) {
        if ctx.path != "/rate_limit" {
            self.inner
                .stats
                .units_saved
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The upstream GET for a cacheable request. `validator` is our
    /// `If-None-Match` (`ours`) or the client's own, passed along.
    fn upstream_request(
        &self,
        ctx: &Ctx,
        validator: Option<(&str, bool)>,
    ) -> Result<Request<Body>, UpstreamFailure> {
        let mut headers = ctx.headers.clone();
        headers::strip_hop_by_hop(&mut headers);
        for name in [
            header::HOST,
            header::ACCEPT_ENCODING,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::CACHE_CONTROL,
            header::PRAGMA,
            header::CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
        match validator {
            Some((tag, _)) => {
                headers.insert(header::IF_NONE_MATCH, headers::value(tag));
            }
            None => {
                if let Some(since) = ctx.headers.get(header::IF_MODIFIED_SINCE) {
                    headers.insert(header::IF_MODIFIED_SINCE, since.clone());
                }
            }
        }
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, HeaderValue::from_static("ghcache"));
        }
        let mut request = Request::new(empty());
        *request.uri_mut() = self.inner.upstream.uri(&ctx.path_and_query)?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Stores a successful response under the requester's partition and
    /// tells the fleet when it is a new version.
    fn store_fetched(&self, ctx: &Ctx, fetched: &Fetched, previous: Option<&Hit>) {
        let cc = cache_control(&fetched.headers);
        if cc.no_store {
            return;
        }
        let etag = header_str(&fetched.headers, header::ETAG).map(str::to_owned);
        let now = now_ms();
        let meta = EntryMeta {
            status: fetched.status.as_u16(),
            headers: kept_headers(&fetched.headers),
            etag: etag.clone(),
            last_modified: header_str(&fetched.headers, header::LAST_MODIFIED).map(str::to_owned),
            stored_at_ms: now,
            ttl_ms: self.ttl_for(&ctx.path, cc.max_age).as_millis() as u64,
            stale: false,
            body_cid: ContentId::of(&fetched.body),
            body_len: fetched.body.len() as u64,
            last_access_ms: now,
        };
        if meta.footprint() > ghcache_store::MAX_META_BYTES {
            tracing::debug!(
                bytes = meta.footprint(),
                "response headers too large to store"
            );
            return;
        }
        let new_version = previous.is_none_or(|p| p.meta.body_cid != meta.body_cid);
        let cid = meta.body_cid;
        self.keep(ctx, meta, fetched.body.clone());
        if new_version {
            self.inner.peers.announce_version(
                &ctx.resource,
                &cid,
                etag.as_deref(),
                fetched.body.len() as u64,
            );
        }
    }

    fn keep(&self, ctx: &Ctx, meta: EntryMeta, body: Bytes) {
        match self
            .inner
            .store
            .put(ctx.resource, ctx.partition, meta, body)
        {
            Ok(()) => self.inner.peers.hold(&ctx.resource),
            Err(e) => {
                self.inner
                    .stats
                    .store_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, "could not store a response; serving it anyway");
            }
        }
    }

    fn ttl_for(&self, path: &str, max_age: Option<u64>) -> Duration {
        self.inner
            .config
            .operation_ttls
            .lookup(path)
            .or(max_age.map(Duration::from_secs))
            .unwrap_or(self.inner.config.default_ttl)
            .min(MAX_TTL)
    }

    /// A `304` for a body we hold: refresh the entry for this partition and
    /// serve the body with the fresh per-request headers.
    fn revalidated(
        &self,
        ctx: &Ctx,
        hit: Hit,
        fetched: &Fetched,
        synthesized: bool,
        shared: Option<Outcome>,
    ) -> Response<Body> {
        let mut meta = hit.meta.clone();
        merge_not_modified(&mut meta.headers, &fetched.headers);
        if let Some(tag) = header_str(&fetched.headers, header::ETAG) {
            meta.etag = Some(tag.to_owned());
        } else if synthesized {
            // Our synthesised tag matched; it is this partition's ETag.
            meta.etag = None;
        }
        let now = now_ms();
        meta.stored_at_ms = now;
        meta.last_access_ms = now;
        meta.stale = false;
        meta.ttl_ms = self
            .ttl_for(&ctx.path, cache_control(&fetched.headers).max_age)
            .as_millis() as u64;
        self.keep(ctx, meta.clone(), hit.body.clone());
        if ctx.authorization.is_some() {
            self.count_saved(ctx);
        }
        let outcome = shared.unwrap_or(if synthesized {
            Outcome::Synthesized
        } else {
            Outcome::Revalidated
        });
        let mut response = self.serve_hit(
            ctx,
            &Hit {
                meta,
                body: hit.body,
            },
            outcome,
            None,
        );
        for (name, value) in fetched.headers.iter() {
            if headers::is_per_request(name.as_str()) {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        response
    }

    /// Serves a held entry (fresh, revalidated or stale).
    fn serve_hit(
        &self,
        ctx: &Ctx,
        hit: &Hit,
        outcome: Outcome,
        stale_reason: Option<&str>,
    ) -> Response<Body> {
        self.inner.stats.record(outcome);
        let mut headers = HeaderMap::new();
        for (name, value) in &hit.meta.headers {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        self.rewrite_links(&mut headers, &ctx.proxy_base);
        let age = now_ms().saturating_sub(hit.meta.stored_at_ms) / 1000;
        headers.insert(header::AGE, headers::value(&age.to_string()));
        let bucket = resource_for(&Method::GET, &ctx.path);
        if let Some(q) = self.inner.quotas.get(&ctx.partition, bucket) {
            quota_headers(&mut headers, &q, bucket);
        }
        if let Some(reason) = stale_reason {
            let reason = reason.replace('"', "'");
            headers.insert(
                header::WARNING,
                headers::value(&format!("110 ghcache \"Response is Stale: {reason}\"")),
            );
        }
        let not_modified = hit.meta.etag.as_deref().is_some_and(|etag| {
            header_str(&ctx.headers, header::IF_NONE_MATCH)
                .is_some_and(|inm| if_none_match_matches(inm, etag))
        });
        let (status, body) = if not_modified {
            headers.remove(header::CONTENT_TYPE);
            (StatusCode::NOT_MODIFIED, empty())
        } else {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(hit.body.len()));
            let body = if ctx.head_only {
                empty()
            } else {
                full(hit.body.clone())
            };
            (
                StatusCode::from_u16(hit.meta.status).unwrap_or(StatusCode::OK),
                body,
            )
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        self.mark(&mut response, outcome);
        response
    }

    /// Serves an upstream response as received.
    fn serve_fetched(&self, ctx: &Ctx, fetched: &Fetched, outcome: Outcome) -> Response<Body> {
        self.inner.stats.record(outcome);
        let mut headers = fetched.headers.clone();
        headers::strip_hop_by_hop(&mut headers);
        headers.remove(header::SET_COOKIE);
        self.rewrite_links(&mut headers, &ctx.proxy_base);
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(fetched.body.len()),
        );
        let body = if ctx.head_only {
            empty()
        } else {
            full(fetched.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = fetched.status;
        *response.headers_mut() = headers;
        self.mark(&mut response, outcome);
        response
    }

    fn refuse_exhausted(&self, bucket: &str, quota: &Quota) -> Response<Body> {
        self.inner.stats.record(Outcome::Miss);
        let mut response = github_error(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded (ghcache holds requests for this token until the limit resets). Authenticated requests get a higher rate limit; conditional requests that GitHub answers 304 are free.",
        );
        quota_headers(response.headers_mut(), quota, bucket);
        response.headers_mut().insert(
            "x-ghcache-reason",
            HeaderValue::from_static("quota-exhausted"),
        );
        self.mark(&mut response, Outcome::Miss);
        response
    }

    fn rewrite_links(&self, headers: &mut HeaderMap, proxy_base: &str) {
        let rewritten: Vec<HeaderValue> = headers
            .get_all(header::LINK)
            .iter()
            .map(|value| match value.to_str() {
                Ok(link) => headers::value(&headers::rewrite_link(
                    link,
                    &self.inner.upstream.base,
                    proxy_base,
                )),
                Err(_) => value.clone(),
            })
            .collect();
        if rewritten.is_empty() {
            return;
        }
        headers.remove(header::LINK);
        for value in rewritten {
            headers.append(header::LINK, value);
        }
    }

    fn mark(&self, response: &mut Response<Body>, outcome: Outcome) {
        response
            .headers_mut()
            .insert("x-ghcache", HeaderValue::from_static(outcome.as_str()));
    }

    fn stream_response(&self, response: Response<Incoming>, proxy_base: &str) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        self.rewrite_links(&mut parts.headers, proxy_base);
        Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
    }

    /// Writes, GraphQL and uncacheable reads: forwarded untouched, streamed
    /// both ways. A successful write invalidates its path and the
    /// collections above it, here and in the fleet.
    async fn pass_through(&self, request: Request<Incoming>) -> Response<Body> {
        let proxy_base = self.proxy_base(&request);
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| path.clone());
        // From the exact bytes forwarded, whatever they are.
        let partition = self.inner.secret.partition_for_bytes(
            headers::exact_bytes(&parts.headers, header::AUTHORIZATION).as_deref(),
        );
        let authenticated = parts.headers.contains_key(header::AUTHORIZATION);
        if let Some(refusal) = self.inner.quotas.backing_off(&partition) {
            self.inner
                .stats
                .refused_quota
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut response = self.replay_refusal(&refusal);
            // Counted as the pass-through it is.
            self.inner.stats.record(Outcome::Bypass);
            self.mark(&mut response, Outcome::Bypass);
            return response;
        }
        let is_write = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        headers::strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        parts.headers.remove(header::ACCEPT_ENCODING);
        if !parts.headers.contains_key(header::USER_AGENT) {
            parts
                .headers
                .insert(header::USER_AGENT, HeaderValue::from_static("ghcache"));
        }
        parts.uri = match self.inner.upstream.uri(&path_and_query) {
            Ok(uri) => uri,
            Err(f) => {
                let mut r =
                    github_error(StatusCode::BAD_REQUEST, &format!("ghcache: {}", f.message));
                self.inner.stats.record(Outcome::Bypass);
                self.mark(&mut r, Outcome::Bypass);
                return r;
            }
        };
        let method = parts.method.clone();
        let request = Request::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
        match self.inner.upstream.send(request).await {
            Ok(response) => {
                let status = response.status();
                let i = &self.inner;
                self.account_upstream(&partition, &path, status, response.headers(), authenticated);
                if is_write && status.is_success() && path != "/graphql" {
                    let paths = affected_paths(&path);
                    self.invalidate_paths(&paths);
                    i.peers.announce_invalidation(&paths);
                    tracing::debug!(%method, "write invalidated {} paths", paths.len());
                }
                let mut response = if matches!(status.as_u16(), 403 | 429) {
                    self.observe_pass_refusal(&partition, response).await
                } else {
                    self.stream_response(response, &proxy_base)
                };
                i.stats.record(Outcome::Bypass);
                self.mark(&mut response, Outcome::Bypass);
                response
            }
            Err(failure) => {
                self.inner
                    .stats
                    .upstream_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let status = if failure.timed_out {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                let mut r = github_error(status, &format!("ghcache: {}", failure.message));
                self.inner.stats.record(Outcome::Bypass);
                self.mark(&mut r, Outcome::Bypass);
                r
            }
        }
    }

    /// A passed-through `403`/`429`: read (refusals are small) so that a
    /// rate-limit refusal can be replayed locally until GitHub's time.
    async fn observe_pass_refusal(
        &self,
        partition: &Partition,
        response: Response<Incoming>,
    ) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        let budget = crate::upstream::Budget::new(
            &self.inner.buffered,
            self.inner.config.max_buffered_bytes,
        );
        match self.inner.upstream.read_body(body, 64 << 10, budget).await {
            Ok(Ok(body)) => {
                let fetched = Fetched {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                };
                if is_rate_limit_refusal(&fetched) {
                    self.inner.quotas.observe_refusal(
                        partition,
                        fetched.status,
                        &fetched.headers,
                        &fetched.body,
                    );
                }
                let mut response = Response::new(full(fetched.body));
                *response.status_mut() = fetched.status;
                *response.headers_mut() = fetched.headers;
                response
            }
            Ok(Err((prefix, rest))) => {
                let prefix = futures_util::stream::once(std::future::ready(Ok::<_, BoxError>(
                    hyper::body::Frame::data(Bytes::from(prefix)),
                )));
                let rest = http_body_util::BodyStream::new(rest.map_err(BoxError::from));
                let stream = futures_util::StreamExt::chain(prefix, rest);
                Response::from_parts(
                    parts,
                    http_body_util::StreamBody::new(stream).boxed_unsync(),
                )
            }
            Err(failure) => github_error(
                StatusCode::BAD_GATEWAY,
                &format!("ghcache: {}", failure.message),
            ),
        }
    }
}

fn take_stream(slot: &Mutex<Option<Response<Body>>>) -> Option<Response<Body>> {
    slot.lock().take()
}

/// A refusal caused by quota, not by permissions.
fn is_rate_limit_refusal(fetched: &Fetched) -> bool {
    let status = fetched.status;
    if status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    status == StatusCode::FORBIDDEN
        && (header_str(&fetched.headers, "x-ratelimit-remaining") == Some("0")
            || fetched.headers.contains_key(header::RETRY_AFTER)
            || mentions_secondary_limit(&fetched.body))
}

/// GitHub's secondary-limit refusals say so in their message.
fn mentions_secondary_limit(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"secondary rate limit";
    body.len() <= 64 << 10
        && body
            .windows(NEEDLE.len())
            .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

fn quota_headers(headers: &mut HeaderMap, quota: &Quota, resource: &str) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("x-ratelimit-used", HeaderValue::from(quota.used));
    headers.insert("x-ratelimit-reset", HeaderValue::from(quota.reset));
    headers.insert("x-ratelimit-resource", headers::value(resource));
}
