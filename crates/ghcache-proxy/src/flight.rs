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
use crate::freshness::secondary_key;
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
    /// Where the clients reached us: an answer too large to store is
    /// streamed to one of them with its links rewritten to point here.
    proxy_base: Arc<str>,
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
    /// Over the cacheable size: the first taker streams it, others retry alone.
    TooLarge(Arc<Mutex<Option<Response<Body>>>>),
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
}

impl Drop for FlightHold {
    fn drop(&mut self) {
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
    ) -> (Flight, Option<FlightHold>) {
        let key = FlightKey {
            resource: ctx.resource,
            partition: ctx.partition,
            validator: validator.clone(),
            proxy_base: ctx.proxy_base.clone(),
        };
        let mut flights = self.inner.flights.lock();
        if let Some(flight) = flights.get(&key) {
            return (flight.clone(), None);
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
        let hold = |proxy: Proxy| FlightHold {
            proxy,
            key: key.clone(),
            ends: ends.clone(),
        };
        let (task_hold, leader_hold) = (hold(self.clone()), hold(self.clone()));
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
        flights.insert(key, flight.clone());
        (flight, Some(leader_hold))
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
                let mut response = Response::from_parts(parts, resumed_body(prefix, rest));
                headers::strip_hop_by_hop(response.headers_mut());
                let status = response.status();
                self.rewrite_for_client(status, response.headers_mut(), proxy_base);
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

pub(crate) fn take_stream(slot: &Mutex<Option<Response<Body>>>) -> Option<Response<Body>> {
    slot.lock().take()
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
        let (flight, hold) = proxy.flight(&ctx, None, cause);
        assert!(hold.is_some(), "the first request leads");
        assert!(matches!(flight.await, FlightResult::Done(_)));
        let (joined, none) = proxy.flight(&ctx, None, cause);
        assert!(none.is_none(), "a new fetch while the leader was not done");
        assert!(matches!(joined.await, FlightResult::Done(_)));
        assert_eq!(hub.stats().totals.requests, 1);

        // The leader done too: the next request leads a new fetch.
        drop(hold);
        let (flight, hold) = proxy.flight(&ctx, None, cause);
        assert!(hold.is_some());
        // A leader gone before its fetch ends: removed when the fetch ends.
        drop(hold);
        assert!(matches!(flight.await, FlightResult::Done(_)));
        let (flight, hold) = proxy.flight(&ctx, None, cause);
        assert!(hold.is_some(), "a finished flight was left joinable");
        assert!(matches!(flight.await, FlightResult::Done(_)));
        assert_eq!(hub.stats().totals.requests, 3);
    }

    /// An answer too large to store is streamed to one request with its
    /// links rewritten for the address that request reached: a request
    /// that reached us at another address never shares its flight.
    #[tokio::test]
    async fn requests_that_reached_another_address_lead_their_own_flight() {
        let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (proxy, ctx) = proxy_and_ctx(&hub, dir.path()).await;
        let cause = Cause::NoCopyUnclaimed;
        let (_flight, first) = proxy.flight(&ctx, None, cause);
        let (_same, joined) = proxy.flight(&ctx, None, cause);
        assert!(first.is_some() && joined.is_none());
        let elsewhere = Ctx {
            proxy_base: Arc::from("http://172.17.0.1:1"),
            headers: ctx.headers.clone(),
            uri: ctx.uri.clone(),
            ..ctx
        };
        let (_other, led) = proxy.flight(&elsewhere, None, cause);
        assert!(
            led.is_some(),
            "joined a flight streamed for another address"
        );
    }
}
