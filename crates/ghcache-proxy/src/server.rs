//! The accept loop: HTTP/1.1 with keep-alive, header limits and timeouts,
//! graceful shutdown; and a tiny client for the control API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::job::Refusal;
use crate::proxy::{Begun, Later};
use crate::{Body, Proxy, ProxyError};
use http::Response;
use http::header::{self, HeaderValue};

/// A proxy serving on a socket.
#[derive(Debug)]
pub struct RunningProxy {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningProxy {
    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s) and
    /// closes idle keep-alive connections.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// One client connection, as the accept loop sees it.
#[derive(Debug)]
struct Conn {
    id: u64,
    /// Requests being answered now; 0 means idle (or still sending its head).
    busy: AtomicUsize,
    /// When it opened or last finished a request (ms since the server
    /// began). Read only while `busy` is 0, so a request's start needs no
    /// stamp (nor a clock read).
    last_active: AtomicU64,
    close: Notify,
}

/// The open connections, so the accept loop can shed the oldest idle one.
#[derive(Debug, Default)]
struct Conns {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Conns {
    /// Asks every connection idle for `limit_ms` or more to close.
    fn close_idle(&self, now_ms: u64, limit_ms: u64) {
        for c in self.open.lock().values() {
            if c.busy.load(Ordering::Acquire) == 0
                && now_ms.saturating_sub(c.last_active.load(Ordering::Acquire)) >= limit_ms
            {
                c.close.notify_one();
            }
        }
    }

