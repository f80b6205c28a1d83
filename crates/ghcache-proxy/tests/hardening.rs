//! Issue 9's defects, each reproduced over real sockets against a
//! GitHub-like origin (or the fake GitHub) and shown fixed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::origin::{Seen, json, origin, slow_origin};
use common::{Reply, start_proxy};
use ghcache_core::{Partition, PartitionSecret, ResourceId};
use ghcache_proxy::{PeerCopy, PeerFuture, PeerSource, PeerTrust, Proxy, ProxyConfig};
use ghcache_store::{EntryMeta, Store, StoreConfig};
use http::Response;
use http_body_util::Full;
use reqwest::header::{HeaderMap, HeaderValue};

struct Front {
    proxy: ghcache_proxy::RunningProxy,
    _store: Arc<Store>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn front(upstream: &str, tweak: impl FnOnce(&mut ProxyConfig)) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, store) = start_proxy(upstream, dir.path(), tweak).await;
    Front {
        proxy,
        _store: store,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Front {
    async fn get(&self, path: &str, headers: &[(&str, &[u8])]) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        self.send(reqwest::Method::GET, path, map).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, headers: HeaderMap) -> Reply {
        let response = self
            .client
            .request(method, format!("{}{path}", self.proxy.base_url()))
            .headers(headers)
            .send()
            .await
            .unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap(),
        }
    }

    async fn stats(&self) -> serde_json::Value {
        ghcache_proxy::control_get(self.proxy.addr(), "/_ghcache/stats")
            .await
            .unwrap()
    }
}

/// An origin that answers with what it was asked: the query and the exact
/// Authorization and Accept bytes (hex), so any mix-up shows in the body.
fn echo(seen: &Seen) -> Response<Full<Bytes>> {
    let auth = seen.header("authorization").map(hex::encode);
    let accept = seen.header("accept").map(hex::encode);
    json(
        200,
        serde_json::json!({"asked": seen.path_and_query, "auth": auth, "accept": accept})
            .to_string(),
    )
}

// The hit path looks up only the request headers one pass found present
// (`Present`): each one it asks about must still change the answer.
#[tokio::test]
async fn each_request_header_a_hit_depends_on_still_changes_the_answer() {
    let up = origin(echo).await;
    let f = front(&up.base_url(), |_| {}).await;
    let token: (&str, &[u8]) = ("authorization", b"token tokA");
    let path = "/repos/acme/held";
    assert_eq!(f.get(path, &[token]).await.outcome(), "MISS");
    let held = f.get(path, &[token]).await;
    assert_eq!(held.outcome(), "HIT");
    let etag = held.header("etag").unwrap().to_owned();

    // Personal requests go to GitHub as they are.
    for extra in [
        ("cookie", &b"session=1"[..]),
        ("x-github-otp", b"123456"),
        ("range", b"bytes=0-1"),
        ("cache-control", b"no-store"),
    ] {
        let before = up.requests();
        let reply = f.get(path, &[token, extra]).await;
        assert_eq!(reply.outcome(), "BYPASS", "{}", extra.0);
        assert_eq!(up.requests(), before + 1, "{}", extra.0);
    }
    // Asked to revalidate: GitHub is asked, whichever header says so.
    for extra in [("cache-control", &b"no-cache"[..]), ("pragma", b"no-cache")] {
        let before = up.requests();
        let reply = f.get(path, &[token, extra]).await;
        assert_ne!(reply.outcome(), "HIT", "{}", extra.0);
        assert_eq!(up.requests(), before + 1, "{}", extra.0);
    }
    // The API version is part of the key; twice, it cannot be keyed.
    let version: (&str, &[u8]) = ("x-github-api-version", b"2022-11-28");
    assert_eq!(f.get(path, &[token, version]).await.outcome(), "MISS");
    assert_eq!(f.get(path, &[token, version]).await.outcome(), "HIT");
    let twice = f.get(path, &[token, version, version]).await;
    assert_eq!(twice.outcome(), "BYPASS");
    // Conditionals are answered from the held copy.
    let before = up.requests();
    let not_modified = f
        .get(path, &[token, ("if-none-match", etag.as_bytes())])
        .await;
    assert_eq!((not_modified.status, not_modified.outcome()), (304, "HIT"));
    // Against the held copy's date (its `Date`: the origin sends no
    // `Last-Modified`).
    for (since, status) in [
        (&b"Tue, 01 Jan 2030 00:00:00 GMT"[..], 304),
        (b"Mon, 01 Jan 1990 00:00:00 GMT", 200),
    ] {
        let reply = f.get(path, &[token, ("if-modified-since", since)]).await;
        assert_eq!((reply.status, reply.outcome()), (status, "HIT"));
    }
    assert_eq!(up.requests(), before);
}

