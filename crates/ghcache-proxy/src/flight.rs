//! Step 5: the upstream exchange, shared by concurrent identical requests
//! (coalescing) and accounted once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use ghcache_core::{Partition, ResourceId};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use parking_lot::Mutex;

use crate::causes::Cause;
use crate::foreign::Foreign;
use crate::freshness::{secondary_key, secondary_key_matches};
use crate::headers;
use crate::pipeline::Ctx;
use crate::respond::resumed_body;
use crate::upstream::{Fetched, UpstreamFailure};
use crate::{Body, Proxy};

/// Identifies one upstream exchange that concurrent requests may share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FlightKey {
    resource: ResourceId,
    partition: Partition,
    /// The validator sent, if any: requests with different conditionals
    /// cannot share an answer.
    validator: Option<Validator>,
}

/// The conditional an upstream request carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Validator {
    /// `If-None-Match`.
    Tag(String),
    /// `If-Modified-Since` (a held entry's `Last-Modified`, when it has no
    /// ETag, or the client's own).
    Since(String),
}

#[derive(Clone)]
pub(crate) enum FlightResult {
    Done(Arc<Fetched>),
    Failed(Arc<UpstreamFailure>),
    /// Over the cacheable size: streamed to one request that may take it
    /// ([`Oversized::take_for`]); the others fetch alone.
    TooLarge(Arc<Oversized>),
}

/// An answer too large to store, streamed as it arrives.
pub(crate) struct Oversized {
    stream: Mutex<Option<Response<Body>>>,
    /// Its links are rewritten to point here.
    proxy_base: Arc<str>,
    /// The leader's values of the headers the answer's `Vary` names.
    secondary: Vec<(String, Option<String>)>,
}

impl Oversized {
    /// The stream, for the first request that may take it: one that
    /// reached us where the leader did, with the leader's values of the
    /// headers the answer's `Vary` names.
    pub(crate) fn take_for(&self, ctx: &Ctx) -> Option<Response<Body>> {
        if *self.proxy_base != *ctx.proxy_base
            || !secondary_key_matches(&self.secondary, &ctx.headers, ctx.present)
        {
            return None;
        }
        self.stream.lock().take()
    }
}

/// Who stores a flight's answer: its leader, whose hold keeps the flight
/// (and its claim) open until it has; or, when the leader went away
/// before acting, the first joiner to find that out. A joiner asks only
/// once the leader has settled it (kept the answer, or gone without), so
/// a leader leaving just after its answer arrived still has it stored.
#[derive(Clone, Default)]
pub(crate) struct Keeper(Arc<Keeping>);

#[derive(Default)]
struct Keeping {
    state: AtomicU8,
    /// Woken when `state` leaves `PENDING`.
    settled: tokio::sync::Notify,
}

const PENDING: u8 = 0;
const KEPT: u8 = 1;
const ORPHANED: u8 = 2;

impl Keeper {
    fn take(&self, from: u8) -> bool {
        self.settle(from, KEPT)
    }

    fn settle(&self, from: u8, to: u8) -> bool {
        let moved = self
            .0
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved && from == PENDING {
            self.0.settled.notify_waiters();
        }
        moved
    }

    /// Until the leader has kept the answer or gone without. It acts as
    /// soon as the answer wakes it (no await between), or is dropped.
    async fn settled(&self) {
        loop {
            let notified = self.0.settled.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.0.state.load(Ordering::Acquire) != PENDING {
                return;
            }
            notified.await;
        }
    }
}

/// A request's part in a flight.
pub(crate) enum Role {
    /// It started the flight; the hold lives as long as the request.
    Leader(FlightHold),
    Joiner(Keeper),
}

impl Role {
    pub(crate) fn leads(&self) -> bool {
        matches!(self, Role::Leader(_))
    }

    /// Whether this request is the one to store (or refresh) the answer;
    /// true at most once per flight. A joiner waits for the leader to
    /// settle it first.
    pub(crate) async fn keeps(&self) -> bool {
        match self {
            Role::Leader(hold) => hold.keeper.as_ref().is_some_and(|k| k.take(PENDING)),
            Role::Joiner(keeper) => {
                keeper.settled().await;
                keeper.take(ORPHANED)
            }
        }
    }
}

pub(crate) type Flight = Shared<BoxFuture<'static, FlightResult>>;

