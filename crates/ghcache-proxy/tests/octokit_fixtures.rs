//! Recorded real GitHub exchanges (`@octokit/fixtures`, pinned in
//! `tests/npm`) replayed by a small origin behind the proxy: for every GET,
//! the `MISS` and the `HIT` reproduce GitHub's status, body and end-to-end
//! headers, with `Link`/`Location` under the upstream pointed at the proxy
//! (and only those), and errors are never served from the store.
//!
//! The origin answers as GitHub does today, not as it did when recorded:
//! `Date` is the current time (the fixtures normalise it to 2017, which
//! would make every entry stale at once) and `https://api.github.com` in
//! header values is the origin's own base.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::Value;

const SCENARIOS: [&str; 10] = [
    "get-repository",
    "paginate-issues",
    "get-content",
    "errors",
    "rename-repository",
    "get-archive",
    "get-root",
    "get-organization",
    "search-issues",
    "branch-protection",
];

/// Added or changed per answer, not part of the recorded answer: the
/// caller's quota (the proxy keeps its own), and what hyper recomputes.
fn per_answer(name: &str) -> bool {
    name.starts_with("x-ratelimit-")
        || matches!(name, "content-length" | "connection" | "age" | "x-ghcache")
}

struct Exchange {
    scenario: &'static str,
    path: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    request_headers: Vec<(String, String)>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn load(dir: &std::path::Path) -> Vec<Exchange> {
    let mut exchanges = Vec::new();
    for scenario in SCENARIOS {
        let file = dir.join(format!(
            "node_modules/@octokit/fixtures/scenarios/api.github.com/{scenario}/normalized-fixture.json"
        ));
        let recorded: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for x in recorded.iter().filter(|x| x["method"] == "get") {
            let body = match &x["response"] {
                Value::String(s) if x["responseIsBinary"] == true => {
                    Bytes::from(hex::decode(s).unwrap())
                }
                Value::String(s) => Bytes::from(s.clone()),
                other => Bytes::from(serde_json::to_vec(other).unwrap()),
            };
            let pairs = |v: &Value| -> Vec<(String, String)> {
                v.as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.to_lowercase(), text(v))).collect())
                    .unwrap_or_default()
            };
            exchanges.push(Exchange {
                scenario,
                path: x["path"].as_str().unwrap().to_owned(),
                status: x["status"].as_u64().unwrap() as u16,
                headers: pairs(&x["headers"])
                    .into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "content-length" | "connection"))
                    .collect(),
                body,
                request_headers: pairs(&x["reqheaders"])
                    .into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "host" | "accept-encoding"))
                    .collect(),
            });
        }
    }
    exchanges
}

