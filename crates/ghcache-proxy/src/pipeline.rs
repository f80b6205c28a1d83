//! Steps 1–3 and 6 of the pipeline: classify, fresh hit, quota gate, act
//! on the upstream's answer; and pass-through (step 4 is `foreign.rs`,
//! step 5 `flight.rs`). Each of steps 1–4 either answers (`Break(Served)`)
//! or hands on what it learnt (`Continue`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId, ResourceKey};
use ghcache_store::{EntryMeta, Hit, StoredHead};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::causes::Cause;
use crate::flight::{FlightResult, Role, Validator};
use crate::foreign::Foreign;
use crate::freshness::{
    explicit_lifetime, initial_age_ms, refuse_to_store, secondary_key, secondary_key_matches,
};
use crate::headers::{
    self, CacheControl, Present, cache_control, etag_like, header_str, merge_not_modified,
    stored_head, synthesize_etag,
};
use crate::invalidation::{affected_paths, cacheable_path};
use crate::proxy::{MAX_TTL, now_ms};
use crate::quota::resource_for;
use crate::respond::{
    Served, current_age_ms, github_error, is_rate_limit_refusal, resumed_body, upstream_failed,
};
use crate::stats::Outcome;
use crate::upstream::Fetched;
use crate::{Body, Proxy};

/// What `classify` decided for a request.
pub(crate) enum Route {
    /// Not boxed: a hit answers from it where it was made; steps that
    /// wait box it ([`Lookup`]).
    Cache(Ctx),
    Pass(Request<Incoming>),
    /// Key headers that cannot be represented exactly: never cached.
    Inexact(Request<Incoming>),
}

/// One classified cacheable request.
pub(crate) struct Ctx {
    /// The request's target, moved from it (not copied).
    pub uri: http::Uri,
    pub headers: HeaderMap,
    pub head_only: bool,
    pub partition: Partition,
    pub resource: ResourceId,
    /// Where the client reached us: rewritten links point here.
    pub proxy_base: Arc<str>,
    /// The client's `Cache-Control` (parsed once, in classify).
    pub client_cc: CacheControl,
    /// Which of the headers a hit asks about the request carries.
    pub present: Present,
}

impl Ctx {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// The `Authorization` value (classify checked it is one visible-ASCII value).
    pub fn authorization(&self) -> Option<&str> {
        header_str(&self.headers, header::AUTHORIZATION)
    }

    /// The `Accept` value (checked like `Authorization`).
    pub fn accept(&self) -> Option<&str> {
        header_str(&self.headers, header::ACCEPT)
    }
}

/// What steps 2–4 learnt about a cacheable request.
pub(crate) struct Lookup {
    pub ctx: Box<Ctx>,
    pub own: Option<Hit>,
    pub foreign: Option<Foreign>,
    /// Our claim on the resource while we fetch it (released once the
    /// answer is stored): other partitions and members wait for it.
    pub claim: Option<ghcache_peer::Claim>,
    /// How a claimed peer lookup ended, if one was made.
    pub looked: Option<ghcache_peer::LookupEnd>,
}

