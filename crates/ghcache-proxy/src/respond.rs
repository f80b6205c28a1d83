//! Building answers: held entries, upstream answers, local refusals and
//! errors in GitHub's shape. Nothing here counts or marks a response: that
//! is `Proxy::exit`'s job, so no answer can leave uncounted.

use std::sync::OnceLock;

use bytes::Bytes;
use ghcache_store::{EntryMeta, Hit};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::freshness::parse_date;
use crate::headers::{self, Present, header_str, if_none_match_matches};
use crate::pipeline::Ctx;
use crate::prepared;
use crate::proxy::now_ms;
use crate::quota::{Quota, Refusal, resource_for};
use crate::stats::Outcome;
use crate::upstream::Fetched;
use crate::{Body, BoxError, Proxy};

/// A response and how it was produced, on its way to `Proxy::exit`.
#[derive(Debug)]
pub(crate) struct Served {
    pub response: Response<Body>,
    pub outcome: Outcome,
    /// The head says `X-Ghcache: <outcome>` already (a prepared head's
    /// slot): the exit need not write it.
    pub has_outcome: bool,
}

impl Served {
    pub fn new(response: Response<Body>, outcome: Outcome) -> Served {
        Served {
            response,
            outcome,
            has_outcome: false,
        }
    }
}

