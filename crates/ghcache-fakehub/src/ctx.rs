//! One request as handlers see it. A leaf beside `hub` and `reply`.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::hub::Who;
use crate::reply::{DOCS, Reply};

/// One request as handlers see it.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub raw_query: Option<&'a str>,
    pub who: &'a Who,
    pub body: &'a [u8],
}

impl Ctx<'_> {
    /// The first value of query parameter `k`.
    pub(crate) fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    /// Body-cache key: path, raw query and a variant (viewer role, label…).
    pub(crate) fn key(&self, variant: &str) -> String {
        format!("{}?{}|{variant}", self.path, self.raw_query.unwrap_or(""))
    }
    /// A write's JSON body; an empty body is `{}`, as GitHub treats it.
    pub(crate) fn json_body(&self) -> Result<Value, Reply> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(self.body)
            .map_err(|_| Reply::error(StatusCode::BAD_REQUEST, "Problems parsing JSON", DOCS))
    }
}

pub(crate) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}
