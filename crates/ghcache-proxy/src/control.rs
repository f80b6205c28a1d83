//! The seam for control routes the proxy does not own (`/_ghcache/codeql/*`):
//! a daemon registers a [`ControlExtension`], the server hands it matching
//! requests with their body read up to the extension's bound, and folds its
//! stats into `/_ghcache/stats` and `/metrics`. Keeps the proxy free of the
//! extensions' crates.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A request for an extension: the path after its prefix and the body.
#[derive(Debug)]
pub struct ControlRequest {
    pub method: http::Method,
    /// The path below the extension's prefix (`lookup`, `bundle/<cid>`).
    pub route: String,
    pub body: Bytes,
}

/// An extension's answer.
#[derive(Debug)]
pub struct ControlReply {
    pub status: http::StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl ControlReply {
    pub fn json(status: http::StatusCode, value: &impl serde::Serialize) -> ControlReply {
        ControlReply {
            status,
            content_type: "application/json",
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    /// An error in GitHub's JSON shape, like the proxy's own.
    pub fn error(status: http::StatusCode, message: &str) -> ControlReply {
        ControlReply::json(status, &serde_json::json!({ "message": message }))
    }
}

/// One counter family for `/metrics`: samples with at most one label.
#[derive(Debug, Clone)]
pub struct MetricCounter {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(Option<(&'static str, String)>, u64)>,
}

pub type ControlFuture<'a> = Pin<Box<dyn Future<Output = ControlReply> + Send + 'a>>;

pub trait ControlExtension: Send + Sync + 'static {
    /// The path prefix it answers, ending in `/` (`/_ghcache/codeql/`).
    fn prefix(&self) -> &'static str;
    /// Largest request body it accepts; longer ones get a 413 unread.
    fn max_body(&self) -> usize;
    fn handle(&self, request: ControlRequest) -> ControlFuture<'_>;
    /// Its section of `/_ghcache/stats` (name, document).
    fn stats(&self) -> (&'static str, serde_json::Value);
    /// Its counters for `/metrics`.
    fn counters(&self) -> Vec<MetricCounter>;
}
