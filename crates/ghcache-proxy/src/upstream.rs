//! The pooled HTTP(S) client to GitHub (rustls, native roots with the
//! webpki set as fallback).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Body, ProxyError};

#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// `https://api.github.com` or `https://ghe.example.com/api/v3`, no trailing slash.
    pub base: String,
    /// The host part, for resource ids.
    pub host: String,
    pub timeout: Duration,
    /// Time to the response head of every answered exchange: what a local
    /// answer saves, on average.
    latency: Arc<Latency>,
}

/// Summed time to the response head over answered exchanges.
#[derive(Debug, Default)]
struct Latency {
    total_us: AtomicU64,
    count: AtomicU64,
}

/// Why an upstream exchange produced no response.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    pub timed_out: bool,
    pub message: String,
}

/// A complete upstream response (bodies we may cache are read whole).
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request went out and when its answer was read (unix ms),
    /// for the response's age (RFC 9111 §4.2.3).
    pub sent_at_ms: u64,
    pub received_at_ms: u64,
    /// The values the request it answered had for the headers its `Vary`
    /// names (the secondary key; empty when read for no one request).
    pub secondary: Vec<(String, Option<String>)>,
}

impl Upstream {
    pub fn new(base: &str, timeout: Duration) -> Result<Upstream, ProxyError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| ProxyError::Config(format!("upstream {base:?} is not a URL: {e}")))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| ProxyError::Config(format!("upstream {base:?} has no host")))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(b) => b,
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| ProxyError::Config(format!("TLS set-up failed: {e}")))?,
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Upstream {
            client,
            base,
            host,
            timeout,
            latency: Arc::default(),
        })
    }

    /// (answered exchanges, their summed time to the response head in µs).
    pub fn latency(&self) -> (u64, u64) {
        (
            self.latency.count.load(Ordering::Relaxed),
            self.latency.total_us.load(Ordering::Relaxed),
        )
    }

    /// The mean time to a response head so far, in µs (0 before any).
    pub fn mean_latency_us(&self) -> u64 {
        let (count, total_us) = self.latency();
        total_us / count.max(1)
    }

    pub fn uri(&self, path_and_query: &str) -> Result<Uri, UpstreamFailure> {
        format!("{}{}", self.base, path_and_query)
            .parse()
            .map_err(|e| UpstreamFailure {
                timed_out: false,
                message: format!("cannot form an upstream URL: {e}"),
            })
    }

    /// Sends a request and waits for the response head.
    pub async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamFailure> {
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(UpstreamFailure {
                timed_out: true,
                message: format!("no response from {} within {:?}", self.base, self.timeout),
            }),
            Ok(Err(e)) => Err(UpstreamFailure {
                timed_out: false,
                message: format!("{} unreachable: {}", self.base, error_chain(&e)),
            }),
            Ok(Ok(response)) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.latency.total_us.fetch_add(us, Ordering::Relaxed);
                self.latency.count.fetch_add(1, Ordering::Relaxed);
                Ok(response)
            }
        }
    }

    /// Reads a body of at most `limit` bytes; `Ok(Err(partial))` when larger,
    /// or when buffering it would exceed the shared `budget` (the caller then
    /// streams the rest instead of holding it).
    pub async fn read_body(
        &self,
        mut body: Incoming,
        limit: usize,
        mut budget: Budget<'_>,
    ) -> Result<Result<Bytes, (Vec<u8>, Incoming)>, UpstreamFailure> {
        let mut buffer = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| UpstreamFailure {
                    timed_out: false,
                    message: format!("upstream body failed: {}", error_chain(&e)),
                })?;
                if let Ok(data) = frame.into_data() {
                    if !budget.reserve(data.len()) {
                        buffer.extend_from_slice(&data);
                        return Ok(false);
                    }
                    buffer.extend_from_slice(&data);
                    if buffer.len() > limit {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
        match tokio::time::timeout(self.timeout, read).await {
            Err(_) => Err(UpstreamFailure {
                timed_out: true,
                message: format!("upstream body not complete within {:?}", self.timeout),
            }),
            Ok(Err(failure)) => Err(failure),
            Ok(Ok(true)) => Ok(Ok(Bytes::from(buffer))),
            Ok(Ok(false)) => Ok(Err((buffer, body))),
        }
    }
}

/// A reservation against the bytes all in-flight responses may buffer
/// together; released when dropped.
#[derive(Debug)]
pub struct Budget<'a> {
    in_use: &'a AtomicUsize,
    cap: usize,
    held: usize,
}

impl<'a> Budget<'a> {
    pub fn new(in_use: &'a AtomicUsize, cap: usize) -> Budget<'a> {
        Budget {
            in_use,
            cap,
            held: 0,
        }
    }

    /// Takes `n` more bytes if the total stays within the cap.
    fn reserve(&mut self, n: usize) -> bool {
        let before = self.in_use.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > self.cap {
            self.in_use.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.held += n;
        true
    }
}

impl Drop for Budget<'_> {
    fn drop(&mut self) {
        self.in_use.fetch_sub(self.held, Ordering::AcqRel);
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
