//! Steps 1–4 and 6 of the pipeline: classify, fresh hit, quota gate,
//! foreign copy, act on the upstream's answer; and pass-through. Each step
//! either answers (`Break(Served)`) or hands on what it learnt (`Continue`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId, ResourceKey};
use ghcache_store::{EntryMeta, Hit};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::flight::{FlightResult, take_stream};
use crate::headers::{
    self, CacheControl, cache_control, etag_like, header_str, kept_headers, merge_not_modified,
    synthesize_etag,
};
use crate::invalidation::{affected_paths, cacheable_path};
use crate::peer::PeerTrust;
use crate::proxy::{MAX_TTL, now_ms};
use crate::quota::resource_for;
use crate::respond::{
    Served, full, github_error, is_rate_limit_refusal, resumed_body, upstream_failed,
};
use crate::stats::Outcome;
use crate::upstream::Fetched;
use crate::{Body, BoxError, Proxy};

/// What `classify` decided for a request.
pub(crate) enum Route {
    Cache(Box<Ctx>),
    Pass(Request<Incoming>),
    /// Key headers that cannot be represented exactly: never cached.
    Inexact(Request<Incoming>),
}

/// One classified cacheable request.
pub(crate) struct Ctx {
    pub path: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub head_only: bool,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub partition: Partition,
    pub resource: ResourceId,
    /// Where the client reached us: rewritten links point here.
    pub proxy_base: Arc<str>,
    /// The client's `Cache-Control` (parsed once, in classify).
    pub client_cc: CacheControl,
}

/// A copy held for another partition, here or by a peer.
struct Foreign {
    partition: Partition,
    hit: Hit,
    from_peer: bool,
}

/// What steps 2–4 learnt about a cacheable request.
struct Lookup {
    ctx: Ctx,
    own: Option<Hit>,
    foreign: Option<Foreign>,
}

impl Proxy {
    /// Step 1: is this a request we may answer from cache?
    /// The cache context of a cacheable request (which it consumes: its
    /// headers move into the context), or the request back to pass through.
    pub(crate) fn classify(&self, request: Request<Incoming>, proxy_base: Arc<str>) -> Route {
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
        Route::Cache(Box::new(Ctx {
            path,
            path_and_query,
            headers: request.into_parts().0.headers,
            head_only,
            authorization,
            accept,
            partition,
            resource,
            proxy_base,
            client_cc: cc,
        }))
    }

    /// Steps 2–6 for a cacheable request.
    pub(crate) async fn cacheable(&self, ctx: Ctx) -> Served {
        match self.held_copies(ctx).await {
            ControlFlow::Break(served) => served,
            ControlFlow::Continue(lookup) => self.ask_upstream(lookup).await,
        }
    }

    /// Steps 2–4: everything that can answer without GitHub.
    async fn held_copies(&self, ctx: Ctx) -> ControlFlow<Served, Lookup> {
        let lookup = self.fresh_hit(ctx)?;
        let lookup = self.quota_gate(lookup)?;
        self.foreign_copy(lookup).await
    }

    /// Step 2: a fresh copy of our own answers at once.
    fn fresh_hit(&self, ctx: Ctx) -> ControlFlow<Served, Lookup> {
        let own = self.inner.store.get(&ctx.resource, &ctx.partition);
        if let Some(hit) = &own
            && !ctx.client_cc.no_cache
            && self.is_fresh(&ctx, &hit.meta)
        {
            self.count_saved(&ctx);
            return ControlFlow::Break(self.serve_hit(&ctx, hit, Outcome::Hit, None));
        }
        ControlFlow::Continue(Lookup {
            ctx,
            own,
            foreign: None,
        })
    }