/// An error in GitHub's JSON shape, saying what failed.
pub(crate) fn github_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
    });
    let mut response = Response::new(Body::full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The error answer for a failed upstream exchange: 504 on a timeout,
/// 502 otherwise, saying what failed.
pub(crate) fn upstream_failed(failure: &crate::upstream::UpstreamFailure) -> Response<Body> {
    let status = if failure.timed_out {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    github_error(status, &format!("ghcache: {}", failure.message))
}

/// A body of which `prefix` was read already and `rest` still streams.
pub(crate) fn resumed_body(prefix: Vec<u8>, rest: Incoming) -> Body {
    let prefix = futures_util::stream::once(std::future::ready(Ok::<_, BoxError>(
        hyper::body::Frame::data(Bytes::from(prefix)),
    )));
    let rest = http_body_util::BodyStream::new(rest.map_err(BoxError::from));
    Body::stream(http_body_util::StreamBody::new(
        futures_util::StreamExt::chain(prefix, rest),
    ))
}

impl Proxy {
    /// A fully read upstream answer; a rate-limit refusal among them starts
    /// the partition's back-off.
    pub(crate) fn read_answer(
        &self,
        partition: &ghcache_core::Partition,
        parts: http::response::Parts,
        body: Bytes,
        sent_at_ms: u64,
    ) -> Fetched {
        let fetched = Fetched {
            status: parts.status,
            headers: parts.headers,
            body,
            sent_at_ms,
            received_at_ms: now_ms(),
            secondary: Vec::new(),
        };
        if is_rate_limit_refusal(&fetched) {
            self.inner.quotas.observe_refusal(
                partition,
                fetched.status,
                &fetched.headers,
                &fetched.body,
            );
        }
        fetched
    }

    /// Serves a held entry (fresh, revalidated or stale): the stored header
    /// block as GitHub sent it (this thread's prepared copy, see
    /// [`prepared`]), with links pointing here, its current `Age`, and the
    /// caller's quota.
    pub(crate) fn serve_hit(
        &self,
        ctx: &Ctx,
        hit: &Hit,
        outcome: Outcome,
        stale_reason: Option<&str>,
    ) -> Served {
        self.serve_held(ctx, &hit.meta, &hit.body, outcome, stale_reason, now_ms())
    }

    /// [`Proxy::serve_hit`] from the parts, as the store holds them, at
    /// `now_ms` (unix ms).
    pub(crate) fn serve_held(
        &self,
        ctx: &Ctx,
        meta: &EntryMeta,
        body: &Bytes,
        outcome: Outcome,
        stale_reason: Option<&str>,
        now_ms: u64,
    ) -> Served {
        let status = StatusCode::from_u16(meta.status).unwrap_or(StatusCode::OK);
        let bucket = resource_for(&Method::GET, ctx.path());
        let age_secs = current_age_ms(meta, now_ms) / 1000;
        let prepared::Head {
            map: mut headers,
            has_outcome,
        } = self
            .inner
            .quotas
            .with_at(&ctx.partition, bucket, now_ms / 1000, |quota| {
                let added = prepared::PerAnswer {
                    age_secs,
                    quota: quota.map(|q| (q, bucket)),
                    outcome,
                };
                self.inner.heads.head_for(
                    &meta.headers,
                    meta.status,
                    &ctx.proxy_base,
                    added,
                    |map| self.rewrite_for_client(status, map, &ctx.proxy_base),
                )
            });
        if let Some(reason) = stale_reason {
            let reason = reason.replace('"', "'");
            headers.insert(
                header::WARNING,
                headers::value(&format!("110 ghcache \"Response is Stale: {reason}\"")),
            );
        }
        let (status, body) = if not_modified_for(ctx, meta) {
            headers.remove(header::CONTENT_TYPE);
            headers.remove(header::CONTENT_LENGTH);
            (StatusCode::NOT_MODIFIED, Body::empty())
        } else if ctx.head_only {
            (status, Body::empty())
        } else {
            (status, Body::full(body.clone()))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Served {
            response,
            outcome,
            has_outcome,
        }
    }

    /// Serves an upstream response as received.
    pub(crate) fn serve_fetched(&self, ctx: &Ctx, fetched: &Fetched, outcome: Outcome) -> Served {
        let mut headers = fetched.headers.clone();
        headers::strip_hop_by_hop(&mut headers);
        headers.remove(header::SET_COOKIE);
        self.rewrite_for_client(fetched.status, &mut headers, &ctx.proxy_base);
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(fetched.body.len()),
        );
        let body = if ctx.head_only {
            Body::empty()
        } else {
            Body::full(fetched.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = fetched.status;
        *response.headers_mut() = headers;
        Served::new(response, outcome)
    }

    pub(crate) fn refuse_exhausted(&self, bucket: &'static str, quota: Quota) -> Served {
        let mut response = github_error(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded (ghcache holds requests for this token until the limit resets). Authenticated requests get a higher rate limit; conditional requests that GitHub answers 304 are free.",
        );
        quota_headers(response.headers_mut(), &quota, bucket);
        response.headers_mut().insert(
            "x-ghcache-reason",
            HeaderValue::from_static("quota-exhausted"),
        );
        Served::new(response, Outcome::Miss)
    }

    /// GitHub's refusal, replayed while its back-off lasts.
    pub(crate) fn replay_refusal(&self, refusal: &Refusal) -> Response<Body> {
        let mut response = Response::new(Body::full(refusal.body.clone()));
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
        response
    }

    /// Upstream URLs in `Link` (and, on a redirect, `Location`) pointed at
    /// the proxy, so that clients follow them through it.
    pub(crate) fn rewrite_for_client(
        &self,
        status: StatusCode,
        headers: &mut HeaderMap,
        proxy_base: &str,
    ) {
        let upstream = &self.inner.upstream.base;
        if status.is_redirection()
            && let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
            && let Some(rewritten) = headers::rewrite_url(location, upstream, proxy_base)
        {
            headers.insert(header::LOCATION, headers::value(&rewritten));
        }
        if !headers.contains_key(header::LINK) {
            return;
        }
        let rewritten: Vec<HeaderValue> = headers
            .get_all(header::LINK)
            .iter()
            .map(|value| match value.to_str() {
                Ok(link) => headers::value(&headers::rewrite_link(link, upstream, proxy_base)),
                Err(_) => value.clone(),
            })
            .collect();
        headers.remove(header::LINK);
        for value in rewritten {
            headers.append(header::LINK, value);
        }
    }

    pub(crate) fn stream_response(
        &self,
        response: Response<Incoming>,
        proxy_base: &str,
    ) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        self.rewrite_for_client(parts.status, &mut parts.headers, proxy_base);
        Response::from_parts(parts, Body::stream(body))
    }
}

/// An `Age` value. The first hour's are rendered once, as static values a
/// hit clones for free; later ones are formatted.
pub(crate) fn age_value(secs: u64) -> HeaderValue {
    const RENDERED: usize = 3600;
    static VALUES: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let values = VALUES.get_or_init(|| {
        // Leaked once: the values borrow it for the process's life.
        let text: &'static str = String::leak((0..RENDERED).map(|n| n.to_string()).collect());
        let mut at = 0;
        (0..RENDERED)
            .map(|n| {
                let len = n.checked_ilog10().map_or(1, |d| d as usize + 1);
                let value = HeaderValue::from_static(&text[at..at + len]);
                at += len;
                value
            })
            .collect()
    });
    usize::try_from(secs)
        .ok()
        .and_then(|i| values.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(secs))
}

/// How old a held entry is now (RFC 9111 §4.2.3), in ms.
pub(crate) fn current_age_ms(meta: &EntryMeta, now_ms: u64) -> u64 {
    meta.initial_age_ms
        .saturating_add(now_ms.saturating_sub(meta.stored_at_ms))
}

/// Whether the client's own conditional matches a held `200`/`203`
/// (RFC 9110 §13.1: `If-None-Match` wins; `If-Modified-Since` against the
/// stored `Last-Modified`, else its `Date`).
fn not_modified_for(ctx: &Ctx, meta: &EntryMeta) -> bool {
    if !matches!(meta.status, 200 | 203)
        || !ctx
            .present
            .any(Present::IF_NONE_MATCH | Present::IF_MODIFIED_SINCE)
    {
        return false;
    }
    if let Some(inm) = header_str(&ctx.headers, header::IF_NONE_MATCH) {
        return meta
            .etag
            .as_deref()
            .is_some_and(|etag| if_none_match_matches(inm, etag));
    }
    let Some(since) = header_str(&ctx.headers, header::IF_MODIFIED_SINCE).and_then(parse_date)
    else {
        return false;
    };
    meta.last_modified
        .as_deref()
        .or_else(|| meta.headers.get_str("date"))
        .and_then(parse_date)
        .is_some_and(|modified| modified <= since)
}

/// A refusal caused by quota, not by permissions.
pub(crate) fn is_rate_limit_refusal(fetched: &Fetched) -> bool {
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

pub(crate) fn quota_headers(headers: &mut HeaderMap, quota: &Quota, resource: &'static str) {
    let [limit, remaining, used, reset] = quota.values.clone();
    headers.insert(headers::X_RATELIMIT_LIMIT.clone(), limit);
    headers.insert(headers::X_RATELIMIT_REMAINING.clone(), remaining);
    headers.insert(headers::X_RATELIMIT_USED.clone(), used);
    headers.insert(headers::X_RATELIMIT_RESET.clone(), reset);
    headers.insert(
        headers::X_RATELIMIT_RESOURCE.clone(),
        HeaderValue::from_static(resource),
    );
}

#[cfg(test)]
mod tests {
    use super::age_value;

    #[test]
    fn age_values_from_the_table_and_past_it() {
        for secs in [
            0,
            9,
            10,
            59,
            99,
            100,
            999,
            1000,
            3599,
            3600,
            86_400,
            u64::MAX,
        ] {
            assert_eq!(
                age_value(secs).to_str().ok(),
                Some(secs.to_string().as_str())
            );
        }
    }
}
