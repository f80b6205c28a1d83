//! Authentication, visibility, primary and secondary rate limits, GraphQL
//! points, installation tokens.
#![allow(clippy::unwrap_used)]

mod common;
use std::time::Duration;

use common::*;
use ghcache_fakehub::{FakeHub, FakeHubConfig, LatencyProfile, RateLimits, TokenKind};
use serde_json::json;

#[tokio::test]
async fn bad_credentials_is_401() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let url = format!("{}/repos/{}", hub.base_url(), hub.world().public_repo());
    let r = get(&c, &url, Some("ghp_notarealtoken000000000000000000000")).await;
    assert_eq!(r.status, 401);
    let j = r.json();
    assert_eq!(j["message"], "Bad credentials");
    assert_eq!(j["documentation_url"], "https://docs.github.com/rest");
    let r = get_h(&c, &url, None, &[("authorization", "Basic Zm9vOmJhcg==")]).await;
    assert_eq!(r.status, 401);
    // Bearer works like token
    let r = get_h(
        &c,
        &url,
        None,
        &[(
            "authorization",
            &format!("Bearer {}", hub.world().pat("alice")),
        )],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(hub.stats().identity("invalid-token").requests, 2);
}

/// The headers api.github.com sends on every answer, on a 200, a 304, a
/// 401 and a 404 alike (their values are checked against recorded answers
/// in ghcache-proxy's `octokit_fixtures`).
#[tokio::test]
async fn every_answer_carries_githubs_server_security_and_cors_headers() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let url = format!("{}/repos/{}", hub.base_url(), w.public_repo());
    let ok = get(&c, &url, Some(w.pat("alice"))).await;
    assert_eq!(ok.status, 200);
    let etag = ok.h("etag");
    let not_modified = get_h(&c, &url, Some(w.pat("alice")), &[("if-none-match", &etag)]).await;
    let unauthorized = get(&c, &url, Some("ghp_notarealtoken000000000000000000000")).await;
    let missing = get(&c, &format!("{url}-nope"), Some(w.pat("alice"))).await;
    for (r, status) in [
        (&ok, 200),
        (&not_modified, 304),
        (&unauthorized, 401),
        (&missing, 404),
    ] {
        assert_eq!(r.status, status);
        for (name, value) in ghcache_fakehub::EVERY_ANSWER {
            assert_eq!(r.all(name), [value], "{name} on a {status}");
        }
    }
}

#[tokio::test]
async fn private_repos_are_404_to_outsiders_and_anonymous() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let p = w.private_repo();
    for path in [
        "",
        "/issues",
        "/pulls/1",
        "/actions/runs",
        "/contents/README.md",
    ] {
        let url = format!("{}/repos/{p}{path}", hub.base_url());
        let o = get(&c, &url, Some(w.outsider_pat())).await;
        assert_eq!(o.status, 404, "outsider {path}");
        assert_eq!(o.json()["message"], "Not Found");
        assert_eq!(get(&c, &url, None).await.status, 404, "anonymous {path}");
        // another repo's GITHUB_TOKEN cannot see it either
        assert_eq!(
            get(&c, &url, Some(w.github_token("judy/hello-world")))
                .await
                .status,
            404
        );
    }
    let url = format!("{}/repos/{p}", hub.base_url());
    assert_eq!(
        get(&c, &url, Some(w.pat("bob"))).await.status,
        200,
        "org member reads"
    );
    assert_eq!(
        get(&c, &url, Some(w.github_token(p))).await.status,
        200,
        "own GITHUB_TOKEN reads"
    );
    let pubr = format!("{}/repos/{}", hub.base_url(), w.public_repo());
    assert_eq!(get(&c, &pubr, None).await.status, 200);
    assert_eq!(get(&c, &pubr, Some(w.outsider_pat())).await.status, 200);
}