    /// Step 3: a partition GitHub told to back off, or whose quota is
    /// exhausted, is not sent upstream before the time GitHub named.
    fn quota_gate(&self, lookup: Lookup) -> ControlFlow<Served, Lookup> {
        let i = &self.inner;
        let refuse = |reason: &str, refusal: Served| {
            i.stats
                .refused_quota
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ControlFlow::Break(match &lookup.own {
                Some(hit) => self.serve_hit(&lookup.ctx, hit, Outcome::Stale, Some(reason)),
                None => refusal,
            })
        };
        if let Some(refusal) = i.quotas.backing_off(&lookup.ctx.partition) {
            return refuse(
                "GitHub asked to back off (Retry-After)",
                Served::new(self.replay_refusal(&refusal), Outcome::Miss),
            );
        }
        let bucket = resource_for(&Method::GET, &lookup.ctx.path);
        if let Some(quota) = i.quotas.exhausted(&lookup.ctx.partition, bucket) {
            return refuse(
                "quota exhausted until reset",
                self.refuse_exhausted(bucket, &quota),
            );
        }
        ControlFlow::Continue(lookup)
    }

    /// Step 4: someone else's copy (another token here, or a peer). Served
    /// as is only when trusted; otherwise it is the body step 5 asks GitHub
    /// to confirm with the requester's synthesised ETag.
    async fn foreign_copy(&self, mut lookup: Lookup) -> ControlFlow<Served, Lookup> {
        if lookup.own.is_some() {
            return ControlFlow::Continue(lookup);
        }
        let i = &self.inner;
        let ctx = &lookup.ctx;
        let foreign = match i.store.get_any(&ctx.resource) {
            Some((partition, hit)) => Some(Foreign {
                partition,
                hit,
                from_peer: false,
            }),
            None => tokio::time::timeout(
                i.config.peer_deadline,
                i.peers
                    .lookup(&ctx.resource, &ctx.partition, i.config.peer_deadline),
            )
            .await
            .ok()
            .flatten()
            .map(|copy| Foreign {
                partition: copy.partition,
                hit: Hit {
                    meta: copy.meta,
                    body: copy.body,
                },
                from_peer: true,
            }),
        };
        let foreign =
            foreign.filter(|copy| i.config.cross_partition || copy.partition == ctx.partition);
        if let Some(copy) = &foreign {
            // A peer's label is not proof: by default its copy is served
            // only after GitHub answers our synthesised ETag with a 304.
            let vouched = !copy.from_peer || i.config.peer_trust == PeerTrust::Members;
            let trusted = vouched
                && (copy.partition == ctx.partition || self.fleet_may_serve(ctx, &copy.partition));
            if trusted && !ctx.client_cc.no_cache && self.is_fresh(ctx, &copy.hit.meta) {
                self.count_saved(ctx);
                self.keep(ctx, copy.hit.meta.clone(), copy.hit.body.clone());
                return ControlFlow::Break(self.serve_hit(ctx, &copy.hit, Outcome::Hit, None));
            }
        }
        lookup.foreign = foreign;
        ControlFlow::Continue(lookup)
    }