/// What a flight's fetch needs of the request that started it.
struct Leader {
    partition: Partition,
    path: String,
    authenticated: bool,
    proxy_base: Arc<str>,
    /// For the answer's secondary key: a request that joins with other
    /// values of the headers its `Vary` names may not share it.
    headers: HeaderMap,
}

/// Keeps a flight joinable until its fetch has ended *and* its leader has
/// acted on the answer (stored it): a request arriving in between joins
/// it instead of fetching again. Whichever ends last (the fetch's task or
/// the leader, finished or gone) removes it.
pub(crate) struct FlightHold {
    proxy: Proxy,
    key: FlightKey,
    /// Holds not yet dropped (of the two).
    ends: Arc<AtomicU8>,
    /// The leader's hold: dropped before the leader kept the answer, it
    /// hands the keeping to a joiner.
    keeper: Option<Keeper>,
}

impl Drop for FlightHold {
    fn drop(&mut self) {
        if let Some(keeper) = &self.keeper {
            keeper.settle(PENDING, ORPHANED);
        }
        if self.ends.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.proxy.inner.flights.lock().remove(&self.key);
        }
    }
}

impl Proxy {
    /// Joins or starts the upstream exchange for this request; the leader
    /// (who started it) also gets its [`FlightHold`].
    pub(crate) fn flight(
        &self,
        ctx: &Ctx,
        validator: Option<Validator>,
        cause: Cause,
    ) -> (Flight, Role) {
        let key = FlightKey {
            resource: ctx.resource,
            partition: ctx.partition,
            validator: validator.clone(),
        };
        let mut flights = self.inner.flights.lock();
        if let Some((flight, keeper)) = flights.get(&key) {
            return (flight.clone(), Role::Joiner(keeper.clone()));
        }
        let request = self.upstream_request(ctx, validator.as_ref());
        let this = self.clone();
        let leader = Leader {
            partition: ctx.partition,
            path: ctx.path().to_owned(),
            authenticated: ctx.authorization().is_some(),
            proxy_base: ctx.proxy_base.clone(),
            headers: ctx.headers.clone(),
        };
        let ends = Arc::new(AtomicU8::new(2));
        let keeper = Keeper::default();
        let hold = |keeper: Option<Keeper>| FlightHold {
            proxy: self.clone(),
            key: key.clone(),
            ends: ends.clone(),
            keeper,
        };
        let (task_hold, leader_hold) = (hold(None), hold(Some(keeper.clone())));
        // Spawned so that a client hanging up never cancels the others' answer;
        // its exchange counts for the job whose request led it.
        let job = crate::job::current();
        let task = tokio::spawn(crate::job::scope_if(job, async move {
            let result = match request {
                Err(failure) => FlightResult::Failed(Arc::new(failure)),
                Ok(request) => this.fetch(request, &leader, cause).await,
            };
            drop(task_hold);
            result
        }));
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
        flights.insert(key, (flight.clone(), keeper));
        (flight, Role::Leader(leader_hold))
    }

