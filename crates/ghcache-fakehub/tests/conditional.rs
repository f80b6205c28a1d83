//! ETags per token, conditional requests, cache headers.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ghcache_fakehub::{FakeHub, FakeHubConfig, etag_for};

fn unquote(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"')
}

#[tokio::test]
async fn etags_differ_per_token_and_follow_the_formula() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let url = format!(
        "{}/repos/{}/actions/runs?per_page=5",
        hub.base_url(),
        w.private_repo()
    );
    let (ta, tb) = (w.pat("alice"), w.pat("bob"));
    let a = get(&c, &url, Some(ta)).await;
    let b = get(&c, &url, Some(tb)).await;
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 200);
    assert_eq!(a.body, b.body, "same resource, same body for both tokens");
    let (ea, eb) = (a.h("etag"), b.h("etag"));
    assert!(
        ea.starts_with("W/\""),
        "list endpoints use weak etags: {ea}"
    );
    assert_ne!(ea, eb, "ETags differ per token");
    let expect_a = etag_for(Some(ACCEPT), Some(&format!("token {ta}")), None, &a.body);
    let expect_b = etag_for(Some(ACCEPT), Some(&format!("token {tb}")), None, &b.body);
    assert_eq!(unquote(&ea), expect_a);
    assert_eq!(unquote(&eb), expect_b);
    // cookie participates too
    let ck = get_h(&c, &url, Some(ta), &[("cookie", "k=v")]).await;
    assert_eq!(
        unquote(&ck.h("etag")),
        etag_for(
            Some(ACCEPT),
            Some(&format!("token {ta}")),
            Some("k=v"),
            &ck.body
        )
    );
    // anonymous on a public repo: Accept and body only
    let purl = format!("{}/repos/{}", hub.base_url(), w.public_repo());
    let an = get(&c, &purl, None).await;
    assert_eq!(
        unquote(&an.h("etag")),
        etag_for(Some(ACCEPT), None, None, &an.body)
    );
}

#[tokio::test]
async fn authenticated_304_is_free_and_anonymous_304_is_not() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("carol");
    let url = format!("{}/repos/{}/pulls", hub.base_url(), w.private_repo());
    let first = get(&c, &url, Some(t)).await;
    assert_eq!(first.status, 200);
    let rem1 = first.num("x-ratelimit-remaining");
    let again = get_h(&c, &url, Some(t), &[("if-none-match", &first.h("etag"))]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(
        again.num("x-ratelimit-remaining"),
        rem1,
        "a 304 with a valid token costs nothing"
    );
    assert_eq!(again.h("etag"), first.h("etag"));
    assert_eq!(again.h("cache-control"), "private, max-age=60, s-maxage=60");
    let third = get(&c, &url, Some(t)).await;
    assert_eq!(
        third.num("x-ratelimit-remaining"),
        rem1 - 1,
        "a 200 costs one"
    );
    let s = hub.stats().identity("user:carol");
    assert_eq!(
        (s.requests, s.status_200, s.status_304, s.units_consumed),
        (3, 2, 1, 2)
    );

    // anonymous
    let purl = format!("{}/repos/{}", hub.base_url(), w.public_repo());
    let a1 = get(&c, &purl, None).await;
    assert_eq!(a1.num("x-ratelimit-limit"), 60);
    let a2 = get_h(&c, &purl, None, &[("if-none-match", &a1.h("etag"))]).await;
    assert_eq!(a2.status, 304);
    assert_eq!(
        a2.num("x-ratelimit-remaining"),
        a1.num("x-ratelimit-remaining") - 1,
        "anonymous 304 costs a unit"
    );
}

#[tokio::test]
async fn cross_token_revalidation_with_a_synthesised_etag() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let url = format!(
        "{}/repos/{}/issues?state=all",
        hub.base_url(),
        w.private_repo()
    );
    let a = get(&c, &url, Some(w.pat("alice"))).await;
    let tb = w.pat("dave");
    let synth = etag_for(Some(ACCEPT), Some(&format!("token {tb}")), None, &a.body);
    let b = get_h(
        &c,
        &url,
        Some(tb),
        &[("if-none-match", &format!("W/\"{synth}\""))],
    )
    .await;
    assert_eq!(
        b.status, 304,
        "B's synthesised tag over A's body proves B gets that body"
    );
    // an outsider cannot revalidate a private body: 404, not 304
    let to = w.outsider_pat();
    let so = etag_for(Some(ACCEPT), Some(&format!("token {to}")), None, &a.body);
    let o = get_h(
        &c,
        &url,
        Some(to),
        &[("if-none-match", &format!("\"{so}\""))],
    )
    .await;
    assert_eq!(o.status, 404);
    // A's own tag sent by B does not match
    let wrong = get_h(&c, &url, Some(tb), &[("if-none-match", &a.h("etag"))]).await;
    assert_eq!(wrong.status, 200);
}

