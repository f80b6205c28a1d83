//! What a handler answers, before the pipeline adds GitHub's headers, and
//! the error bodies GitHub sends. A leaf: nothing here knows the hub.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub(crate) const API_VERSION: &str = "2022-11-28";
pub(crate) const DOCS: &str = "https://docs.github.com/rest";

/// What a handler answers, before the pipeline adds headers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    pub etag: EtagKind,
    pub last_modified: Option<i64>,
    pub link: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    /// Units charged (REST: 1; GraphQL: query cost; 0 for free).
    pub cost: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EtagKind {
    None,
    Weak,
    Strong,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: Bytes) -> Self {
        Self {
            status,
            body,
            etag: EtagKind::None,
            last_modified: None,
            link: None,
            headers: Vec::new(),
            cost: 1,
        }
    }
    /// A cacheable 200 with a weak ETag.
    pub(crate) fn ok(body: Bytes) -> Self {
        Self {
            etag: EtagKind::Weak,
            ..Self::json(StatusCode::OK, body)
        }
    }
    pub(crate) fn strong(mut self) -> Self {
        self.etag = EtagKind::Strong;
        self
    }
    pub(crate) fn modified(mut self, t: i64) -> Self {
        self.last_modified = Some(t);
        self
    }
    pub(crate) fn link(mut self, l: Option<String>) -> Self {
        self.link = l;
        self
    }
    pub(crate) fn error(status: StatusCode, message: &str, doc: &str) -> Self {
        let body = json!({"message": message, "documentation_url": doc, "status": status.as_u16().to_string()});
        Self::json(status, Bytes::from(body.to_string()))
    }
    pub(crate) fn not_found() -> Self {
        Self::error(StatusCode::NOT_FOUND, "Not Found", DOCS)
    }
    pub(crate) fn requires_auth() -> Self {
        Self::error(StatusCode::UNAUTHORIZED, "Requires authentication", DOCS)
    }
    pub(crate) fn not_integration() -> Self {
        Self::error(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
            DOCS,
        )
    }
    /// GitHub's `422 Validation Failed` with one `errors` entry.
    pub(crate) fn validation(resource: &str, field: &str, code: &str) -> Self {
        let v = json!({
            "message": "Validation Failed",
            "errors": [{"resource": resource, "code": code, "field": field}],
            "documentation_url": DOCS,
            "status": "422"
        });
        Self::json(StatusCode::UNPROCESSABLE_ENTITY, json_bytes(&v))
    }
}

pub(crate) fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// The ETag GitHub would send for `body` to a request carrying these
/// headers: hex SHA-256 over the values of `Accept`, `Authorization` and
/// `Cookie` (those present, in that order, each followed by `:`) and then the
/// uncompressed body. No quotes, no `W/`.
pub fn etag_for(
    accept: Option<&str>,
    authorization: Option<&str>,
    cookie: Option<&str>,
    body: &[u8],
) -> String {
    let mut h = Sha256::new();
    for v in [accept, authorization, cookie].into_iter().flatten() {
        h.update(v.as_bytes());
        h.update(b":");
    }
    h.update(body);
    hex::encode(h.finalize())
}