/// GitHub's `Vary`, and one naming the other usual names.
fn varies(seen: &Seen) -> Response<Full<Bytes>> {
    let mut response = echo(seen);
    for vary in [
        "Accept, Authorization, Cookie, X-GitHub-OTP",
        "Accept-Encoding, Accept, X-Requested-With",
        "User-Agent, Origin, Accept-Language",
    ] {
        response
            .headers_mut()
            .append("vary", http::HeaderValue::from_static(vary));
    }
    response
}

// A hit skips looking up the usual `Vary` names a request's scan did not
// find: a request that carries one must still not get a copy stored
// without it.
#[tokio::test]
async fn each_usual_vary_name_a_request_carries_selects_another_copy() {
    let up = origin(varies).await;
    let f = front(&up.base_url(), |_| {}).await;
    let token: (&str, &[u8]) = ("authorization", b"token tokA");
    let path = "/repos/acme/varied";
    assert_eq!(f.get(path, &[token]).await.outcome(), "MISS");
    assert_eq!(f.get(path, &[token]).await.outcome(), "HIT");
    for extra in [
        ("x-requested-with", &b"XMLHttpRequest"[..]),
        ("user-agent", b"another-client/1.0"),
        ("origin", b"https://example.com"),
        ("accept-language", b"de"),
    ] {
        // Stored without it: asked for with it, GitHub is asked.
        let before = up.requests();
        let with = f.get(path, &[token, extra]).await;
        assert_ne!(with.outcome(), "HIT", "{}", extra.0);
        assert_eq!(up.requests(), before + 1, "{}", extra.0);
        // Stored with it now: asked for without it, GitHub is asked again.
        assert_eq!(
            f.get(path, &[token, extra]).await.outcome(),
            "HIT",
            "{}",
            extra.0
        );
        let without = f.get(path, &[token]).await;
        assert_ne!(without.outcome(), "HIT", "{}", extra.0);
        assert_eq!(f.get(path, &[token]).await.outcome(), "HIT", "{}", extra.0);
    }
}

// Concurrent identical requests share one fetch, but the answer is for
// the values its request had of the headers `Vary` names: a request with
// other values must not be handed it.
#[tokio::test]
async fn a_shared_fetch_is_not_handed_to_a_request_with_other_vary_values() {
    let up = slow_origin(Duration::from_millis(300), |seen: &Seen| {
        let mut response = varies(seen);
        let asked = seen.header("x-requested-with").map(hex::encode);
        *response.body_mut() = Full::new(Bytes::from(
            serde_json::json!({ "x_requested_with": asked }).to_string(),
        ));
        response
    })
    .await;
    let f = front(&up.base_url(), |_| {}).await;
    let token: (&str, &[u8]) = ("authorization", b"token tokA");
    let values: [&[u8]; 2] = [b"one", b"two"];
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let value = values[i % 2];
        let f = &f;
        async move {
            let reply = f
                .get("/repos/acme/varied", &[token, ("x-requested-with", value)])
                .await;
            (value, reply)
        }
    }))
    .await;
    for (value, reply) in &replies {
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json()["x_requested_with"],
            hex::encode(value),
            "{} got another request's answer",
            reply.outcome()
        );
    }
    let outcomes: Vec<&str> = replies.iter().map(|(_, r)| r.outcome()).collect();
    // Some requests did join a flight of the other value, and fetched alone.
    assert!(outcomes.contains(&"BYPASS"), "{outcomes:?}");
    assert!(outcomes.contains(&"COALESCED"), "{outcomes:?}");
}