#[tokio::test]
async fn tokens_look_like_githubs_and_are_deterministic() {
    let a = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let b = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let d = FakeHub::start(FakeHubConfig::with_seed(7)).await.unwrap();
    assert_eq!(a.world().pat("alice"), b.world().pat("alice"));
    assert_ne!(a.world().pat("alice"), d.world().pat("alice"));
    for t in a.world().tokens() {
        let prefix = match t.kind {
            TokenKind::Pat => "ghp_",
            _ => "ghs_",
        };
        assert!(
            t.token.starts_with(prefix) && t.token.len() == 40,
            "{}",
            t.identity
        );
    }
    assert_eq!(
        a.world().repo("acme/widgets").unwrap().id,
        b.world().repo("acme/widgets").unwrap().id
    );
}

#[tokio::test]
async fn user_endpoint_per_principal() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let url = format!("{}/user", hub.base_url());
    let u = get(&c, &url, Some(w.pat("alice"))).await;
    assert_eq!(u.status, 200);
    assert_eq!(u.json()["login"], "alice");
    assert!(
        u.json()["url"]
            .as_str()
            .unwrap()
            .starts_with(&hub.base_url())
    );
    assert_eq!(get(&c, &url, None).await.status, 401);
    let g = get(&c, &url, Some(w.github_token(w.private_repo()))).await;
    assert_eq!(g.status, 403);
    assert_eq!(
        g.json()["message"],
        "Resource not accessible by integration"
    );
    let repos = get(
        &c,
        &format!("{}/user/repos?per_page=100", hub.base_url()),
        Some(w.pat("bob")),
    )
    .await;
    let names: Vec<String> = repos
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"acme/widgets".to_string()));
    assert!(names.contains(&"alice/secret-notes".to_string()));
    assert!(!names.contains(&"globex/api".to_string()));
    let org = get(&c, &format!("{}/orgs/acme/repos", hub.base_url()), None).await;
    assert!(
        org.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["private"] == false)
    );
}

/// Every answer carries `Date` from the wall clock (what doctor's clock-skew
/// check reads); the `date_skew_secs` knob shifts it, and only it.
#[tokio::test]
async fn date_is_the_wall_clock_unless_skewed_by_the_knob() {
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let date_of = |p: &str| {
        httpdate::parse_http_date(p)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let c = client();
    for skew in [0i64, 600] {
        let hub = FakeHub::start(FakeHubConfig {
            date_skew_secs: skew,
            ..FakeHubConfig::default()
        })
        .await
        .unwrap();
        let before = wall();
        let rl = get(&c, &format!("{}/rate_limit", hub.base_url()), None).await;
        let after = wall();
        let date = date_of(&rl.h("date"));
        assert!(
            (before + skew - 1..=after + skew + 1).contains(&date),
            "skew {skew}: {date} not within [{before}, {after}] + skew"
        );
        // The virtual clock (resets, expiry) is not moved by the knob.
        assert!((before..=after + 1).contains(&hub.now()));
    }
}

#[tokio::test]
async fn rate_limit_headers_and_free_rate_limit_endpoint() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let url = format!("{}/repos/{}", hub.base_url(), w.private_repo());
    let p = get(&c, &url, Some(w.pat("alice"))).await;
    assert_eq!(p.num("x-ratelimit-limit"), 5000);
    assert_eq!(p.num("x-ratelimit-used"), 1);
    assert_eq!(p.num("x-ratelimit-remaining"), 4999);
    assert_eq!(p.h("x-ratelimit-resource"), "core");
    assert!(p.num("x-ratelimit-reset") >= hub.now() + 3590);
    assert!(!p.h("x-github-request-id").is_empty());
    assert_eq!(p.h("x-github-api-version-selected"), "2022-11-28");
    let g = get(&c, &url, Some(w.github_token(w.private_repo()))).await;
    assert_eq!(g.num("x-ratelimit-limit"), 1000);
    // both GITHUB_TOKENs of a repository share its bucket
    let g2 = get(&c, &url, Some(w.github_token_read_only(w.private_repo()))).await;
    assert_eq!(g2.num("x-ratelimit-used"), 2);
    let anon = get(
        &c,
        &format!("{}/repos/{}", hub.base_url(), w.public_repo()),
        None,
    )
    .await;
    assert_eq!(anon.num("x-ratelimit-limit"), 60);

    let rl_url = format!("{}/rate_limit", hub.base_url());
    let rl = get(&c, &rl_url, Some(w.pat("alice"))).await;
    let rl2 = get(&c, &rl_url, Some(w.pat("alice"))).await;
    let j = rl2.json();
    assert_eq!(j["resources"]["core"]["used"], 1, "GET /rate_limit is free");
    assert_eq!(j["rate"]["remaining"], 4999);
    for k in ["core", "search", "graphql", "code_scanning_upload"] {
        assert!(j["resources"][k]["limit"].is_u64(), "{k}");
    }
    assert_eq!(rl.num("x-ratelimit-used"), 1);
    assert_eq!(hub.stats().identity("user:alice").units_consumed, 1);
}

