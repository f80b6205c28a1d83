//! Helpers shared by the integration tests: plain reqwest over real sockets.
#![allow(clippy::unwrap_used, dead_code)]

use reqwest::header::HeaderMap;
use serde_json::Value;

pub const ACCEPT: &str = "application/vnd.github+json";

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn h(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
    pub fn num(&self, name: &str) -> i64 {
        self.h(name).parse().unwrap()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Resp {
    let mut rb = c.request(method, url).header("accept", ACCEPT);
    if let Some(t) = token {
        rb = rb.header("authorization", format!("token {t}"));
    }
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(c: &reqwest::Client, url: &str, token: Option<&str>) -> Resp {
    send(c, reqwest::Method::GET, url, token, &[], None).await
}

pub async fn get_h(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> Resp {
    send(c, reqwest::Method::GET, url, token, extra, None).await
}

pub async fn post(c: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> Resp {
    send(
        c,
        reqwest::Method::POST,
        url,
        token,
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

/// Parses a Link header into (rel, url) pairs.
pub fn links(h: &str) -> Vec<(String, String)> {
    h.split(',')
        .filter_map(|part| {
            let part = part.trim();
            let (u, rel) = part.split_once(';')?;
            let u = u.trim().trim_start_matches('<').trim_end_matches('>');
            let rel = rel.trim().strip_prefix("rel=\"")?.trim_end_matches('"');
            Some((rel.to_string(), u.to_string()))
        })
        .collect()
}

pub fn rel(h: &str, r: &str) -> Option<String> {
    links(h).into_iter().find(|(k, _)| k == r).map(|(_, u)| u)
}
