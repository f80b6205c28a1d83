//! Every answer the pipeline gives, on every path (hits, misses, refusals,
//! errors, streams, pass-through), says how it was made and is counted.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::origin::{Seen, json, origin};
use common::start_proxy;
use http::Response;
use http_body_util::Full;

/// Method, path, token, further headers.
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
);

/// `/then-fail` answers once, then fails: the second read is served stale.
static THEN_FAIL: AtomicUsize = AtomicUsize::new(0);

fn answer(seen: &Seen) -> Response<Full<Bytes>> {
    let path = seen.path_and_query.as_str();
    let revalidating = seen.header("if-none-match").is_some();
    match path {
        "/w" => json(201, "{}"),
        "/fail" => json(500, r#"{"message":"Server Error"}"#),
        "/big" => json(200, "b".repeat(200_000)),
        "/limited" => {
            let mut r = json(
                429,
                r#"{"message":"You have exceeded a secondary rate limit"}"#,
            );
            r.headers_mut().insert("retry-after", "30".parse().unwrap());
            r
        }
        "/short" if revalidating => Response::builder()
            .status(304)
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/then-fail" if THEN_FAIL.fetch_add(1, Ordering::SeqCst) > 0 => {
            json(502, r#"{"message":"Bad Gateway"}"#)
        }
        "/short" | "/flaky" | "/then-fail" => {
            let mut r = json(200, format!(r#"{{"path":"{path}"}}"#));
            r.headers_mut()
                .insert("cache-control", "private, max-age=0".parse().unwrap());
            r
        }
        _ => json(200, format!(r#"{{"path":"{path}"}}"#)),
    }
}

#[tokio::test]
async fn every_response_is_marked_and_counted() {
    let up = origin(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _store) = start_proxy(&up.base_url(), dir.path(), |c| {
        c.max_cacheable_body = 100_000;
        c.default_ttl = Duration::ZERO;
    })
    .await;
    let dead_dir = tempfile::tempdir().unwrap();
    let (dead, _dead_store) = start_proxy("http://127.0.0.1:9", dead_dir.path(), |c| {
        c.upstream_timeout = Duration::from_secs(2);
    })
    .await;
    let client = reqwest::Client::new();
    let mut seen_outcomes = std::collections::BTreeSet::new();
    let mut statuses = std::collections::BTreeSet::new();
    let mut sent = 0u64;
    let mut dead_sent = 0u64;
    let cases: &[Case] = &[
        ("GET", "/ok", Some("token a"), &[]),        // MISS
        ("GET", "/ok", Some("token a"), &[]),        // HIT
        ("GET", "/ok", Some("token b"), &[]),        // SYNTHESIZED or MISS
        ("GET", "/short", Some("token a"), &[]),     // MISS
        ("GET", "/short", Some("token a"), &[]),     // REVALIDATED
        ("GET", "/then-fail", Some("token a"), &[]), // MISS
        ("GET", "/then-fail", Some("token a"), &[]), // STALE (upstream 502)
        ("GET", "/big", Some("token a"), &[]),       // BYPASS (too large)
        ("GET", "/fail", Some("token a"), &[]),      // MISS (500 passed on)
        ("GET", "/limited", Some("token c"), &[]),   // MISS (429 passed on)
        ("GET", "/limited", Some("token c"), &[]),   // local replay while backing off
        ("POST", "/w", Some("token c"), &[]),        // BYPASS, held back
        ("POST", "/w", Some("token a"), &[]),        // BYPASS
        ("GET", "/ok", None, &[]),                   // anonymous MISS
        // 504: nothing fresh held and the client forbids asking GitHub
        (
            "GET",
            "/unheld",
            Some("token a"),
            &[("cache-control", "only-if-cached")],
        ),
        // two Authorization values: passed through, never looked up
        (
            "GET",
            "/ok",
            Some("token a"),
            &[("authorization", "token b")],
        ),
        // a job's requests, and the refusals of malformed job paths
        ("GET", "/_job/one-exit-job/ok", Some("token a"), &[]),
        ("GET", "/_job/one-exit-job/ok", Some("token a"), &[]),
        ("GET", "/_job/no/ok", Some("token a"), &[]),
        ("GET", "/_job/", Some("token a"), &[]),
    ];
    for (method, path, token, extra) in cases {
        let mut request = client.request(
            method.parse().unwrap(),
            format!("{}{path}", proxy.base_url()),
        );
        if let Some(token) = token {
            request = request.header("authorization", *token);
        }
        for (name, value) in *extra {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        sent += 1;
        let outcome = r
            .headers()
            .get("x-ghcache")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            outcome.is_some(),
            "{method} {path}: no X-Ghcache on a {}",
            r.status()
        );
        seen_outcomes.insert(outcome.unwrap());
        statuses.insert(r.status().as_u16());
        r.bytes().await.unwrap();
    }
    // Coalesced: concurrent identical requests.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = client
            .get(format!("{}/burst", proxy.base_url()))
            .header("authorization", "token z");
        burst.spawn(async move { request.send().await.unwrap() });
    }
    while let Some(r) = burst.join_next().await {
        let r = r.unwrap();
        sent += 1;
        seen_outcomes.insert(r.headers()["x-ghcache"].to_str().unwrap().to_owned());
    }
    // A dead upstream: a cacheable read and a write.
    for (method, path) in [("GET", "/ok"), ("POST", "/w")] {
        let r = client
            .request(
                method.parse().unwrap(),
                format!("{}{path}", dead.base_url()),
            )
            .header("authorization", "token a")
            .send()
            .await
            .unwrap();
        dead_sent += 1;
        assert_eq!(r.status(), 502);
        assert!(
            r.headers().contains_key("x-ghcache"),
            "{method} {path} on a dead upstream"
        );
    }
    for (proxy, sent) in [(&proxy, sent), (&dead, dead_sent)] {
        let stats = ghcache_proxy::control_get(proxy.addr(), "/_ghcache/stats")
            .await
            .unwrap();
        let counted = stats["hits"]["total"].as_u64().unwrap()
            + stats["misses"].as_u64().unwrap()
            + stats["bypass"].as_u64().unwrap();
        assert_eq!(stats["requests"].as_u64(), Some(sent), "{stats}");
        assert_eq!(
            counted, sent,
            "every response counted exactly once: {stats}"
        );
    }
    // (The burst may or may not overlap on a busy machine: `COALESCED` is
    // not required, only marked and counted when it happens.)
    for expected in ["HIT", "MISS", "BYPASS", "REVALIDATED", "STALE"] {
        assert!(seen_outcomes.contains(expected), "{seen_outcomes:?}");
    }
    // The odd cases were reached: the 504, and the refused job ids.
    for expected in [504, 400] {
        assert!(statuses.contains(&expected), "{statuses:?}");
    }
    let report = ghcache_proxy::control_get(proxy.addr(), "/_ghcache/jobs/one-exit-job")
        .await
        .unwrap();
    assert_eq!(report["requests"].as_u64(), Some(2), "{report}");
}