#[tokio::test]
async fn exhaustion_and_reset_on_the_virtual_clock() {
    let cfg = FakeHubConfig {
        limits: RateLimits {
            pat: 3,
            anonymous: 2,
            ..RateLimits::default()
        },
        ..FakeHubConfig::default()
    };
    let hub = FakeHub::start(cfg).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let url = format!("{}/repos/{}/issues", hub.base_url(), w.private_repo());
    for i in 0..3 {
        let r = get(&c, &url, Some(t)).await;
        assert_eq!(r.status, 200, "request {i}");
    }
    let r = get(&c, &url, Some(t)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.num("x-ratelimit-remaining"), 0);
    let alice_id = w.accounts().iter().find(|a| a.login == "alice").unwrap().id;
    assert_eq!(
        r.json()["message"],
        format!("API rate limit exceeded for user ID {alice_id}.")
    );
    let reset = r.num("x-ratelimit-reset");
    // other users are unaffected
    assert_eq!(get(&c, &url, Some(w.pat("bob"))).await.status, 200);
    // /rate_limit still answers
    assert_eq!(
        get(&c, &format!("{}/rate_limit", hub.base_url()), Some(t))
            .await
            .status,
        200
    );
    hub.advance_clock(Duration::from_secs(3601));
    let r = get(&c, &url, Some(t)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.num("x-ratelimit-remaining"), 2);
    assert!(r.num("x-ratelimit-reset") > reset);
    assert_eq!(hub.stats().identity("user:alice").rate_limited, 1);

    let purl = format!("{}/repos/{}", hub.base_url(), w.public_repo());
    get(&c, &purl, None).await;
    get(&c, &purl, None).await;
    let a = get(&c, &purl, None).await;
    assert_eq!(a.status, 403);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded for 127.0.0.1.")
    );
}