    /// Steps 5 and 6: ask GitHub with the best validator we can send, then
    /// act on its answer.
    async fn ask_upstream(&self, lookup: Lookup) -> Served {
        let Lookup {
            ctx, own, foreign, ..
        } = lookup;
        let (held, validator, synthesized) = match (&own, &foreign) {
            (Some(hit), _) => (Some(hit.clone()), hit.meta.etag.clone(), false),
            (None, Some(copy)) => {
                let opaque = synthesize_etag(
                    ctx.accept.as_deref(),
                    ctx.authorization.as_deref(),
                    None,
                    &copy.hit.body,
                );
                let tag = etag_like(copy.hit.meta.etag.as_deref(), &opaque);
                (Some(copy.hit.clone()), Some(tag), true)
            }
            (None, None) => (
                None,
                header_str(&ctx.headers, header::IF_NONE_MATCH).map(str::to_owned),
                false,
            ),
        };
        let (flight, leader) = self.flight(&ctx, validator, held.is_some());
        let result = flight.await;
        let shared = (!leader).then_some(Outcome::Coalesced);

        // Step 6: act on the answer.
        let fetched = match result {
            FlightResult::Failed(failure) => {
                return match own.as_ref() {
                    Some(hit) => self.serve_hit(&ctx, hit, Outcome::Stale, Some(&failure.message)),
                    None => Served::new(upstream_failed(&failure), Outcome::Miss),
                };
            }
            FlightResult::TooLarge(slot) => {
                return match take_stream(&slot) {
                    Some(response) => Served::new(response, Outcome::Bypass),
                    None => Box::pin(self.cacheable_alone(ctx)).await,
                };
            }
            FlightResult::Done(fetched) => fetched,
        };
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
                own.as_ref().or(foreign.as_ref().map(|f| &f.hit)),
            );
        }
        if shared.is_some() {
            self.count_saved(&ctx);
        }
        self.serve_fetched(&ctx, &fetched, shared.unwrap_or(Outcome::Miss))
    }

    fn is_fresh(&self, ctx: &Ctx, meta: &EntryMeta) -> bool {
        !meta.stale
            && now_ms() < meta.stored_at_ms.saturating_add(meta.ttl_ms)
            && !self.invalidated_since(&ctx.path, meta.stored_at_ms)
    }

    /// A request that could not share an oversized flight: fetch alone.
    async fn cacheable_alone(&self, ctx: Ctx) -> Served {
        let request = match self.upstream_request(&ctx, None) {
            Ok(r) => r,
            Err(f) => {
                return Served::new(
                    github_error(StatusCode::BAD_GATEWAY, &format!("ghcache: {}", f.message)),
                    Outcome::Miss,
                );
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
                Served::new(
                    self.stream_response(response, &ctx.proxy_base),
                    Outcome::Bypass,
                )
            }
            Err(f) => Served::new(
                github_error(StatusCode::BAD_GATEWAY, &format!("ghcache: {}", f.message)),
                Outcome::Miss,
            ),
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

    pub(crate) fn count_saved(&self, ctx: &Ctx) {
        if ctx.path != "/rate_limit" {
            self.inner
                .stats
                .units_saved
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
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
    ) -> Served {
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
        let mut served = self.serve_hit(
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
                served
                    .response
                    .headers_mut()
                    .insert(name.clone(), value.clone());
            }
        }
        served
    }

    /// Writes, GraphQL and uncacheable reads: forwarded untouched, streamed
    /// both ways. A successful write invalidates its path and the
    /// collections above it, here and in the fleet.
    pub(crate) async fn pass_through(
        &self,
        request: Request<Incoming>,
        proxy_base: &str,
    ) -> Served {
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
            return Served::new(self.replay_refusal(&refusal), Outcome::Bypass);
        }
        let is_write = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        headers::strip_hop_by_hop(&mut parts.headers);
        headers::mark_sensitive(&mut parts.headers);
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
                return Served::new(
                    github_error(StatusCode::BAD_REQUEST, &format!("ghcache: {}", f.message)),
                    Outcome::Bypass,
                );
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
                let response = if matches!(status.as_u16(), 403 | 429) {
                    self.observe_pass_refusal(&partition, response).await
                } else {
                    self.stream_response(response, proxy_base)
                };
                Served::new(response, Outcome::Bypass)
            }
            Err(failure) => {
                self.inner
                    .stats
                    .upstream_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Served::new(upstream_failed(&failure), Outcome::Bypass)
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
                let fetched = self.read_answer(partition, parts, body);
                let mut response = Response::new(full(fetched.body));
                *response.status_mut() = fetched.status;
                *response.headers_mut() = fetched.headers;
                response
            }
            Ok(Err((prefix, rest))) => Response::from_parts(parts, resumed_body(prefix, rest)),
            Err(failure) => github_error(
                StatusCode::BAD_GATEWAY,
                &format!("ghcache: {}", failure.message),
            ),
        }
    }
}