    async fn fetch(&self, request: Request<Body>, leader: &Leader, cause: Cause) -> FlightResult {
        let Leader {
            partition,
            path,
            authenticated,
            proxy_base,
            headers: asked,
        } = leader;
        let upstream = &self.inner.upstream;
        let sent_at = crate::proxy::now_ms();
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
        self.account_upstream(
            partition,
            path,
            parts.status,
            &parts.headers,
            *authenticated,
            cause,
        );
        let budget = crate::upstream::Budget::new(
            &self.inner.buffered,
            self.inner.config.max_buffered_bytes,
        );
        match upstream
            .read_body(body, self.inner.config.max_cacheable_body, budget)
            .await
        {
            Ok(Ok(body)) => {
                let mut fetched = self.read_answer(partition, parts, body, sent_at);
                fetched.secondary = secondary_key(&fetched.headers, asked);
                FlightResult::Done(Arc::new(fetched))
            }
            Ok(Err((prefix, rest))) => {
                let secondary = secondary_key(&parts.headers, asked);
                let mut response = Response::from_parts(parts, resumed_body(prefix, rest));
                headers::strip_hop_by_hop(response.headers_mut());
                let status = response.status();
                self.rewrite_for_client(status, response.headers_mut(), proxy_base);
                FlightResult::TooLarge(Arc::new(Oversized {
                    stream: Mutex::new(Some(response)),
                    proxy_base: proxy_base.clone(),
                    secondary,
                }))
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

    /// With no copy held here: waits for another partition's fetch of the
    /// resource under way here (at most `in_flight_wait`) and returns what
    /// it stored; otherwise claims the resource for this request. A leader
    /// that fails or is refused stores nothing: the waiter then claims and
    /// fetches on its own, never served the leader's answer.
    pub(crate) async fn await_flight(
        &self,
        ctx: &Ctx,
    ) -> (Option<ghcache_peer::Claim>, Option<Foreign>) {
        use ghcache_peer::Joined;
        let flights = &self.inner.under_way;
        let waiter = match flights.join_or_claim(&ctx.resource, &ctx.partition) {
            Joined::Leader(claim) => return (Some(claim), None),
            // Identical requests share one exchange (step 5).
            Joined::Same => return (None, None),
            Joined::Waiter(waiter) => waiter,
        };
        waiter.wait(self.inner.config.in_flight_wait).await;
        let copy = self.local_copy(ctx);
        if copy.is_some() {
            return (None, copy);
        }
        match flights.join_or_claim(&ctx.resource, &ctx.partition) {
            Joined::Leader(claim) => (Some(claim), None),
            Joined::Same | Joined::Waiter(_) => (None, None),
        }
    }

    /// Counts the upstream exchange and remembers the quota it reported.
    pub(crate) fn account_upstream(
        &self,
        partition: &Partition,
        path: &str,
        status: StatusCode,
        headers: &HeaderMap,
        authenticated: bool,
        cause: Cause,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.inner.stats;
        stats.upstream_requests.fetch_add(1, Relaxed);
        stats.upstream_status.count(status);
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
            self.inner.causes.count(cause);
        }
        crate::job::upstream_exchange(!free);
        self.inner.quotas.observe(partition, headers);
        if authenticated && status != StatusCode::UNAUTHORIZED {
            self.inner.accepted.lock().put(*partition, ());
        }
    }

    /// The upstream GET for a cacheable request, with `validator` (ours or
    /// the client's own) as its only conditional.
    pub(crate) fn upstream_request(
        &self,
        ctx: &Ctx,
        validator: Option<&Validator>,
    ) -> Result<Request<Body>, UpstreamFailure> {
        let mut headers = ctx.headers.clone();
        headers::strip_hop_by_hop(&mut headers);
        headers::mark_sensitive(&mut headers);
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
            Some(Validator::Tag(tag)) => {
                headers.insert(header::IF_NONE_MATCH, headers::value(tag));
            }
            Some(Validator::Since(date)) => {
                headers.insert(header::IF_MODIFIED_SINCE, headers::value(date));
            }
            None => {}
        }
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, HeaderValue::from_static("ghcache"));
        }
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = self.inner.upstream.uri(ctx.path_and_query())?;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ProxyConfig;
    use crate::headers::Scan;
    use ghcache_core::{PartitionSecret, ResourceKey};
    use ghcache_fakehub::{FakeHub, FakeHubConfig};
    use ghcache_store::{Store, StoreConfig};