#[tokio::test]
async fn secondary_limit_refuses_excess_concurrency() {
    let cfg = FakeHubConfig {
        secondary_concurrency_limit: 3,
        latency: LatencyProfile::uniform(Duration::from_millis(800), Duration::ZERO),
        ..FakeHubConfig::default()
    };
    let hub = FakeHub::start(cfg).await.unwrap();
    let c = client();
    let t = hub.world().pat("alice").to_string();
    let url = format!("{}/repos/{}", hub.base_url(), hub.world().private_repo());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (c, url, t) = (c.clone(), url.clone(), t.clone());
        set.spawn(async move { get(&c, &url, Some(&t)).await });
    }
    let mut ok = 0;
    let mut refused = 0;
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        match r.status {
            200 => ok += 1,
            403 => {
                refused += 1;
                assert!(
                    r.json()["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("You have exceeded a secondary rate limit")
                );
                assert_eq!(r.h("retry-after"), "60");
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok={ok} refused={refused}");
    let s = hub.stats().identity("user:alice");
    assert_eq!(s.secondary_limited, refused);
    assert_eq!(s.units_consumed, ok, "refusals cost no primary units");
    // another identity is not affected by alice's concurrency
    let other = get(&c, &url, Some(hub.world().pat("bob"))).await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn graphql_points_and_errors() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let url = format!("{}/graphql", hub.base_url());
    let r = post(
        &c,
        &url,
        Some(t),
        &json!({"query": "query { viewer { login } rateLimit { cost remaining used } }"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["data"]["viewer"]["login"], "alice");
    assert_eq!(j["data"]["rateLimit"]["cost"], 1);
    assert_eq!(j["data"]["rateLimit"]["used"], 1);
    assert_eq!(r.h("x-ratelimit-resource"), "graphql");
    assert_eq!(r.num("x-ratelimit-used"), 1);
    assert_eq!(r.h("etag"), "", "GraphQL has no ETag");
    let q = json!({"query": "query($o: String!, $n: String!) { repository(owner: $o, name: $n) { nameWithOwner isPrivate } }",
                   "variables": {"o": "acme", "n": "widgets"}});
    let r = post(&c, &url, Some(t), &q).await;
    assert_eq!(r.json()["data"]["repository"]["isPrivate"], true);
    let r = post(&c, &url, Some(w.outsider_pat()), &q).await;
    assert_eq!(r.json()["errors"][0]["type"], "NOT_FOUND");
    let bad = post(&c, &url, Some(t), &json!({"query": "{ nosuchfield }"})).await;
    assert_eq!(bad.status, 200);
    assert!(
        bad.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nosuchfield")
    );
    let rl = get(&c, &format!("{}/rate_limit", hub.base_url()), Some(t))
        .await
        .json();
    assert_eq!(
        rl["resources"]["graphql"]["used"], 2,
        "two executed queries, invalid one free"
    );
    assert_eq!(
        rl["resources"]["core"]["used"], 0,
        "GraphQL does not touch core"
    );
    let anon = post(&c, &url, None, &json!({"query": "{ viewer { login } }"})).await;
    assert_eq!(anon.status, 401);
    let garbage = send(
        &c,
        reqwest::Method::POST,
        &url,
        Some(t),
        &[],
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["message"], "Problems parsing JSON");
}

#[tokio::test]
async fn installation_token_mint_use_and_expiry() {
    let cfg = FakeHubConfig {
        token_ttl: Duration::from_secs(600),
        ..FakeHubConfig::default()
    };
    let hub = FakeHub::start(cfg).await.unwrap();
    let c = client();
    let w = hub.world();
    let inst = w.installation_id("acme").unwrap();
    let url = format!("{}/app/installations/{inst}/access_tokens", hub.base_url());
    let jwt = w.app_jwt().to_string();
    let r = send(
        &c,
        reqwest::Method::POST,
        &url,
        None,
        &[("authorization", &format!("Bearer {jwt}"))],
        None,
    )
    .await;
    assert_eq!(r.status, 201);
    let j = r.json();
    let token = j["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_"));
    assert_eq!(j["repository_selection"], "all");
    assert_eq!(j["permissions"]["issues"], "write");
    assert!(j["expires_at"].as_str().unwrap().ends_with('Z'));
    let repo = format!("{}/repos/{}", hub.base_url(), w.private_repo());
    let ok = get(&c, &repo, Some(&token)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.num("x-ratelimit-limit"), 5000);
    assert_eq!(
        hub.stats()
            .identity(&format!("installation:{inst}"))
            .requests,
        1
    );
    // the installation cannot see another org's private repos
    assert_eq!(
        get(
            &c,
            &format!("{}/repos/globex/api", hub.base_url()),
            Some(&token)
        )
        .await
        .status,
        404
    );
    // a PAT cannot mint
    let bad = send(
        &c,
        reqwest::Method::POST,
        &url,
        Some(w.pat("alice")),
        &[],
        None,
    )
    .await;
    assert_eq!(bad.status, 401);
    // down-scoped
    let r = send(
        &c,
        reqwest::Method::POST,
        &url,
        None,
        &[
            ("authorization", &format!("Bearer {jwt}")),
            ("content-type", "application/json"),
        ],
        Some(br#"{"repositories":["gadgets"],"permissions":{"contents":"read"}}"#.to_vec()),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["repository_selection"], "selected");
    let narrow = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        get(&c, &repo, Some(&narrow)).await.status,
        404,
        "widgets not selected"
    );
    hub.advance_clock(Duration::from_secs(601));
    let expired = get(&c, &repo, Some(&token)).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json()["message"], "Bad credentials");
    // the pre-minted well-known installation tokens expire too
    let known = w
        .tokens()
        .iter()
        .find(|t| t.kind == TokenKind::Installation)
        .unwrap();
    assert_eq!(get(&c, &repo, Some(&known.token)).await.status, 401);
}
