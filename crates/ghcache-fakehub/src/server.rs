//! The HTTP side: the accept loop and the per-request pipeline, which runs
//! the gates of `gates` in GitHub's order, dispatches to `api`, and adds
//! GitHub's standard headers and the stats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::api;
use crate::ctx::{Ctx, parse_query};
use crate::gates::{self, Fault};
use crate::hub::{Category, Hub, Who};
use crate::reply::{API_VERSION, DOCS, Reply};

const MAX_BODY: usize = 32 * 1024 * 1024;

/// Error a service returns to make hyper drop the connection (a "reset").
#[derive(Debug, thiserror::Error)]
#[error("fakehub fault: connection dropped")]
pub(crate) struct Dropped;

type Resp = Response<Full<Bytes>>;

pub(crate) async fn serve(
    hub: Arc<Hub>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("fakehub accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let hub = hub.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let hub = hub.clone();
                        async move { handle(hub, req, peer).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn handle(hub: Arc<Hub>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if path.starts_with("/_fakehub") {
        let body = read_body(body).await.unwrap_or_default();
        return Ok(crate::introspect::handle(&hub, &parts.method, &path, &body));
    }
    let ip = peer.ip();
    let request_id = hub.request_id();
    let Some(who) = gates::authenticate(&hub, &parts.headers, ip) else {
        hub.stats.record("invalid-token", 401, 0);
        let reply = gates::bad_credentials();
        let anon = gates::anonymous(ip);
        return Ok(finish(
            &hub,
            &anon,
            Category::Core,
            reply,
            &request_id,
            false,
        ));
    };
    let (class, category) = api::classify(&parts.method, &path);
    // Errors answered before any work (no cache headers).
    let answer = |reply: Reply| finish(&hub, &who, category, reply, &request_id, false);
    // ... of which these are counted as a request at 0 units.
    let refuse = |reply: Reply| {
        hub.stats.record(&who.label, reply.status.as_u16(), 0);
        answer(reply)
    };

    let _slot = match gates::secondary_limit(&hub, &who, &request_id) {
        Ok(slot) => slot,
        Err(reply) => {
            hub.stats.record_secondary(&who.label);
            return Ok(answer(reply));
        }
    };
    let faults = gates::Faults::roll(&hub, class);
    match faults.before_body(&hub, &who.label).await {
        Ok(()) => {}
        Err(Fault::Refuse(reply)) => return Ok(refuse(reply)),
        Err(Fault::Drop) => return Err(Dropped),
    }
    let Some(body) = read_body(body).await else {
        let reply = Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large or unreadable",
            DOCS,
        );
        return Ok(refuse(reply));
    };
    if let Err(reply) = faults.after_body().await {
        return Ok(refuse(reply));
    }
    if let Err(reply) = gates::api_version(&parts.headers) {
        return Ok(refuse(reply));
    }
    // GET /rate_limit is free (GitHub does not count it)
    let free = path == "/rate_limit";
    let reserved = match gates::primary_limit(&hub, &who, category, free) {
        Ok(reserved) => reserved,
        Err(reply) => {
            hub.stats.record_rate_limited(&who.label);
            return Ok(answer(reply));
        }
    };

    let query = parts.uri.query().map(str::to_string);
    // HEAD is answered like GET (hyper omits the body on the wire)
    let method = if parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        parts.method.clone()
    };
    let ctx = Ctx {
        method: &method,
        path: &path,
        query: parse_query(query.as_deref()),
        raw_query: query.as_deref(),
        who: &who,
        body: &body,
    };
    let mut reply = api::dispatch(&hub, &ctx);

    gates::conditional(&parts.headers, &mut reply);
    let consumed = gates::settle(&hub, &who, category, reserved, free, &reply);
    hub.stats
        .record(&who.label, reply.status.as_u16(), consumed);
    let report_cat = if free { Category::Core } else { category };
    Ok(finish(&hub, &who, report_cat, reply, &request_id, true))
}

async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// The headers api.github.com adds to every answer, with their values
/// (checked against recorded answers by ghcache-proxy's `octokit_fixtures`).
pub const EVERY_ANSWER: [(&str, &str); 9] = [
    ("server", "GitHub.com"),
    (
        "access-control-expose-headers",
        "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, \
         X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, \
         X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, \
         X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset",
    ),
    ("access-control-allow-origin", "*"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubdomains; preload",
    ),
    ("x-frame-options", "deny"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "0"),
    (
        "referrer-policy",
        "origin-when-cross-origin, strict-origin-when-cross-origin",
    ),
    ("content-security-policy", "default-src 'none'"),
];

/// Adds GitHub's standard headers to a reply.
fn finish(
    hub: &Hub,
    who: &Who,
    cat: Category,
    reply: Reply,
    request_id: &str,
    cache_headers: bool,
) -> Resp {
    let mut b = Response::builder().status(reply.status);
    let h: &mut HeaderMap = match b.headers_mut() {
        Some(h) => h,
        None => return Response::new(Full::new(Bytes::new())),
    };
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.append(k, v);
        }
    };
    if reply.status != StatusCode::NOT_MODIFIED && reply.status != StatusCode::NO_CONTENT {
        put("content-type", "application/json; charset=utf-8");
    }
    let (limit, used, reset) = hub.rate_view(who, cat);
    if limit > 0 || cat != Category::Graphql {
        put("x-ratelimit-limit", &limit.to_string());
        put(
            "x-ratelimit-remaining",
            &limit.saturating_sub(used).to_string(),
        );
        put("x-ratelimit-used", &used.to_string());
        put("x-ratelimit-reset", &reset.to_string());
        put("x-ratelimit-resource", cat.name());
    }
    if hub.cfg.date_skew_secs != 0 {
        // Otherwise hyper writes `Date` from the wall clock, as GitHub does.
        put("date", &skewed_date(hub.cfg.date_skew_secs));
    }
    put("x-github-request-id", request_id);
    put("x-github-api-version-selected", API_VERSION);
    put("x-github-media-type", "github.v3; format=json");
    // What api.github.com sends on every answer, errors included (as
    // recorded in @octokit/fixtures).
    for (name, value) in EVERY_ANSWER {
        put(name, value);
    }
    let ok = reply.status.is_success() || reply.status == StatusCode::NOT_MODIFIED;
    if cache_headers && ok && cat != Category::Graphql {
        if who.authenticated {
            put("cache-control", "private, max-age=60, s-maxage=60");
            put("vary", "Accept, Authorization, Cookie, X-GitHub-OTP");
            put("vary", "Accept-Encoding, Accept, X-Requested-With");
        } else {
            put("cache-control", "public, max-age=60, s-maxage=60");
            put("vary", "Accept, Accept-Encoding, Accept, X-Requested-With");
        }
        if let Some(lm) = reply.last_modified {
            put("last-modified", &crate::time::http_date(lm));
        }
    }
    if let Some(l) = &reply.link {
        put("link", l);
    }
    for (k, v) in &reply.headers {
        put(k, v);
    }
    b.body(Full::new(reply.body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The wall clock shifted by `skew` seconds, as an HTTP date.
fn skewed_date(skew: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    crate::time::http_date(now.saturating_add(skew))
}
