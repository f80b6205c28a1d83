//! A `HIT` is the `MISS` it replays, and only reusable answers are stored:
//! GitHub-shaped answers from a scriptable origin, over real sockets.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::origin::origin;
use http::Response;
use http_body_util::Full;

async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &[u8])]) -> reqwest::Response {
    let mut request = client.get(url).header("authorization", "token t");
    for (name, value) in headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    request.send().await.unwrap()
}

/// The proxy in front of an origin, and a client that shows answers as
/// they are (no redirects followed, nothing decompressed).
struct Front {
    proxy: ghcache_proxy::RunningProxy,
    client: reqwest::Client,
    _state: tempfile::TempDir,
}

async fn in_front_of(up: &common::origin::Origin) -> Front {
    let state = tempfile::tempdir().unwrap();
    let (proxy, _store) = common::start_proxy(&up.base_url(), state.path(), |_| {}).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Front {
        proxy,
        client,
        _state: state,
    }
}

#[tokio::test]
async fn a_hit_replays_every_end_to_end_header_and_the_gzip_bytes() {
    let gzipped: &'static [u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not really gzip";
    let up = origin(move |_| {
        Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .header("content-encoding", "gzip")
            .header("cache-control", "private, max-age=60, s-maxage=60")
            .header("vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
            .header("vary", "Accept-Encoding, Accept, X-Requested-With")
            .header("etag", "\"abc\"")
            .header("server", "github.com")
            .header("strict-transport-security", "max-age=31536000")
            .header("x-frame-options", "deny")
            .header("x-github-request-id", "0000:1111")
            .header("x-ratelimit-remaining", "4999")
            .header("connection", "close, x-hop")
            .header("x-hop", "dropped")
            .header(
                "x-label",
                http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .body(Full::new(Bytes::from_static(gzipped)))
            .unwrap()
    })
    .await;
    let Front { proxy, client, .. } = in_front_of(&up).await;
    let url = format!("{}/repos/o/r", proxy.base_url());
    let miss = get(&client, &url, &[]).await;
    let hit = get(&client, &url, &[]).await;
    assert_eq!(miss.headers()["x-ghcache"], "MISS");
    assert_eq!(hit.headers()["x-ghcache"], "HIT");
    assert_eq!(up.requests(), 1);
    for name in [
        "content-type",
        "content-encoding",
        "cache-control",
        "vary",
        "etag",
        "server",
        "strict-transport-security",
        "x-frame-options",
        "x-github-request-id",
        "x-label",
        "date",
    ] {
        let values = |r: &reqwest::Response| -> Vec<Vec<u8>> {
            r.headers()
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect()
        };
        assert!(!values(&miss).is_empty(), "{name} missing on the MISS");
        assert_eq!(values(&hit), values(&miss), "{name}");
    }
    assert_eq!(hit.headers().get_all("vary").iter().count(), 2);
    assert_eq!(hit.headers()["x-label"].as_bytes(), b"caf\xe9");
    assert!(
        !hit.headers().contains_key("x-hop"),
        "hop-by-hop named in Connection"
    );
    assert!(hit.headers().contains_key("age"));
    assert_eq!(hit.bytes().await.unwrap(), Bytes::from_static(gzipped));
}

#[tokio::test]
async fn upstream_age_counts_toward_freshness() {
    let up = origin(|_| {
        Response::builder()
            .header("cache-control", "max-age=3600")
            .header("age", "7200")
            .header("etag", "\"v\"")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    })
    .await;
    let Front { proxy, client, .. } = in_front_of(&up).await;
    let url = format!("{}/repos/o/r", proxy.base_url());
    get(&client, &url, &[]).await;
    let again = get(&client, &url, &[]).await;
    assert_ne!(
        again.headers()["x-ghcache"],
        "HIT",
        "older than its max-age"
    );
    assert_eq!(up.requests(), 2);
    assert_eq!(
        up.seen()[1].header("if-none-match"),
        Some(&b"\"v\""[..]),
        "revalidated with its ETag"
    );
}

#[tokio::test]
async fn only_reusable_answers_are_stored_and_no_cache_revalidates() {
    let up = origin(|seen| {
        let (status, cc) = match seen.path_and_query.as_str() {
            "/repos/o/r/stats/contributors" => (202, "private, max-age=60"),
            "/repos/o/r/no-cache" => (200, "no-cache"),
            "/repos/o/r/vary-star" => (200, "max-age=60"),
            _ => (404, "max-age=60"),
        };
        let mut r = Response::builder()
            .status(status)
            .header("cache-control", cc)
            .header("etag", "\"same\"");
        if seen.path_and_query.ends_with("vary-star") {
            r = r.header("vary", "*");
        }
        if seen.header("if-none-match") == Some(&b"\"same\""[..]) {
            return r.status(304).body(Full::default()).unwrap();
        }
        r.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
    })
    .await;
    let Front { proxy, client, .. } = in_front_of(&up).await;
    for path in [
        "/repos/o/r/stats/contributors",
        "/repos/o/r/vary-star",
        "/repos/o/r/missing",
    ] {
        let url = format!("{}{path}", proxy.base_url());
        let before = up.requests();
        get(&client, &url, &[]).await;
        let again = get(&client, &url, &[]).await;
        assert_eq!(
            again.headers()["x-ghcache"],
            "MISS",
            "{path} served from the store"
        );
        assert_eq!(up.requests(), before + 2, "{path}");
        assert!(
            up.seen().last().unwrap().header("if-none-match").is_none(),
            "{path}: nothing held"
        );
    }
    // no-cache: stored, but every use is revalidated (a 304 here).
    let url = format!("{}/repos/o/r/no-cache", proxy.base_url());
    assert_eq!(get(&client, &url, &[]).await.headers()["x-ghcache"], "MISS");
    let again = get(&client, &url, &[]).await;
    assert_eq!(again.headers()["x-ghcache"], "REVALIDATED");
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn last_modified_revalidates_and_if_modified_since_is_answered_from_the_store() {
    let modified = "Tue, 10 Oct 2017 16:00:00 GMT";
    let up = origin(move |seen| {
        let r = Response::builder()
            .header("cache-control", "max-age=0")
            .header("last-modified", modified);
        if seen.header("if-modified-since") == Some(modified.as_bytes()) {
            return r.status(304).body(Full::default()).unwrap();
        }
        r.body(Full::new(Bytes::from_static(b"{\"v\":1}"))).unwrap()
    })
    .await;
    let Front { proxy, client, .. } = in_front_of(&up).await;
    let url = format!("{}/repos/o/r", proxy.base_url());
    get(&client, &url, &[]).await;
    // Stale at once: revalidated upstream with its Last-Modified (no ETag).
    let again = get(&client, &url, &[]).await;
    assert_eq!(again.headers()["x-ghcache"], "REVALIDATED");
    assert_eq!(
        up.seen()[1].header("if-modified-since"),
        Some(modified.as_bytes())
    );
    // The client's own If-Modified-Since, answered against the held entry.
    let later = "Wed, 11 Oct 2017 16:00:00 GMT";
    let conditional = get(&client, &url, &[("if-modified-since", later.as_bytes())]).await;
    assert_eq!(conditional.status(), 304);
}

#[tokio::test]
async fn a_redirect_location_under_the_upstream_points_at_the_proxy() {
    let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let origin_base = base.clone();
    let up = origin(move |seen| {
        let target = if seen.path_and_query == "/repos/o/old" {
            format!("{}/repositories/1", origin_base.get().unwrap())
        } else {
            "https://codeload.github.com/o/r/tar.gz/main".to_owned()
        };
        Response::builder()
            .status(if seen.path_and_query == "/repos/o/old" {
                301
            } else {
                302
            })
            .header("location", target)
            .body(Full::default())
            .unwrap()
    })
    .await;
    base.set(up.base_url()).unwrap();
    let Front { proxy, client, .. } = in_front_of(&up).await;
    let moved = get(&client, &format!("{}/repos/o/old", proxy.base_url()), &[]).await;
    assert_eq!(moved.status(), 301);
    assert_eq!(
        moved.headers()["location"],
        format!("{}/repositories/1", proxy.base_url()).as_str()
    );
    let tarball = get(
        &client,
        &format!("{}/repos/o/r/tarball/main", proxy.base_url()),
        &[],
    )
    .await;
    assert_eq!(
        tarball.headers()["location"],
        "https://codeload.github.com/o/r/tar.gz/main",
        "not under the upstream: left alone"
    );
}