// Item 1: a key header that is not visible ASCII was keyed as absent.
#[tokio::test]
async fn a_non_ascii_authorization_is_passed_through_and_never_served_to_others() {
    let up = origin(echo).await;
    let f = front(&up.base_url(), |_| {}).await;
    let private = f
        .get("/repos/acme/secret", &[("authorization", b"token\xa0tokA")])
        .await;
    assert_eq!((private.status, private.outcome()), (200, "BYPASS"));
    let anonymous = f.get("/repos/acme/secret", &[]).await;
    assert_ne!(anonymous.outcome(), "HIT");
    assert_ne!(anonymous.body, private.body, "the private body leaked");
    assert_eq!(up.requests(), 2);
    // Forwarded byte for byte.
    assert_eq!(
        up.seen()[0].header("authorization"),
        Some(&b"token\xa0tokA"[..])
    );

    // The same for Accept, and for a repeated Authorization.
    let odd_accept = f
        .get(
            "/repos/acme/x",
            &[("accept", b"application/vnd.github.raw\xff")],
        )
        .await;
    assert_eq!(odd_accept.outcome(), "BYPASS");
    assert_ne!(f.get("/repos/acme/x", &[]).await.outcome(), "HIT");
    let twice = f
        .get(
            "/repos/acme/y",
            &[("authorization", b"token a"), ("authorization", b"token b")],
        )
        .await;
    assert_eq!(twice.outcome(), "BYPASS");
    assert_eq!(
        f.get("/repos/acme/y", &[("authorization", b"token a")])
            .await
            .outcome(),
        "MISS"
    );
}

// Item 2: query normalisation once merged distinct pages.
#[tokio::test]
async fn queries_that_mean_different_pages_get_different_bodies() {
    let up = origin(echo).await;
    let f = front(&up.base_url(), |_| {}).await;
    let token: &[(&str, &[u8])] = &[("authorization", b"token t")];
    for (a, b) in [
        ("/repos/o/r/pulls?after=Y3Vyc29yOjI=", "/repos/o/r/pulls"),
        (
            "/repos/o/r/pulls?page=2&page=1",
            "/repos/o/r/pulls?page=1&page=2",
        ),
        ("/repos/o/r/issues?state=", "/repos/o/r/issues"),
    ] {
        let first = f.get(a, token).await;
        let second = f.get(b, token).await;
        assert_eq!(second.outcome(), "MISS", "{b} was served {a}'s body");
        assert_ne!(first.body, second.body);
    }
    // What provably means the same still shares an entry.
    f.get("/repos/o/r/runs?per_page=5&status=queued", token)
        .await;
    let same = f
        .get("/repos/o/r/runs?status=queued&per_page=5", token)
        .await;
    assert_eq!(same.outcome(), "HIT");
}

// Item 3: the write-invalidation map grew quadratically and was never freed.
#[tokio::test]
async fn a_write_to_a_huge_path_adds_a_bounded_number_of_records() {
    let up = origin(|_| json(201, "{}")).await;
    let f = front(&up.base_url(), |_| {}).await;
    let path = "/a".repeat(15_000); // 30 KB, 15,000 segments
    let reply = f
        .send(reqwest::Method::POST, &path, auth_headers("token t"))
        .await;
    assert_eq!(reply.status, 201);
    let records = f.stats().await["invalidations"]["records"]
        .as_u64()
        .unwrap();
    assert!(records <= 32, "{records} records for one write");
}

fn auth_headers(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(value).unwrap());
    h
}

// Item 3: invalidations were lost on restart (up to a TTL of stale answers).
#[tokio::test]
async fn a_write_still_invalidates_after_a_restart() {
    let up = origin(|seen: &Seen| {
        if seen.method == "POST" {
            json(201, "{}")
        } else {
            echo(seen)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let get = |base: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("{base}/repos/o/r/issues"))
                .header("authorization", "token t")
                .send()
                .await
                .unwrap();
            r.headers()["x-ghcache"].to_str().unwrap().to_owned()
        }
    };
    let (proxy, store) = start_proxy(&up.base_url(), dir.path(), |_| {}).await;
    assert_eq!(get(proxy.base_url()).await, "MISS");
    assert_eq!(get(proxy.base_url()).await, "HIT");
    let posted = client
        .post(format!("{}/repos/o/r/issues/7/comments", proxy.base_url()))
        .header("authorization", "token t")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    proxy.shutdown().await;
    store.flush();
    drop(store);
    let (proxy, _store) = start_proxy(&up.base_url(), dir.path(), |_| {}).await;
    assert_ne!(
        get(proxy.base_url()).await,
        "HIT",
        "a stale answer after the restart"
    );
}