    /// Asks the idle connection that has waited longest to close.
    fn shed_oldest_idle(&self) -> bool {
        let open = self.open.lock();
        let victim = open
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| (c.last_active.load(Ordering::Acquire), c.id));
        match victim {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Logs a repeated warning at most once per interval, with how many were
/// suppressed in between.
#[derive(Debug)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(10);

    fn new() -> Throttled {
        Throttled {
            last: None,
            suppressed: 0,
        }
    }

    fn warn(&mut self, message: &str, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < Self::EVERY)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(error = %error, suppressed = self.suppressed, "{message}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// What [`Proxy::start`] made of a request.
enum Started {
    Answered(Response<Body>),
    Later(Later),
    /// A job's request that waits, with the job it counts for and the
    /// base its links point under.
    JobLater {
        job: Arc<crate::job::JobCounters>,
        later: Later,
        base: Arc<str>,
    },
    /// A control route (`/_ghcache/*`, `/metrics`), also under a job's
    /// prefix: not counted.
    Control(Box<http::Request<hyper::body::Incoming>>),
}

/// A job's request, its prefix stripped.
enum JobRequest {
    /// Not a well-formed job path: the answer.
    Refused(Response<Body>),
    /// A control route reached under the prefix (not counted).
    Control(http::Request<hyper::body::Incoming>),
    /// A GitHub request, counted for `job`, its links under `base`.
    Api {
        job: Arc<crate::job::JobCounters>,
        request: http::Request<hyper::body::Incoming>,
        base: Arc<str>,
    },
}

/// A request in progress on a connection, from its head to the last byte
/// of its response body: the connection is busy, so neither shed nor
/// closed as idle, until this is dropped.
struct Busy(Arc<Serving>);

impl Busy {
    fn enter(serving: Arc<Serving>) -> Busy {
        serving.conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(serving)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let conn = &self.0.conn;
        conn.last_active.store(self.0.now_ms(), Ordering::Release);
        conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one connection's requests are served with.
struct Serving {
    proxy: Proxy,
    conn: Arc<Conn>,
    /// Where the client reached us: links are rewritten to point here.
    base: Arc<str>,
    /// When the server began: connection times count from it.
    started: Instant,
    /// The job this connection's last request was for.
    last_job: crate::job::LastJob,
}

impl Serving {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A response body that keeps its request [`Busy`] until hyper has sent
/// it (or dropped it: the client went away).
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The future of one request, after [`Proxy::start`]: what waits, then
/// the body tracked until sent. It stays small (a test bounds it): hyper
/// moves it into place once per request, and what awaits is boxed.
async fn respond(
    serving: Arc<Serving>,
    started: Started,
    busy: Busy,
) -> Result<Response<Tracked>, std::convert::Infallible> {
    let proxy = &serving.proxy;
    let response = match started {
        Started::Answered(response) => response,
        Started::Later(later) => proxy.finish(later, serving.base.clone()).await,
        Started::JobLater { job, later, base } => {
            crate::job::scope(job, proxy.finish(later, base)).await
        }
        Started::Control(request) => Box::pin(proxy.serve_control(*request)).await,
    };
    Ok(response.map(|body| Tracked { body, _busy: busy }))
}

/// Closes a connection asked to go: an idle one (between requests, or one
/// that never finished sending a head) at once, a busy one after its
/// current response.
async fn finish<C>(mut connection: std::pin::Pin<&mut C>, conn: &Conn) -> hyper::Result<()>
where
    C: std::future::Future<Output = hyper::Result<()>> + GracefulConnection,
{
    if conn.busy.load(Ordering::Acquire) == 0 {
        return Ok(());
    }
    connection.as_mut().shutdown_gracefully();
    connection.await
}

/// The one method of hyper's connection types the accept loop needs.
trait GracefulConnection {
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulConnection for http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The control surface: the daemon's own endpoints, answered before the
/// pipeline (they are not GitHub answers, so not counted as such).
fn is_control(path: &str) -> bool {
    path.starts_with("/_ghcache/") || path == "/metrics"
}

fn error_response(status: http::StatusCode, message: &str) -> Response<Body> {
    let mut r = json_response(&serde_json::json!({ "message": format!("ghcache: {message}") }));
    *r.status_mut() = status;
    r
}

fn json_response(value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::full(value.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Reads the body up to the extension's bound and lets it answer.
async fn extension_reply(
    extension: &dyn crate::ControlExtension,
    request: http::Request<hyper::body::Incoming>,
    path: &str,
) -> Response<Body> {
    let route = path[extension.prefix().len()..].to_owned();
    let method = request.method().clone();
    let limited = http_body_util::Limited::new(request.into_body(), extension.max_body());
    let reply = match limited.collect().await {
        Ok(body) => {
            extension
                .handle(crate::ControlRequest {
                    method,
                    route,
                    body: body.to_bytes(),
                })
                .await
        }
        Err(e) => crate::ControlReply::error(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request body refused: {e} (at most {} bytes)",
                extension.max_body()
            ),
        ),
    };
    let mut r = Response::new(Body::full(reply.body));
    *r.status_mut() = reply.status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    r
}

impl Proxy {
    /// Answers a control route, or `None` for an unknown one.
    async fn control(&self, path: &str) -> Option<Response<Body>> {
        let i = &self.inner;
        match path {
            "/_ghcache/health" => Some(json_response(
                &serde_json::to_value(crate::HealthReport {
                    status: "ok".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    upstream: i.upstream.base.to_string(),
                })
                .unwrap_or_default(),
            )),
            "/_ghcache/stats" => Some(json_response(
                &serde_json::to_value(self.stats_report()).unwrap_or_default(),
            )),
            "/_ghcache/peers" => Some(json_response(
                &serde_json::to_value(i.peers.describe().await).unwrap_or_default(),
            )),
            "/metrics" => {
                let counters = i.extensions.iter().flat_map(|e| e.counters()).collect();
                let peers = i.peers.describe().await;
                let text =
                    crate::metrics::render(self.stats_report(), &peers, counters, i.registry.get());
                let mut r = Response::new(Body::full(text));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                Some(r)
            }
            _ => None,
        }
    }

    /// A request as the server first sees it: the pipeline's steps that
    /// never wait run now, for a job's requests too; control routes are
    /// answered in [`respond`].
    fn start(&self, request: http::Request<hyper::body::Incoming>, serving: &Serving) -> Started {
        let path = request.uri().path();
        if path.starts_with(crate::job::JOB_PREFIX) {
            return match self.job_request(request, serving) {
                JobRequest::Refused(refused) => Started::Answered(self.refused(refused)),
                JobRequest::Control(request) => Started::Control(Box::new(request)),
                JobRequest::Api { job, request, base } => {
                    match crate::job::sync_scope(job.clone(), || self.begin(request, &base)) {
                        Begun::Answered(response) => Started::Answered(response),
                        Begun::Later(later) => Started::JobLater { job, later, base },
                    }
                }
            };
        }
        if is_control(path) {
            return Started::Control(Box::new(request));
        }
        match self.begin(request, &serving.base) {
            Begun::Answered(response) => Started::Answered(response),
            Begun::Later(later) => Started::Later(later),
        }
    }

    /// A request under `/_job/<id>/` with the prefix stripped, or the
    /// refusal of a malformed one.
    fn job_request(
        &self,
        request: http::Request<hyper::body::Incoming>,
        serving: &Serving,
    ) -> JobRequest {
        let (mut parts, body) = request.into_parts();
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        // Paces how often the job registry hears that the job is in use
        // (now: the connection's last answer may be long past).
        let now_ms = serving.now_ms();
        let crate::job::JobPath {
            job,
            base: job_base,
            target,
        } = match serving
            .last_job
            .strip(&self.inner.jobs, pq, &serving.base, now_ms)
        {
            Ok(stripped) => stripped,
            Err(refusal) => {
                let (status, message) = match refusal {
                    Refusal::NotAJobPath => (http::StatusCode::NOT_FOUND, "not a job path"),
                    Refusal::InvalidId => {
                        (http::StatusCode::BAD_REQUEST, crate::job::INVALID_JOB_ID)
                    }
                    Refusal::InvalidTarget => {
                        (http::StatusCode::BAD_REQUEST, "invalid request path")
                    }
                };
                return JobRequest::Refused(error_response(status, message));
            }
        };
        parts.uri = target;
        let request = http::Request::from_parts(parts, body);
        if is_control(request.uri().path()) {
            JobRequest::Control(request)
        } else {
            JobRequest::Api {
                job,
                request,
                base: job_base,
            }
        }
    }

    /// `/_ghcache/jobs/<id>`: `POST` registers a job (setup-github-cache),
    /// `GET` reports what it was served.
    fn job_route(&self, method: &http::Method, id: &str) -> Response<Body> {
        if !crate::job::valid_job_id(id) {
            return error_response(http::StatusCode::BAD_REQUEST, crate::job::INVALID_JOB_ID);
        }
        let jobs = &self.inner.jobs;
        if method == http::Method::POST {
            jobs.enter(id);
        } else if method != http::Method::GET {
            return error_response(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "use GET (report) or POST (register)",
            );
        }
        match jobs.report(id) {
            Some(mut report) => {
                report.mean_upstream_latency_us = self.inner.upstream.mean_latency_us();
                json_response(&serde_json::to_value(report).unwrap_or_default())
            }
            None => error_response(
                http::StatusCode::NOT_FOUND,
                "this daemon has no record of that job: it made no request through its GHCACHE_API_URL, the daemon restarted, or more than 1024 jobs came after it",
            ),
        }
    }

    async fn serve_control(&self, request: http::Request<hyper::body::Incoming>) -> Response<Body> {
        {
            let path = request.uri().path().to_owned();
            if let Some(extension) = self
                .inner
                .extensions
                .iter()
                .find(|e| path.starts_with(e.prefix()))
            {
                return extension_reply(extension.as_ref(), request, &path).await;
            }
            if let Some(id) = path.strip_prefix("/_ghcache/jobs/") {
                return self.job_route(request.method(), id);
            }
            if let Some(response) = self.control(&path).await {
                return response;
            }
            let mut r = Response::new(Body::full(
                serde_json::json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
                    .to_string(),
            ));
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    }

    /// Binds the configured address and serves until shut down.
    pub async fn serve(self) -> Result<RunningProxy, ProxyError> {
        let addr = self.config().listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let (stop, mut stopped) = oneshot::channel();
        let max_connections = self.config().max_connections.max(1);
        let idle_timeout = self.config().idle_timeout.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let conns = Arc::new(Conns::default());
            let started = Instant::now();
            let mut accept_warning = Throttled::new();
            let mut full_warning = Throttled::new();
            let mut builder = http1::Builder::new();
            // No hyper header-read timer: it boxed and registered a timer
            // for every request. The sweeper below closes connections idle
            // (or dribbling a head) past `idle_timeout` instead.
            builder
                .keep_alive(true)
                .header_read_timeout(None)
                .max_buf_size(256 * 1024);
            let idle_ms = idle_timeout.as_millis() as u64;
            let sweeper = tokio::spawn({
                let conns = conns.clone();
                async move {
                    let mut tick =
                        tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(10)));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        conns.close_idle(started.elapsed().as_millis() as u64, idle_ms);
                    }
                }
            });
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of file descriptors and the like: make room, back off, keep serving.
                            accept_warning.warn("accept failed; shedding an idle connection", &e);
                            conns.shed_oldest_idle();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = &mut stopped => break,
                };
                let open = conns.open.lock().len();
                if open >= max_connections && !conns.shed_oldest_idle() {
                    self.connection_refused();
                    full_warning.warn(
                        "connection limit reached and every connection is busy; refusing a new one",
                        &format!("{open} open, limit {max_connections}"),
                    );
                    drop(stream);
                    continue;
                }
                if open >= max_connections {
                    self.connection_shed();
                }
                let _ = stream.set_nodelay(true);
                let conn = Arc::new(Conn {
                    id: conns.next_id.fetch_add(1, Ordering::Relaxed),
                    busy: AtomicUsize::new(0),
                    last_active: AtomicU64::new(started.elapsed().as_millis() as u64),
                    close: Notify::new(),
                });
                conns.open.lock().insert(conn.id, conn.clone());
                self.connection_opened();
                let proxy = self.clone();
                // Links are rewritten to the address this client reached:
                // fixed per connection, never the client's `Host`.
                let base: Arc<str> = format!(
                    "http://{}",
                    stream.local_addr().unwrap_or(self.config().listen)
                )
                .into();
                // One clone per request of this connection's own `Arc`: the
                // proxy's is shared by every connection, and its count
                // bouncing between cores showed in the hit path.
                let serving = Arc::new(Serving {
                    proxy,
                    conn: conn.clone(),
                    base,
                    started,
                    last_job: Default::default(),
                });
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let serving = serving.clone();
                    let busy = Busy::enter(serving.clone());
                    // What needs no waiting is done in this call, not in
                    // the future: see `Proxy::begin`.
                    let started = serving.proxy.start(request, &serving);
                    respond(serving, started, busy)
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let conns = conns.clone();
                let proxy = self.clone();
                tasks.spawn(async move {
                    tokio::pin!(connection);
                    // One per-connection signal for shedding and shutdown: a
                    // shared broadcast receiver took a contended lock on
                    // every poll of every connection.
                    let result = tokio::select! {
                        // In order: no random pick on every poll.
                        biased;
                        result = connection.as_mut() => result,
                        _ = conn.close.notified() => finish(connection, &conn).await,
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                    conns.open.lock().remove(&conn.id);
                    proxy.connection_closed();
                });
                // Reap finished connection tasks so the set stays small.
                while tasks.try_join_next().is_some() {}
            }
            sweeper.abort();
            // Shutdown: every connection is asked to close (a stored permit
            // reaches one that is not waiting yet).
            for conn in conns.open.lock().values() {
                conn.close.notify_one();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        });
        tracing::info!(%addr, "proxy listening");
        Ok(RunningProxy {
            addr,
            stop: Some(stop),
            task,
        })
    }
}

/// GETs a control API path and reads it as `T` (`StatsReport` for
/// `/_ghcache/stats`).
pub async fn control_get_as<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    path: &str,
) -> Result<T, ProxyError> {
    let value = control_get(addr, path).await?;
    serde_json::from_value(value).map_err(|e| ProxyError::Control {
        addr,
        message: format!(
            "{path} is not what this ghcache expects ({e}); is the daemon another version?"
        ),
    })
}

/// GETs a control API path (`/_ghcache/stats`) from a running daemon.
pub async fn control_get(addr: SocketAddr, path: &str) -> Result<serde_json::Value, ProxyError> {
    let failed = |message: String| ProxyError::Control { addr, message };
    let (status, body) = control_request(
        addr,
        http::Method::GET,
        path,
        bytes::Bytes::new(),
        Duration::from_secs(5),
    )
    .await?;
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| failed(format!("not JSON: {e}")))
}

/// Sends one request to a control API path and returns the status and body
/// (any status: the caller decides), connecting within 5 s and answering
/// within `timeout`.
pub async fn control_request(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: bytes::Bytes,
    timeout: Duration,
) -> Result<(http::StatusCode, bytes::Bytes), ProxyError> {
    let failed = |message: String| ProxyError::Control { addr, message };
    tokio::time::timeout(timeout, control_exchange(addr, method, path, body))
        .await
        .map_err(|_| failed(format!("no answer within {} s", timeout.as_secs())))?
}

async fn control_exchange(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: bytes::Bytes,
) -> Result<(http::StatusCode, bytes::Bytes), ProxyError> {
    let failed = |message: String| ProxyError::Control { addr, message };
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| failed("no answer within 5 s".into()))?
        .map_err(|e| failed(format!("{e} (is `ghcache daemon` running?)")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(body))
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    fn size_of_output<A, R>(_: &impl Fn(A) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// hyper moves a request's future into place once per request, and
    /// every hit pays for its size: the paths that await (upstream, mesh,
    /// control routes, jobs) are boxed so that it stays small. It was
    /// 10,208 bytes (debug build) before they were.
    #[test]
    fn the_future_of_a_request_stays_small() {
        let respond =
            |(serving, started, busy): (Arc<super::Serving>, super::Started, super::Busy)| {
                super::respond(serving, started, busy)
            };
        let size = size_of_output(&respond);
        assert!(size <= 4096, "a request's future is {size} bytes");
    }
}
