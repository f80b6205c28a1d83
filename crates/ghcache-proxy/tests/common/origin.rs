//! A scriptable GitHub-like origin on a loopback socket, for the cases the
//! fake GitHub rightly refuses to model (tokens with odd bytes, forged
//! peers, hostile headers). Every request it sees is recorded.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(|v| v.as_bytes())
    }
}

type Handler = dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync;

pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

/// Starts an origin answering every request with `handler`.
pub async fn origin(
    handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> Origin {
    slow_origin(std::time::Duration::ZERO, handler).await
}

/// [`origin`], each answer sent `latency` after its request arrived (a
/// slow GitHub, so that concurrent requests overlap).
pub async fn slow_origin(
    latency: std::time::Duration,
    handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let handler: Arc<Handler> = Arc::new(handler);
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let seen = Seen {
                        method: request.method().to_string(),
                        path_and_query: request
                            .uri()
                            .path_and_query()
                            .map(|pq| pq.as_str().to_owned())
                            .unwrap_or_default(),
                        headers: request.headers().clone(),
                    };
                    let response = handler(&seen);
                    log.lock().push(seen);
                    async move {
                        if !latency.is_zero() {
                            tokio::time::sleep(latency).await;
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin { addr, seen }
}

/// A cacheable JSON answer: `max-age=60`, an ETag over the body.
pub fn json(status: u16, body: impl Into<String>) -> Response<Full<Bytes>> {
    let body: String = body.into();
    let etag = format!(
        "\"{}\"",
        ghcache_proxy::synthesize_etag(None, None, None, body.as_bytes())
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "private, max-age=60, s-maxage=60")
        .header("etag", etag)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