/// What step 5 asked GitHub with, for step 6 to act on the answer.
struct Asked {
    own: Option<Hit>,
    foreign: Option<Foreign>,
    /// The ETag synthesised from a foreign copy, when that was sent.
    synthesized_tag: Option<String>,
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
        let scan = headers::Scan::of(headers);
        let present = scan.present;
        let cc = if present.any(Present::CACHE_CONTROL | Present::PRAGMA) {
            cache_control(headers)
        } else {
            CacheControl::default()
        };
        let personal = present.any(Present::COOKIE | Present::OTP | Present::RANGE);
        if !self.inner.config.cache_enabled
            || cc.no_store
            || personal
            || !cacheable_path(request.uri().path())
        {
            return Route::Pass(request);
        }
        // The key must be built from exactly what is forwarded: a repeated
        // or non-visible-ASCII key header would otherwise key as absent.
        let api_version = if present.any(Present::API_VERSION) {
            headers::exact_single(headers, &headers::X_GITHUB_API_VERSION)
        } else {
            Ok(None)
        };
        let (Ok(authorization), Ok(accept), Ok(api_version)) =
            (scan.authorization.exact(), scan.accept.exact(), api_version)
        else {
            return Route::Inexact(request);
        };
        let uri = request.uri();
        let (resource, partition) = self.inner.keys.keys(
            &ResourceKey {
                host: &self.inner.upstream.host,
                method: "GET",
                path: uri.path(),
                query: uri.query().unwrap_or(""),
                accept,
                api_version,
            },
            &self.inner.secret,
            authorization.map(str::as_bytes),
        );
        let parts = request.into_parts().0;
        Route::Cache(Ctx {
            uri: parts.uri,
            headers: parts.headers,
            head_only,
            partition,
            resource,
            proxy_base,
            client_cc: cc,
            present,
        })
    }

    /// Steps 2 and 3: a fresh copy of our own, or a partition that must
    /// not go upstream yet.
    pub(crate) fn held_here(&self, ctx: Ctx) -> ControlFlow<Served, Lookup> {
        let lookup = self.fresh_hit(ctx)?;
        self.quota_gate(lookup)
    }

    /// Steps 4–6: a copy held by another partition or a peer, confirmed
    /// or replaced by GitHub.
    pub(crate) async fn held_elsewhere(&self, lookup: Lookup) -> Served {
        match self.foreign_copy(lookup).await {
            ControlFlow::Break(served) => served,
            ControlFlow::Continue(lookup) => self.ask_upstream(lookup).await,
        }
    }

    /// Step 2: a fresh copy of our own answers at once.
    fn fresh_hit(&self, ctx: Ctx) -> ControlFlow<Served, Lookup> {
        // One clock read for the whole hit.
        let now = now_ms();
        // Read in place, from this thread's memory of the entry when it has
        // one: a fresh hit copies none of the entry's metadata; any other
        // copy of ours is taken along for revalidation.
        let held = self
            .inner
            .store
            .with_held_at(&ctx.resource, &ctx.partition, now, |held| {
                // A copy stored for other values of the headers its `Vary`
                // names is not an answer to this request (RFC 9111 §4.1).
                if !secondary_key_matches(&held.meta().vary, &ctx.headers, ctx.present) {
                    return ControlFlow::Continue(None);
                }
                if !ctx.client_cc.no_cache
                    && !held.is_stale()
                    && self.is_fresh_at(&ctx, held.meta(), now)
                {
                    return ControlFlow::Break(self.serve_held(
                        &ctx,
                        held.meta(),
                        held.body(),
                        Outcome::Hit,
                        None,
                        now,
                    ));
                }
                ControlFlow::Continue(Some(held.to_hit()))
            });
        let own = match held {
            Some(ControlFlow::Break(served)) => {
                self.count_saved(&ctx);
                return ControlFlow::Break(served);
            }
            Some(ControlFlow::Continue(own)) => own,
            None => None,
        };
        ControlFlow::Continue(Lookup {
            ctx: Box::new(ctx),
            own,
            foreign: None,
            claim: None,
            looked: None,
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
        let bucket = resource_for(&Method::GET, lookup.ctx.path());
        if let Some(quota) = i.quotas.exhausted(&lookup.ctx.partition, bucket) {
            return refuse(
                "quota exhausted until reset",
                self.refuse_exhausted(bucket, quota),
            );
        }
        ControlFlow::Continue(lookup)
    }

    /// Step 5: ask GitHub with the best validator we can send (sharing one
    /// fetch with identical requests), then act on its answer (step 6).
    async fn ask_upstream(&self, lookup: Lookup) -> Served {
        // `_claim` lives to the end: waiters wake once our answer is stored.
        let Lookup {
            ctx,
            own,
            foreign,
            claim: _claim,
            looked,
        } = lookup;
        let (validator, synthesized) = match (&own, &foreign) {
            (Some(hit), None) => (own_validator(&hit.meta), false),
            (_, Some(copy)) => {
                let opaque =
                    synthesize_etag(ctx.accept(), ctx.authorization(), None, &copy.hit.body);
                let tag = etag_like(copy.hit.meta.etag.as_deref(), &opaque);
                (Some(Validator::Tag(tag)), true)
            }
            (None, None) => (client_validator(&ctx), false),
        };
        if ctx.client_cc.only_if_cached {
            return Served::new(
                github_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "ghcache: only-if-cached, and no fresh copy is held",
                ),
                Outcome::Miss,
            );
        }
        let cause = match (&own, &foreign, looked) {
            (_, Some(_), _) => Cause::NotConfirmed,
            (Some(_), None, _) => Cause::Changed,
            (None, None, Some(end)) => Cause::NoCopy(end),
            (None, None, None) => Cause::NoCopyUnclaimed,
        };
        // `role` lives to the end: a leader's hold keeps the flight
        // joinable until our answer is stored.
        let (flight, role) = self.flight(&ctx, validator.clone(), cause);
        let result = flight.await;
        let sent = match (&validator, synthesized) {
            (Some(Validator::Tag(tag)), true) => Some(tag.clone()),
            _ => None,
        };
        let asked = Asked {
            own,
            foreign,
            synthesized_tag: sent,
        };
        self.act(ctx, asked, result, &role).await
    }

    /// Step 6: act on the upstream's answer: serve it (and store it, once
    /// per flight), refresh a held copy on a 304, or serve a held copy
    /// stale when GitHub failed.
    async fn act(&self, ctx: Box<Ctx>, asked: Asked, result: FlightResult, role: &Role) -> Served {
        let Asked {
            own,
            foreign,
            synthesized_tag,
        } = asked;
        // The copy a 304 confirms: the foreign one we asked about, else ours.
        let held = foreign.as_ref().map(|copy| &copy.hit).or(own.as_ref());
        let leader = role.leads();
        let shared = (!leader).then_some(Outcome::Coalesced);
        let fetched = match result {
            FlightResult::Failed(failure) => {
                return match own.as_ref().filter(|hit| may_serve_stale(&hit.meta)) {
                    Some(hit) => self.serve_hit(&ctx, hit, Outcome::Stale, Some(&failure.message)),
                    None => Served::new(upstream_failed(&failure), Outcome::Miss),
                };
            }
            FlightResult::TooLarge(oversized) => {
                return match oversized.take_for(&ctx) {
                    Some(response) => Served::new(response, Outcome::Bypass),
                    None => Box::pin(self.cacheable_alone(ctx)).await,
                };
            }
            FlightResult::Done(fetched) => fetched,
        };
        if !leader && !secondary_key_matches(&fetched.secondary, &ctx.headers, ctx.present) {
            // Asked with other values of the headers the answer's `Vary`
            // names than the request it answered (RFC 9111 §4.1).
            return Box::pin(self.cacheable_alone(ctx)).await;
        }
        let status = fetched.status;
        if status == StatusCode::NOT_MODIFIED {
            if let Some(hit) = held {
                let keeps = role.keeps().await;
                let tag = synthesized_tag.as_deref();
                return self.revalidated(&ctx, hit.clone(), &fetched, tag, leader, keeps);
            }
            // The client's own conditional, answered by GitHub.
            return self.serve_fetched(&ctx, &fetched, shared.unwrap_or(Outcome::Miss));
        }
        if (status.is_server_error() || is_rate_limit_refusal(&fetched))
            && let Some(hit) = own.as_ref().filter(|hit| may_serve_stale(&hit.meta))
        {
            let reason = format!("upstream answered {status}");
            return self.serve_hit(&ctx, hit, Outcome::Stale, Some(&reason));
        }
        // One store (and one announcement) per flight: its leader's, or a
        // joiner's when the leader went away first.
        if role.keeps().await {
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

    /// Fresh (RFC 9111 §4.2: its current age below its lifetime, and
    /// within what the client's `max-age`/`min-fresh` accept), not marked
    /// stale by the fleet, not invalidated by a write since stored.
    pub(crate) fn is_fresh(&self, ctx: &Ctx, meta: &EntryMeta) -> bool {
        self.is_fresh_at(ctx, meta, now_ms())
    }

    /// [`Proxy::is_fresh`] at `now` (unix ms).
    fn is_fresh_at(&self, ctx: &Ctx, meta: &EntryMeta, now: u64) -> bool {
        let age = current_age_ms(meta, now);
        let cc = &ctx.client_cc;
        let wanted = cc.min_fresh.unwrap_or(0).saturating_mul(1000);
        !meta.stale
            && age.saturating_add(wanted) < meta.ttl_ms
            && cc.max_age.is_none_or(|max| age <= max.saturating_mul(1000))
            && !self.invalidated_since(ctx.path(), meta.stored_at_ms)
    }

    /// A request that could not share a flight's answer (oversized, or
    /// for other `Vary` values): fetch alone.
    async fn cacheable_alone(&self, ctx: Box<Ctx>) -> Served {
        let request = match self.upstream_request(&ctx, client_validator(&ctx).as_ref()) {
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
                    ctx.path(),
                    response.status(),
                    response.headers(),
                    ctx.authorization().is_some(),
                    Cause::PassThrough,
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
    pub(crate) fn fleet_may_serve(&self, ctx: &Ctx, copy_partition: &Partition) -> bool {
        if !self.inner.config.fleet_trust {
            return false;
        }
        copy_partition.is_anonymous()
            || (!ctx.partition.is_anonymous()
                && self.inner.accepted.lock().contains(&ctx.partition))
    }

    pub(crate) fn count_saved(&self, ctx: &Ctx) {
        if ctx.path() != "/rate_limit" {
            self.inner
                .stats
                .units_saved
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::job::unit_saved();
        }
    }

    /// Stores a response RFC 9111 lets us reuse under the requester's
    /// partition (its header block built here, once), and tells the fleet
    /// when it is a new version.
    fn store_fetched(&self, ctx: &Ctx, fetched: &Fetched, previous: Option<&Hit>) {
        let cc = cache_control(&fetched.headers);
        if let Some(why) = refuse_to_store(
            fetched.status,
            &fetched.headers,
            &cc,
            ctx.partition.is_anonymous(),
        ) {
            tracing::trace!(status = %fetched.status, why, "not stored");
            return;
        }
        let etag = header_str(&fetched.headers, header::ETAG).map(str::to_owned);
        let last_modified = header_str(&fetched.headers, header::LAST_MODIFIED).map(str::to_owned);
        let received = std::time::UNIX_EPOCH + Duration::from_millis(fetched.received_at_ms);
        let head = stored_head(&fetched.headers, fetched.body.len(), received);
        let meta = EntryMeta {
            status: fetched.status.as_u16(),
            headers: StoredHead::new(head),
            head_format: ghcache_store::HEAD_FORMAT,
            ttl_ms: self.lifetime(
                ctx,
                &fetched.headers,
                &cc,
                etag.is_some() || last_modified.is_some(),
            ),
            etag: etag.clone(),
            last_modified,
            stored_at_ms: fetched.received_at_ms,
            initial_age_ms: initial_age_ms(
                &fetched.headers,
                fetched.sent_at_ms,
                fetched.received_at_ms,
            ),
            vary: secondary_key(&fetched.headers, &ctx.headers),
            stale: false,
            body_cid: ContentId::of(&fetched.body),
            body_len: fetched.body.len() as u64,
            last_access_ms: fetched.received_at_ms,
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
        if new_version && previous.is_some() {
            // Every partition's copy of the old version is now stale, as
            // the announcement makes it on the other daemons.
            self.inner.store.mark_stale(&ctx.resource);
        }
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

    pub(crate) fn keep(&self, ctx: &Ctx, meta: EntryMeta, body: Bytes) {
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

    /// How long a response stays fresh, in ms: `no-cache` never; an
    /// operation TTL from the configuration; GitHub's own freshness; the
    /// default TTL only when GitHub gave none and the response has a
    /// validator (so that it can be revalidated for free); else never.
    fn lifetime(&self, ctx: &Ctx, headers: &HeaderMap, cc: &CacheControl, validator: bool) -> u64 {
        if cc.no_cache {
            return 0;
        }
        let config = &self.inner.config;
        let ttl = match (
            config.operation_ttls.lookup(ctx.path()),
            explicit_lifetime(headers, cc),
        ) {
            (Some(ttl), _) | (None, Some(ttl)) => ttl,
            (None, None) if validator => config.default_ttl,
            (None, None) => Duration::ZERO,
        };
        ttl.min(MAX_TTL).as_millis() as u64
    }

    /// A `304` for a body we hold: refresh the entry for this partition and
    /// serve the body with the fresh per-request headers.
    fn revalidated(
        &self,
        ctx: &Ctx,
        hit: Hit,
        fetched: &Fetched,
        synthesized: Option<&str>,
        leader: bool,
        keeps: bool,
    ) -> Served {
        let shared = (!leader).then_some(Outcome::Coalesced);
        let mut meta = hit.meta.clone();
        let mut head = merge_not_modified(meta.headers.map(), &fetched.headers);
        if let Some(sent) = synthesized {
            // Our synthesised tag matched: it (or the one GitHub named) is
            // this partition's ETag for the body. Our own entry keeps its
            // ETag: the 304 answered that one (RFC 9111 §4.3.4).
            let tag = header_str(&fetched.headers, header::ETAG).unwrap_or(sent);
            head.insert(header::ETAG, headers::value(tag));
            meta.etag = Some(tag.to_owned());
        }
        meta.headers = StoredHead::new(head);
        if let Some(modified) = header_str(&fetched.headers, header::LAST_MODIFIED) {
            meta.last_modified = Some(modified.to_owned());
        }
        let merged = meta.headers.map();
        let cc = cache_control(merged);
        meta.ttl_ms = self.lifetime(
            ctx,
            merged,
            &cc,
            meta.etag.is_some() || meta.last_modified.is_some(),
        );
        meta.stored_at_ms = fetched.received_at_ms;
        meta.initial_age_ms =
            initial_age_ms(&fetched.headers, fetched.sent_at_ms, fetched.received_at_ms);
        meta.last_access_ms = fetched.received_at_ms;
        meta.stale = false;
        if keeps {
            self.keep(ctx, meta.clone(), hit.body.clone());
        }
        if ctx.authorization().is_some() {
            self.count_saved(ctx);
        }
        let outcome = shared.unwrap_or(if synthesized.is_some() {
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
        let request = Request::from_parts(parts, Body::stream(body));
        match self.inner.upstream.send(request).await {
            Ok(response) => {
                let status = response.status();
                let i = &self.inner;
                self.account_upstream(
                    &partition,
                    &path,
                    status,
                    response.headers(),
                    authenticated,
                    Cause::PassThrough,
                );
                if is_write && status.is_success() && path != "/graphql" {
                    let mut paths = affected_paths(&path);
                    // RFC 9111 §4.4: also what the answer says it changed.
                    paths.extend(self.named_paths(response.headers()));
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

    /// The upstream paths a write's `Location` and `Content-Location` name
    /// (absolute under the upstream base, or absolute paths).
    fn named_paths(&self, headers: &HeaderMap) -> Vec<String> {
        let base = &self.inner.upstream.base;
        [header::LOCATION, header::CONTENT_LOCATION]
            .into_iter()
            .filter_map(|name| header_str(headers, name))
            .filter_map(|url| match url.strip_prefix(base.as_str()) {
                Some(tail) if tail.starts_with('/') => Some(tail),
                Some(_) => None,
                None => url.starts_with('/').then_some(url),
            })
            .map(|tail| tail.split(['?', '#']).next().unwrap_or(tail).to_owned())
            .filter(|path| cacheable_path(path))
            .collect()
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
                let fetched = self.read_answer(partition, parts, body, now_ms());
                let mut response = Response::new(Body::full(fetched.body));
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

/// How we revalidate our own entry: its ETag, else its `Last-Modified`.
fn own_validator(meta: &EntryMeta) -> Option<Validator> {
    match (&meta.etag, &meta.last_modified) {
        (Some(tag), _) => Some(Validator::Tag(tag.clone())),
        (None, Some(date)) => Some(Validator::Since(date.clone())),
        (None, None) => None,
    }
}

/// The client's own conditional, passed along when we hold nothing.
fn client_validator(ctx: &Ctx) -> Option<Validator> {
    header_str(&ctx.headers, header::IF_NONE_MATCH)
        .map(|tag| Validator::Tag(tag.to_owned()))
        .or_else(|| {
            header_str(&ctx.headers, header::IF_MODIFIED_SINCE)
                .map(|date| Validator::Since(date.to_owned()))
        })
}

/// `must-revalidate` (and `proxy-revalidate`) forbid serving a stale copy,
/// even when the upstream fails (RFC 9111 §5.2.2.2); `no-cache` does too.
fn may_serve_stale(meta: &EntryMeta) -> bool {
    let cc = cache_control(meta.headers.map());
    !cc.must_revalidate && !cc.no_cache
}