// Item 4: one quota record per distinct Authorization, shown in full.
#[tokio::test]
async fn bogus_tokens_cannot_grow_the_quota_tracker_or_the_stats() {
    let up = origin(|_| {
        let mut r = json(401, r#"{"message":"Bad credentials"}"#);
        let h = r.headers_mut();
        h.insert("x-ratelimit-limit", "60".parse().unwrap());
        h.insert("x-ratelimit-remaining", "59".parse().unwrap());
        h.insert("x-ratelimit-reset", "99999999999".parse().unwrap());
        r
    })
    .await;
    let f = front(&up.base_url(), |_| {}).await;
    let n = 4096 + 300;
    let client = f.client.clone();
    let base = f.proxy.base_url();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            for i in (worker..n).step_by(16) {
                let r = client
                    .get(format!("{base}/user"))
                    .header("authorization", format!("token bogus{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 401);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let stats = f.stats().await;
    let limits = &stats["rate_limit"];
    assert_eq!(limits["partitions_tracked"], 4096);
    assert!(limits["partitions"].as_array().unwrap().len() <= 20);
    assert!(
        stats.to_string().len() < 16 << 10,
        "stats grew to {} bytes",
        stats.to_string().len()
    );
    let metrics = f
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.matches("ghcache_rate_limit_remaining{").count() <= 20);
}

// Item 5: header bytes were outside every bound.
#[tokio::test]
async fn header_bytes_count_against_the_store_limit() {
    let link = format!(
        "<https://example.invalid/{}>; rel=\"next\"",
        "x".repeat(20_000)
    );
    let huge_link = format!(
        "<https://example.invalid/{}>; rel=\"next\"",
        "x".repeat(60_000)
    );
    let up = origin(move |seen: &Seen| {
        let mut r = echo(seen);
        let value = if seen.path_and_query.starts_with("/huge") {
            &huge_link
        } else {
            &link
        };
        r.headers_mut().insert("link", value.parse().unwrap());
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            &dir.path().join("cache"),
            StoreConfig {
                max_bytes: 1 << 20,
                ..StoreConfig::default()
            },
        )
        .unwrap(),
    );
    let secret = PartitionSecret::generate();
    let config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), up.base_url());
    let proxy = Proxy::new(config, store.clone(), secret)
        .unwrap()
        .serve()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    for i in 0..200 {
        let r = client
            .get(format!("{}/repos/o/r{i}", proxy.base_url()))
            .header("authorization", "token t")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    store.flush();
    let stats = store.stats();
    assert!(stats.meta_bytes > 0);
    assert!(
        stats.bytes + stats.meta_bytes <= 1 << 20,
        "{} body + {} header bytes under a 1 MiB limit",
        stats.bytes,
        stats.meta_bytes
    );
    // An entry with more header bytes than an entry may carry is served, not stored.
    let before = store.stats().entries;
    let r = client
        .get(format!("{}/huge", proxy.base_url()))
        .header("authorization", "token t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["link"].len() > 60_000);
    assert!(store.stats().entries <= before);
}

// Item 5: each in-flight response buffered up to 8 MiB with no global cap.
#[tokio::test]
async fn past_the_buffer_budget_responses_stream_through_uncached() {
    let big = "y".repeat(300_000);
    let up = origin(move |seen: &Seen| {
        if seen.path_and_query == "/big" {
            json(200, big.clone())
        } else {
            echo(seen)
        }
    })
    .await;
    let f = front(&up.base_url(), |c| c.max_buffered_bytes = 100_000).await;
    let token: &[(&str, &[u8])] = &[("authorization", b"token t")];
    let big = f.get("/big", token).await;
    assert_eq!((big.status, big.body.len()), (200, 300_000));
    assert_eq!(big.outcome(), "BYPASS");
    assert_eq!(f.get("/big", token).await.outcome(), "BYPASS");
    // Small ones are still cached, so the budget was given back.
    assert_eq!(f.get("/small", token).await.outcome(), "MISS");
    assert_eq!(f.get("/small", token).await.outcome(), "HIT");
}

// Item 7: Retry-After and secondary limits were ignored.
#[tokio::test]
async fn a_secondary_rate_limit_is_honoured_until_retry_after() {
    let up = origin(|seen: &Seen| {
        if seen.path_and_query.starts_with("/held") && seen.header("if-none-match").is_none() {
            // Held, but never fresh: every later read must go upstream.
            let mut r = echo(seen);
            r.headers_mut().insert("cache-control", "private, max-age=0".parse().unwrap());
            return r;
        }
        let mut r = json(
            403,
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#,
        );
        r.headers_mut().insert("retry-after", "60".parse().unwrap());
        r.headers_mut().insert("x-ratelimit-remaining", "4000".parse().unwrap());
        r
    })
    .await;
    let f = front(&up.base_url(), |c| c.default_ttl = Duration::ZERO).await;
    let token: &[(&str, &[u8])] = &[("authorization", b"token t")];
    // A held copy, then the origin starts refusing.
    let held = f.get("/held", token).await;
    assert_eq!(held.status, 200);
    for _ in 0..10 {
        let r = f.get("/repos/o/r", token).await;
        assert_eq!(r.status, 403);
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait));
    }
    let upstream_before = up.requests();
    assert_eq!(upstream_before, 2, "only the first refusal went upstream");
    // During the back-off: the held copy is served stale, writes wait too.
    let stale = f.get("/held", token).await;
    assert_eq!((stale.status, stale.outcome()), (200, "STALE"));
    assert_eq!(stale.body, held.body);
    let write = f
        .send(
            reqwest::Method::POST,
            "/repos/o/r/issues",
            auth_headers("token t"),
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(up.requests(), upstream_before);
    // Another token is not held back.
    let other = f.get("/repos/o/r", &[("authorization", b"token u")]).await;
    assert_eq!(other.status, 403);
    assert_eq!(up.requests(), upstream_before + 1);
}

// Item 10: fleet trust served an authenticated body to no token or a bogus one.
#[tokio::test]
async fn fleet_trust_never_serves_a_token_body_to_an_anonymous_or_unknown_token() {
    let up = origin(|seen: &Seen| match seen.header("authorization") {
        Some(b"token good") | Some(b"token good2") => json(200, r#"{"secret":true}"#),
        Some(_) => json(401, r#"{"message":"Bad credentials"}"#),
        None => json(404, r#"{"message":"Not Found"}"#),
    })
    .await;
    let f = front(&up.base_url(), |c| c.fleet_trust = true).await;
    let secret = f
        .get("/repos/acme/private", &[("authorization", b"token good")])
        .await;
    assert_eq!(secret.status, 200);
    let anonymous = f.get("/repos/acme/private", &[]).await;
    assert_eq!(anonymous.status, 404);
    let bogus = f
        .get("/repos/acme/private", &[("authorization", b"token bogus")])
        .await;
    assert_eq!(bogus.status, 401);
    // A token GitHub accepted still gets fleet trust's HIT.
    f.get("/user", &[("authorization", b"token good2")]).await;
    let trusted = f
        .get("/repos/acme/private", &[("authorization", b"token good2")])
        .await;
    assert_eq!((trusted.status, trusted.outcome()), (200, "HIT"));
}

/// A mesh member that hands out whatever it was given, labelled as the
/// requester's own partition.
struct ForgingPeer {
    copy: PeerCopy,
}

impl PeerSource for ForgingPeer {
    fn lookup<'a>(&'a self, _: &'a ResourceId, _: &'a Partition, _: Duration) -> PeerFuture<'a> {
        Box::pin(std::future::ready(Some(self.copy.clone())))
    }
    fn announce_version(
        &self,
        _: &ResourceId,
        _: &ghcache_core::ContentId,
        _: Option<&str>,
        _: u64,
    ) {
    }
    fn announce_invalidation(&self, _: &[String]) {}
}

async fn behind_a_forging_peer(trust: PeerTrust) -> (Reply, usize) {
    const REAL: &str = r#"{"real":true}"#;
    let up = origin(|seen: &Seen| {
        // GitHub's ETag scheme: a 304 only for the tag of the real body.
        let tag = ghcache_proxy::synthesize_etag(
            seen.header("accept")
                .map(|a| std::str::from_utf8(a).unwrap()),
            seen.header("authorization")
                .map(|a| std::str::from_utf8(a).unwrap()),
            None,
            REAL.as_bytes(),
        );
        let inm = seen
            .header("if-none-match")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if inm.is_some_and(|v| v.contains(&tag)) {
            return Response::builder()
                .status(304)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        let mut r = json(200, REAL);
        r.headers_mut()
            .insert("etag", format!("\"{tag}\"").parse().unwrap());
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("cache"), StoreConfig::default()).unwrap());
    let secret = PartitionSecret::generate();
    let forged = Bytes::from_static(br#"{"real":false,"forged":true}"#);
    let meta = EntryMeta {
        stored_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        ttl_ms: 60_000,
        etag: Some("\"whatever\"".into()),
        ..EntryMeta::for_body(&forged)
    };
    let copy = PeerCopy {
        partition: secret.partition_for(Some("token t")),
        meta,
        body: forged,
    };
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), up.base_url());
    config.peer_trust = trust;
    let proxy = Proxy::new(config, store, secret)
        .unwrap()
        .with_peers(Arc::new(ForgingPeer { copy }))
        .unwrap()
        .serve()
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!("{}/repos/o/r", proxy.base_url()))
        .header("authorization", "token t")
        .send()
        .await
        .unwrap();
    let reply = Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap(),
    };
    (reply, up.requests())
}

// Item 11: a member's copy labelled with our partition was served unchecked.
#[tokio::test]
async fn a_peer_copy_is_served_only_after_github_confirms_it() {
    let (reply, upstream) = behind_a_forging_peer(PeerTrust::Verify).await;
    assert_eq!(upstream, 1, "GitHub was asked");
    assert_eq!(reply.body, Bytes::from_static(br#"{"real":true}"#));
    assert_eq!(reply.outcome(), "MISS");
    // Opting in trades that check for latency, as documented.
    let (reply, upstream) = behind_a_forging_peer(PeerTrust::Members).await;
    assert_eq!((upstream, reply.outcome()), (0, "HIT"));
}

// Item 12: Link rewriting had no host boundary and reflected the client's Host.
#[tokio::test]
async fn links_are_rewritten_under_the_upstream_base_only_to_our_own_address() {
    let up = origin(|seen: &Seen| {
        let base = format!("http://{}", std::str::from_utf8(seen.header("host").unwrap()).unwrap());
        let mut r = echo(seen);
        let link = format!(
            "<{base}/repositories/1/pulls?page=2>; rel=\"next\", <{base}.evil.example/x>; rel=\"last\""
        );
        r.headers_mut().insert("link", link.parse().unwrap());
        r
    })
    .await;
    let f = front(&up.base_url(), |_| {}).await;
    for _ in 0..2 {
        // MISS, then HIT: both paths rewrite.
        let r = f
            .get(
                "/repos/o/r/pulls",
                &[("authorization", b"token t"), ("host", b"attacker.example")],
            )
            .await;
        let link = r.header("link").unwrap();
        assert!(
            link.contains(&format!(
                "<{}/repositories/1/pulls?page=2>",
                f.proxy.base_url()
            )),
            "{link}"
        );
        assert!(!link.contains("attacker.example"), "{link}");
        assert!(
            link.contains(&format!("<{}.evil.example/x>", up.base_url())),
            "{link}"
        );
    }
}

// Item 6: connections were unlimited; at the limit the oldest idle one goes.
#[tokio::test]
async fn at_the_connection_limit_the_oldest_idle_connection_is_shed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = origin(echo).await;
    let f = front(&up.base_url(), |c| c.max_connections = 4).await;
    // Accepted in the order they connect: the first is the oldest idle. Half
    // of them dribble an unfinished request head, as a slow client would.
    let mut idle = Vec::new();
    for i in 0..4 {
        let mut socket = tokio::net::TcpStream::connect(f.proxy.addr())
            .await
            .unwrap();
        if i % 2 == 0 {
            socket
                .write_all(b"GET /repos/o/r HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        idle.push(socket);
    }
    // A fifth client is served...
    let fresh = reqwest::Client::new();
    let r = fresh
        .get(format!("{}/_ghcache/health", f.proxy.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...and the first idle connection was closed to make room.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut buf))
        .await
        .expect("the oldest idle connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)));
    let stats = f.stats().await;
    assert!(stats["connections"]["shed"].as_u64().unwrap() >= 1);
}
