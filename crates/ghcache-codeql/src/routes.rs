//! The control routes under `/_ghcache/codeql/`, over a [`CodeqlService`]
//! (the daemon plugs this into the proxy's control seam).

use bytes::Bytes;
use ghcache_core::ContentId;

use crate::api::{DecisionReport, LookupRequest, SaveRequest};
use crate::service::{CodeqlService, ServiceError};

/// An answer: status, content type, body.
#[derive(Debug)]
pub struct RouteReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

fn json(status: u16, value: &impl serde::Serialize) -> RouteReply {
    RouteReply {
        status,
        content_type: "application/json",
        body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    }
}

fn error(status: u16, message: &str) -> RouteReply {
    json(status, &serde_json::json!({ "message": message }))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RouteReply> {
    serde_json::from_slice(body).map_err(|e| error(400, &format!("bad request body: {e}")))
}

impl CodeqlService {
    /// Answers `method route` (the path below `/_ghcache/codeql/`).
    pub async fn route(&self, method: &str, route: &str, body: &[u8]) -> RouteReply {
        match (method, route) {
            ("POST", "lookup") => match parse::<LookupRequest>(body) {
                Ok(request) => match self.lookup(&request).await {
                    Ok(response) => json(200, &response),
                    Err(e) => error(400, &e.to_string()),
                },
                Err(reply) => reply,
            },
            ("POST", "save") => match parse::<SaveRequest>(body) {
                Ok(request) => match self.save(&request) {
                    Ok(response) => json(200, &response),
                    Err(e @ ServiceError::BadRequest(_)) => error(400, &e.to_string()),
                    Err(e) => error(507, &e.to_string()),
                },
                Err(reply) => reply,
            },
            ("POST", "decision") => match parse::<DecisionReport>(body) {
                Ok(report) => {
                    self.record_decision(&report);
                    json(200, &serde_json::json!({}))
                }
                Err(reply) => reply,
            },
            ("GET", "stats") => json(200, &self.stats()),
            ("GET", route) if route.starts_with("bundle/") => {
                let Ok(cid) = route["bundle/".len()..].parse::<ContentId>() else {
                    return error(400, "not a content id");
                };
                match self.bundle(&cid).await {
                    Some(body) => RouteReply {
                        status: 200,
                        content_type: "application/octet-stream",
                        body,
                    },
                    None => error(404, "no member holds this SARIF bundle"),
                }
            }
            _ => error(404, "Not Found"),
        }
    }
}