#[tokio::test]
async fn if_none_match_lists_star_and_weak_comparison() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let url = format!("{}/repos/{}", hub.base_url(), w.private_repo());
    let r = get(&c, &url, Some(t)).await;
    let tag = r.h("etag");
    let opaque = unquote(&tag).to_string();
    let list = format!("\"nope\", W/\"also-nope\", \"{opaque}\"");
    assert_eq!(
        get_h(&c, &url, Some(t), &[("if-none-match", &list)])
            .await
            .status,
        304
    );
    assert_eq!(
        get_h(&c, &url, Some(t), &[("if-none-match", "*")])
            .await
            .status,
        304
    );
    assert_eq!(
        get_h(&c, &url, Some(t), &[("if-none-match", "\"nope\"")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn if_modified_since_and_last_modified() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let url = format!("{}/repos/{}/issues/1", hub.base_url(), w.private_repo());
    let r = get(&c, &url, Some(t)).await;
    let lm = r.h("last-modified");
    assert!(
        lm.ends_with("GMT"),
        "single resources carry Last-Modified: {lm:?}"
    );
    let r2 = get_h(&c, &url, Some(t), &[("if-modified-since", &lm)]).await;
    assert_eq!(r2.status, 304);
    assert_eq!(
        r2.num("x-ratelimit-remaining"),
        r.num("x-ratelimit-remaining")
    );
    assert!(hub.bump(&format!("/repos/{}/issues/1", w.private_repo())));
    let r3 = get_h(&c, &url, Some(t), &[("if-modified-since", &lm)]).await;
    assert_eq!(
        r3.status, 200,
        "bumped resource is newer than If-Modified-Since"
    );
    assert_ne!(r3.h("etag"), r.h("etag"));
    // lists carry no Last-Modified
    let l = get(
        &c,
        &format!("{}/repos/{}/issues", hub.base_url(), w.private_repo()),
        Some(t),
    )
    .await;
    assert_eq!(l.h("last-modified"), "");
}

#[tokio::test]
async fn cache_control_and_vary() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let url = format!("{}/repos/{}", hub.base_url(), w.public_repo());
    let a = get(&c, &url, Some(w.pat("bob"))).await;
    assert_eq!(a.h("cache-control"), "private, max-age=60, s-maxage=60");
    assert!(
        a.all("vary")
            .iter()
            .any(|v| v == "Accept, Authorization, Cookie, X-GitHub-OTP")
    );
    assert_eq!(a.h("content-type"), "application/json; charset=utf-8");
    let n = get(&c, &url, None).await;
    assert_eq!(n.h("cache-control"), "public, max-age=60, s-maxage=60");
    assert!(!n.all("vary").iter().any(|v| v.contains("Authorization")));
    // permissions are per viewer, absent for anonymous
    assert_eq!(a.json()["permissions"]["push"], true);
    assert!(n.json().get("permissions").is_none());
}

#[tokio::test]
async fn strong_etags_on_contents_and_commits() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let repo = w.private_repo();
    let f = get(
        &c,
        &format!("{}/repos/{repo}/contents/README.md", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(f.status, 200);
    assert!(f.h("etag").starts_with('"'), "contents: strong etag");
    assert_eq!(f.json()["encoding"], "base64");
    let d = get(
        &c,
        &format!("{}/repos/{repo}/contents/.github", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(d.json()[0]["type"], "dir");
    let sha = w.repo(repo).unwrap().head_sha.clone();
    let cm = get(
        &c,
        &format!("{}/repos/{repo}/commits/{sha}", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(cm.status, 200);
    assert!(cm.h("etag").starts_with('"'));
    assert_eq!(cm.json()["sha"], sha.as_str());
    let by_branch = get(
        &c,
        &format!("{}/repos/{repo}/commits/main", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(by_branch.json()["sha"], sha.as_str());
    let bad = get(
        &c,
        &format!("{}/repos/{repo}/commits/deadbeefdead", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(bad.status, 422);
}