    async fn proxy_and_ctx(hub: &FakeHub, dir: &std::path::Path) -> (Proxy, Ctx) {
        let store = Arc::new(Store::open(&dir.join("cache"), StoreConfig::default()).unwrap());
        let secret = PartitionSecret::generate();
        let token = hub.world().pat("alice").to_owned();
        let path = format!("/repos/{}", hub.world().public_repo());
        let partition = secret.partition_for_bytes(Some(format!("token {token}").as_bytes()));
        let config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), hub.base_url());
        let proxy = Proxy::new(config, store, secret).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("token {token}")).unwrap(),
        );
        let resource = ResourceId::compute(&ResourceKey {
            host: "127.0.0.1",
            method: "GET",
            path: &path,
            query: "",
            accept: None,
            api_version: None,
        });
        let ctx = Ctx {
            uri: path.parse().unwrap(),
            present: Scan::of(&headers).present,
            headers,
            head_only: false,
            partition,
            resource,
            proxy_base: Arc::from("http://127.0.0.1:1"),
            client_cc: Default::default(),
        };
        (proxy, ctx)
    }

    /// A request arriving after a flight's fetch ended but before its
    /// leader stored the answer joins it: it does not fetch again.
    #[tokio::test]
    async fn a_flight_is_joinable_until_both_its_fetch_and_its_leader_are_done() {
        let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (proxy, ctx) = proxy_and_ctx(&hub, dir.path()).await;
        let cause = Cause::NoCopyUnclaimed;

        // The fetch ends while the leader still holds on: joined.
        let (flight, leader) = proxy.flight(&ctx, None, cause);
        assert!(leader.leads(), "the first request leads");
        assert!(matches!(flight.await, FlightResult::Done(_)));
        let (joined, joiner) = proxy.flight(&ctx, None, cause);
        assert!(!joiner.leads(), "a new fetch while the leader was not done");
        assert!(matches!(joined.await, FlightResult::Done(_)));
        assert_eq!(hub.stats().totals.requests, 1);

        // The leader done too: the next request leads a new fetch.
        drop(leader);
        let (flight, leader) = proxy.flight(&ctx, None, cause);
        assert!(leader.leads());
        // A leader gone before its fetch ends: removed when the fetch ends.
        drop(leader);
        assert!(matches!(flight.await, FlightResult::Done(_)));
        let (flight, leader) = proxy.flight(&ctx, None, cause);
        assert!(leader.leads(), "a finished flight was left joinable");
        assert!(matches!(flight.await, FlightResult::Done(_)));
        assert_eq!(hub.stats().totals.requests, 3);
    }

    /// The leader stores a flight's answer (its hold keeps the flight and
    /// its claim open until then); a joiner only once the leader is gone
    /// without having stored it; never two of them.
    #[tokio::test]
    async fn the_leader_keeps_the_answer_and_a_joiner_only_in_its_absence() {
        let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (proxy, ctx) = proxy_and_ctx(&hub, dir.path()).await;
        let cause = Cause::NoCopyUnclaimed;
        let (flight, leader) = proxy.flight(&ctx, None, cause);
        let (_, joiner) = proxy.flight(&ctx, None, cause);
        let mut asked = Box::pin(joiner.keeps());
        assert!(
            (&mut asked).now_or_never().is_none(),
            "a joiner decided while the leader was there"
        );
        assert!(leader.keeps().await);
        assert!(!asked.await, "a joiner kept what the leader kept");
        assert!(!leader.keeps().await && !joiner.keeps().await, "kept twice");
        // Ended (its fetch and its leader): the next request leads anew.
        flight.await;
        drop((leader, joiner));

        let (flight, leader) = proxy.flight(&ctx, None, cause);
        assert!(leader.leads());
        let (_, first) = proxy.flight(&ctx, None, cause);
        let (_, second) = proxy.flight(&ctx, None, cause);
        flight.await;
        // The joiner asks first; the leader then goes away without acting.
        let mut asked = Box::pin(first.keeps());
        assert!((&mut asked).now_or_never().is_none());
        drop(leader);
        assert!(asked.await, "no one kept the answer of a leader gone");
        assert!(!second.keeps().await, "kept twice");
    }

    /// An answer too large to store is streamed to one request, with its
    /// links rewritten for the address the leader reached and fetched for
    /// the leader's values of the headers its `Vary` names.
    #[tokio::test]
    async fn an_oversized_answer_goes_only_to_a_request_it_was_fetched_for() {
        let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (_proxy, ctx) = proxy_and_ctx(&hub, dir.path()).await;
        let with = |base: &str, value: Option<&'static str>| {
            let mut headers = ctx.headers.clone();
            if let Some(value) = value {
                headers.insert("x-requested-with", HeaderValue::from_static(value));
            }
            Ctx {
                uri: ctx.uri.clone(),
                present: Scan::of(&headers).present,
                headers,
                head_only: false,
                partition: ctx.partition,
                resource: ctx.resource,
                proxy_base: Arc::from(base),
                client_cc: Default::default(),
            }
        };
        let oversized = Oversized {
            stream: Mutex::new(Some(Response::new(Body::empty()))),
            proxy_base: Arc::from("http://127.0.0.1:1"),
            secondary: vec![("x-requested-with".into(), Some("one".into()))],
        };
        let elsewhere = with("http://172.17.0.1:1", Some("one"));
        assert!(oversized.take_for(&elsewhere).is_none(), "another address");
        let other_value = with("http://127.0.0.1:1", Some("two"));
        assert!(oversized.take_for(&other_value).is_none(), "another value");
        let without = with("http://127.0.0.1:1", None);
        assert!(oversized.take_for(&without).is_none(), "no value");
        let same = with("http://127.0.0.1:1", Some("one"));
        assert!(oversized.take_for(&same).is_some());
        assert!(oversized.take_for(&same).is_none(), "streamed twice");
    }
}