/// What the origin sends for `exchange`: the recording, dated now, its
/// GitHub URLs pointing at the origin.
fn answer(exchange: &Exchange, base: &str, if_none_match: Option<&[u8]>) -> Response<Full<Bytes>> {
    let etag = exchange.headers.iter().find(|(k, _)| k == "etag");
    let not_modified =
        matches!((etag, if_none_match), (Some((_, tag)), Some(inm)) if inm == tag.as_bytes());
    let mut builder = Response::builder().status(if not_modified { 304 } else { exchange.status });
    for (name, value) in &exchange.headers {
        let value = match name.as_str() {
            "date" => httpdate::fmt_http_date(std::time::SystemTime::now()),
            _ => value.replace("https://api.github.com", base),
        };
        builder = builder.header(name.as_str(), value);
    }
    let body = if not_modified {
        Bytes::new()
    } else {
        exchange.body.clone()
    };
    builder.body(Full::new(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_github_exchanges_replay_identically_on_miss_and_hit() {
    let Some(dir) = common::npm::material("@octokit/fixtures") else {
        return;
    };
    let exchanges = Arc::new(load(&dir));
    assert!(exchanges.len() >= 12, "fixtures not found");
    let base: Arc<OnceLock<String>> = Arc::default();
    let (served, origin_base) = (exchanges.clone(), base.clone());
    let origin = common::origin::origin(move |seen| {
        let base = origin_base.get().unwrap();
        match served.iter().find(|x| x.path == seen.path_and_query) {
            Some(x) => answer(x, base, seen.header("if-none-match")),
            None => Response::builder()
                .status(599)
                .body(Full::default())
                .unwrap(),
        }
    })
    .await;
    base.set(origin.base_url()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (proxy, _store) = common::start_proxy(&origin.base_url(), state.path(), |_| {}).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    for x in exchanges.iter() {
        let what = format!("{} GET {}", x.scenario, x.path);
        let mut replies = Vec::new();
        for _ in 0..2 {
            let before = origin.requests();
            let mut request = client.get(format!("{}{}", proxy.base_url(), x.path));
            for (name, value) in &x.request_headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let response = request.send().await.unwrap();
            let asked = origin.requests() > before;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap();
            replies.push((status, headers, body, asked));
        }
        let expected = answer(x, &origin.base_url(), None);
        for (n, (status, headers, body, _)) in replies.iter().enumerate() {
            let outcome = headers["x-ghcache"].to_str().unwrap();
            assert_eq!(*status, x.status, "{what} reply {n} ({outcome})");
            assert_eq!(body, &x.body, "{what} reply {n} ({outcome}): body");
            for (name, value) in expected.headers() {
                if per_answer(name.as_str()) || name == "date" {
                    continue;
                }
                let value = value
                    .to_str()
                    .unwrap()
                    .replace(&origin.base_url(), &proxy.base_url());
                let got: Vec<&str> = headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect();
                assert_eq!(
                    got,
                    vec![value.as_str()],
                    "{what} reply {n} ({outcome}): {name}"
                );
            }
            for name in ["link", "location"] {
                if let Some(v) = headers.get(name) {
                    let v = v.to_str().unwrap();
                    assert!(
                        !v.contains(&origin.base_url()),
                        "{what}: {name} still points past the proxy: {v}"
                    );
                }
            }
            assert!(headers.contains_key("date"), "{what} reply {n}: no Date");
        }
        let (first, second) = (&replies[0], &replies[1]);
        assert_eq!(first.1["x-ghcache"], "MISS", "{what}");
        // Reusable status, and fresh: GitHub's max-age, or the default TTL
        // when GitHub gave no freshness but a validator.
        let has = |name: &str| x.headers.iter().any(|(k, _)| k == name);
        let explicit = x.headers.iter().find(|(k, _)| k == "cache-control");
        let fresh = [200, 203, 301, 308].contains(&x.status)
            && match explicit {
                Some((_, cc)) => cc.contains("max-age=60"),
                None => !has("expires") && (has("etag") || has("last-modified")),
            };
        if fresh {
            assert_eq!(second.1["x-ghcache"], "HIT", "{what}");
            assert!(!second.3, "{what}: a HIT asked the origin");
            assert_eq!(
                second.1["date"], first.1["date"],
                "{what}: Date kept as stored"
            );
            assert!(second.1.contains_key("age"), "{what}: a HIT says its Age");
        } else {
            assert_ne!(
                second.1["x-ghcache"], "HIT",
                "{what}: served from the store"
            );
            assert!(second.3, "{what}: the origin was not asked again");
        }
    }
    // Errors are never stored: the 404 reached the origin both times.
    assert!(exchanges.iter().any(|x| x.status == 404));
}

/// The headers the fake GitHub adds to every answer are what api.github.com
/// sent on every answer of the recorded raw exchanges, with the same value.
#[test]
fn the_fakes_every_answer_headers_are_what_github_sent() {
    let Some(dir) = common::npm::material("@octokit/fixtures") else {
        return;
    };
    let mut answers = 0;
    for scenario in SCENARIOS {
        let file = dir.join(format!(
            "node_modules/@octokit/fixtures/scenarios/api.github.com/{scenario}/raw-fixture.json"
        ));
        let exchanges: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        // Not the archive's redirect target (codeload.github.com).
        for exchange in exchanges
            .iter()
            .filter(|x| text(&x["scope"]).contains("://api.github.com"))
        {
            answers += 1;
            let raw = exchange["rawHeaders"].as_array().unwrap();
            for (name, value) in ghcache_fakehub::EVERY_ANSWER {
                let sent: Vec<String> = raw
                    .chunks(2)
                    .filter(|pair| text(&pair[0]).eq_ignore_ascii_case(name))
                    .map(|pair| text(&pair[1]))
                    .collect();
                assert_eq!(sent, [value], "{name} in {scenario} {}", exchange["path"]);
            }
        }
    }
    assert!(answers > 40, "only {answers} recorded answers read");
}
