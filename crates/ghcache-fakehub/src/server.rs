//! The HTTP side: accept loop, the per-request pipeline (auth, secondary
//! limit, faults, latency, primary limit, dispatch, conditional requests,
//! headers, stats).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::config::{FakeHubConfig, FaultConfig, LatencyProfile, LatencyRange};
use crate::stats::Stats;
use crate::world::{Principal, State, World};
use crate::{api, etag_for};

pub(crate) const API_VERSION: &str = "2022-11-28";
pub(crate) const DOCS: &str = "https://docs.github.com/rest";
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Rate-limit categories (`x-ratelimit-resource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    Core,
    Search,
    Graphql,
    CodeScanningUpload,
    ActionsRunnerRegistration,
}

impl Category {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Category::Core => "core",
            Category::Search => "search",
            Category::Graphql => "graphql",
            Category::CodeScanningUpload => "code_scanning_upload",
            Category::ActionsRunnerRegistration => "actions_runner_registration",
        }
    }
}

/// Endpoint class, for latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Read,
    List,
    Write,
    Graphql,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Window {
    pub start: Option<i64>,
    pub used: u64,
}

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
}

/// The shared core of a running hub.
#[derive(Debug)]
pub(crate) struct Hub {
    pub base: String,
    pub cfg: FakeHubConfig,
    pub state: RwLock<State>,
    pub tokens: HashMap<String, Principal>,
    pub app_jwt: String,
    pub world: World,
    pub clock: crate::time::Clock,
    pub rate: Mutex<HashMap<(String, Category), Window>>,
    pub inflight: Mutex<HashMap<String, usize>>,
    pub stats: Stats,
    pub faults: RwLock<FaultConfig>,
    pub latency: RwLock<LatencyProfile>,
    pub rng: Mutex<ChaCha8Rng>,
    pub cache: RwLock<HashMap<String, (u64, Bytes)>>,
    pub seq: AtomicU64,
}

/// The identity a request is accounted to.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub principal: Principal,
    /// Stats / in-flight / rate-limit bucket label (never a token).
    pub label: String,
    pub authenticated: bool,
    /// Number used in "API rate limit exceeded for user ID N." style messages.
    pub subject: String,
}

impl Hub {
    /// Serialises with the body cache: `render` runs only when `key` has no
    /// body rendered at the current generation.
    pub(crate) fn cached(
        &self,
        key: String,
        generation: u64,
        render: impl FnOnce() -> serde_json::Value,
    ) -> Bytes {
        if let Some((g, b)) = self.cache.read().get(&key) {
            if *g == generation {
                return b.clone();
            }
        }
        let bytes = Bytes::from(serde_json::to_vec(&render()).unwrap_or_default());
        let mut c = self.cache.write();
        if c.len() > 20_000 {
            c.clear();
        }
        c.insert(key, (generation, bytes.clone()));
        bytes
    }

    pub(crate) fn limit_for(&self, who: &Who, cat: Category) -> u64 {
        let l = &self.cfg.limits;
        match cat {
            Category::Search => {
                if who.authenticated {
                    l.search_authenticated
                } else {
                    l.search_anonymous
                }
            }
            Category::CodeScanningUpload => l.code_scanning_upload,
            Category::ActionsRunnerRegistration => l.actions_runner_registration,
            Category::Core | Category::Graphql => match &who.principal {
                Principal::Anonymous => {
                    if cat == Category::Graphql {
                        0
                    } else {
                        l.anonymous
                    }
                }
                Principal::User { .. } => l.pat,
                Principal::GithubToken { .. } => l.github_token,
                Principal::Installation { .. } | Principal::App => l.installation,
            },
        }
    }

    fn window_len(&self, cat: Category) -> i64 {
        let d = if cat == Category::Search {
            self.cfg.limits.search_window
        } else {
            self.cfg.limits.window
        };
        i64::try_from(d.as_secs()).unwrap_or(3600).max(1)
    }

    /// (limit, used, reset) of a bucket now, rolling an expired window.
    pub(crate) fn rate_view(&self, who: &Who, cat: Category) -> (u64, u64, i64) {
        let now = self.clock.now();
        let len = self.window_len(cat);
        let limit = self.limit_for(who, cat);
        let mut rate = self.rate.lock();
        let w = rate.entry((who.label.clone(), cat)).or_default();
        roll(w, now, len);
        (limit, w.used, w.start.map_or(now + len, |s| s + len))
    }

    /// Takes `n` units if available. Returns false when exhausted.
    fn take(&self, who: &Who, cat: Category, n: u64) -> bool {
        let now = self.clock.now();
        let len = self.window_len(cat);
        let limit = self.limit_for(who, cat);
        let mut rate = self.rate.lock();
        let w = rate.entry((who.label.clone(), cat)).or_default();
        roll(w, now, len);
        if w.used + n > limit {
            return false;
        }
        if w.start.is_none() {
            w.start = Some(now);
        }
        w.used += n;
        true
    }

    fn refund(&self, who: &Who, cat: Category, n: u64) {
        let mut rate = self.rate.lock();
        if let Some(w) = rate.get_mut(&(who.label.clone(), cat)) {
            w.used = w.used.saturating_sub(n);
        }
    }

    pub(crate) fn request_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let s = self.cfg.seed;
        format!(
            "{:04X}:{:05X}:{:06X}:{:07X}:{:08X}",
            (s & 0xFFFF) as u16,
            (n >> 20) & 0xFFFFF,
            n & 0xFFFFFF,
            (n.wrapping_mul(2_654_435_761)) & 0xFFF_FFFF,
            (self.clock.now() as u64) & 0xFFFF_FFFF
        )
    }

    /// Identifies the caller. `Err` is a 401 reply.
    fn identify(&self, headers: &HeaderMap, ip: IpAddr) -> Result<Who, ()> {
        let anon = Who {
            principal: Principal::Anonymous,
            label: format!("anonymous:{ip}"),
            authenticated: false,
            subject: ip.to_string(),
        };
        let Some(raw) = headers.get(header::AUTHORIZATION) else {
            return Ok(anon);
        };
        let raw = raw.to_str().map_err(|_| ())?.trim();
        let token = if let Some(t) = strip_prefix_ci(raw, "token ") {
            t
        } else if let Some(t) = strip_prefix_ci(raw, "bearer ") {
            t
        } else {
            return Err(());
        }
        .trim();
        if token == self.app_jwt {
            let id = self.state.read().app_id;
            return Ok(Who {
                principal: Principal::App,
                label: format!("app:{id}"),
                authenticated: true,
                subject: id.to_string(),
            });
        }
        if let Some(p) = self.tokens.get(token) {
            let st = self.state.read();
            let (label, subject) = match p {
                Principal::User { user } => (
                    format!("user:{}", st.accounts[*user].login),
                    format!("user ID {}", st.accounts[*user].id),
                ),
                Principal::GithubToken { repo, .. } => (
                    format!("repo:{}", st.full_name(*repo)),
                    format!("installation ID {}", st.repos[*repo].id % 100_000_000),
                ),
                _ => ("invalid".to_string(), String::new()),
            };
            return Ok(Who {
                principal: p.clone(),
                label,
                authenticated: true,
                subject,
            });
        }
        let st = self.state.read();
        if let Some(m) = st.minted.get(token) {
            if m.expires_at > self.clock.now() {
                let inst = &st.installations[m.inst];
                return Ok(Who {
                    principal: Principal::Installation {
                        inst: m.inst,
                        perms: m.perms.clone(),
                        repos: m.repos.clone(),
                    },
                    label: format!("installation:{}", inst.id),
                    authenticated: true,
                    subject: format!("installation ID {}", inst.id),
                });
            }
        }
        Err(())
    }
}

fn roll(w: &mut Window, now: i64, len: i64) {
    if let Some(s) = w.start {
        if now >= s + len {
            *w = Window::default();
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    if s.len() >= p.len() && s.is_char_boundary(p.len()) && s[..p.len()].eq_ignore_ascii_case(p) {
        Some(&s[p.len()..])
    } else {
        None
    }
}

/// Decrements the in-flight count of an identity when the request ends,
/// however it ends (including a client hanging up mid-latency).
struct InFlight<'a> {
    hub: &'a Hub,
    label: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self.hub.inflight.lock();
        if let Some(n) = m.get_mut(&self.label) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.label);
            }
        }
    }
}

/// Error a service returns to make hyper drop the connection (a "reset").
#[derive(Debug)]
pub(crate) struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fakehub fault: connection dropped")
    }
}
impl std::error::Error for Dropped {}

type Resp = Response<Full<Bytes>>;

pub(crate) async fn serve(
    hub: Arc<Hub>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("fakehub accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let hub = hub.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let hub = hub.clone();
                        async move { handle(hub, req, peer).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

fn sample(rng: &mut ChaCha8Rng, r: LatencyRange) -> Duration {
    let j = u64::try_from(r.jitter.as_micros()).unwrap_or(0);
    let extra = if j == 0 { 0 } else { rng.gen_range(0..=j) };
    r.base + Duration::from_micros(extra)
}

async fn handle(hub: Arc<Hub>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if path.starts_with("/_fakehub") {
        let body = read_body(body).await.unwrap_or_default();
        return Ok(crate::introspect::handle(&hub, &parts.method, &path, &body));
    }
    let ip = peer.ip();
    let request_id = hub.request_id();
    let who = match hub.identify(&parts.headers, ip) {
        Ok(w) => w,
        Err(()) => {
            let anon = Who {
                principal: Principal::Anonymous,
                label: format!("anonymous:{ip}"),
                authenticated: false,
                subject: ip.to_string(),
            };
            let reply = Reply::error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS);
            hub.stats.record("invalid-token", 401, 0);
            return Ok(finish(
                &hub,
                &parts.headers,
                &anon,
                Category::Core,
                reply,
                &request_id,
                false,
            ));
        }
    };
    let (class, category) = api::classify(&parts.method, &path);
    // Errors answered before any work (no cache headers).
    let answer = |reply: Reply| {
        finish(
            &hub,
            &parts.headers,
            &who,
            category,
            reply,
            &request_id,
            false,
        )
    };
    // ... of which these are counted as a request at 0 units.
    let refuse = |reply: Reply| {
        hub.stats.record(&who.label, reply.status.as_u16(), 0);
        answer(reply)
    };

    // secondary limit: concurrent requests per identity
    let limit = hub.cfg.secondary_concurrency_limit;
    let over = {
        let mut m = hub.inflight.lock();
        let n = m.entry(who.label.clone()).or_insert(0);
        if *n >= limit {
            true
        } else {
            *n += 1;
            false
        }
    };
    if over {
        let msg = format!(
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {request_id}."
        );
        let mut reply = Reply::error(
            StatusCode::FORBIDDEN,
            &msg,
            "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        );
        reply.headers.push(("retry-after", "60".to_string()));
        hub.stats.record_secondary(&who.label);
        return Ok(answer(reply));
    }
    let _guard = InFlight {
        hub: &hub,
        label: who.label.clone(),
    };

    // faults
    let faults = hub.faults.read().clone();
    let since = hub.clock.since_start_secs();
    let outage = faults.outage
        || faults
            .outage_windows
            .iter()
            .any(|w| since >= w.start_secs && since < w.end_secs);
    let (roll_reset, roll_timeout, roll_error, latency) = {
        let mut rng = hub.rng.lock();
        let lp = *hub.latency.read();
        let range = match class {
            Class::Read => lp.read,
            Class::List => lp.list,
            Class::Write => lp.write,
            Class::Graphql => lp.graphql,
        };
        (
            faults.reset_rate > 0.0 && rng.r#gen::<f64>() < faults.reset_rate,
            faults.timeout_rate > 0.0 && rng.r#gen::<f64>() < faults.timeout_rate,
            if faults.error_rate > 0.0 && rng.r#gen::<f64>() < faults.error_rate {
                Some(if rng.gen_bool(0.5) { 502u16 } else { 503 })
            } else {
                None
            },
            sample(&mut rng, range),
        )
    };
    if outage {
        let reply = Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: GitHub is experiencing an outage (fakehub injected)",
            "https://www.githubstatus.com",
        );
        return Ok(refuse(reply));
    }
    if roll_reset {
        hub.stats.record_dropped(&who.label);
        return Err(Dropped);
    }
    if roll_timeout {
        hub.stats.record_timeout(&who.label);
        tokio::time::sleep(faults.hang()).await;
        return Err(Dropped);
    }
    let body = match read_body(body).await {
        Some(b) => b,
        None => {
            let reply = Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large or unreadable",
                DOCS,
            );
            return Ok(refuse(reply));
        }
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = roll_error {
        let (status, msg) = if code == 502 {
            (StatusCode::BAD_GATEWAY, "Server Error")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        };
        let reply = Reply::error(status, msg, DOCS);
        return Ok(refuse(reply));
    }

    // API version header
    if let Some(v) = parts.headers.get("x-github-api-version") {
        let v = v.to_str().unwrap_or("");
        if v != API_VERSION {
            let reply = Reply::error(
                StatusCode::BAD_REQUEST,
                &format!("API version {v} is not supported."),
                "https://docs.github.com/rest/about-the-rest-api/api-versions",
            );
            return Ok(refuse(reply));
        }
    }

    // primary limit: reserve one unit up front (atomic), settle afterwards
    let free = path == "/rate_limit";
    if !free && hub.limit_for(&who, category) > 0 && !hub.take(&who, category, 1) {
        let msg = if who.authenticated {
            format!("API rate limit exceeded for {}.", who.subject)
        } else {
            format!(
                "API rate limit exceeded for {}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
                who.subject
            )
        };
        let reply = Reply::error(
            StatusCode::FORBIDDEN,
            &msg,
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        );
        hub.stats.record_rate_limited(&who.label);
        return Ok(answer(reply));
    }
    let reserved = !free && hub.limit_for(&who, category) > 0;

    let query = parts.uri.query().map(str::to_string);
    // HEAD is answered like GET (hyper omits the body on the wire)
    let method = if parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        parts.method.clone()
    };
    let ctx = api::Ctx {
        method: &method,
        path: &path,
        query: parse_query(query.as_deref()),
        raw_query: query.as_deref(),
        who: &who,
        body: &body,
    };
    let mut reply = api::dispatch(&hub, &ctx);

    // conditional requests
    let mut etag_value = None;
    if reply.status == StatusCode::OK && reply.etag != EtagKind::None {
        let h = &parts.headers;
        let tag = etag_for(
            hv(h, header::ACCEPT),
            hv(h, header::AUTHORIZATION),
            hv(h, header::COOKIE),
            &reply.body,
        );
        let not_modified = if let Some(inm) = hv(h, header::IF_NONE_MATCH) {
            inm_matches(inm, &tag)
        } else if let (Some(ims), Some(lm)) =
            (hv(h, header::IF_MODIFIED_SINCE), reply.last_modified)
        {
            crate::time::parse_http_date(ims).is_some_and(|t| lm <= t)
        } else {
            false
        };
        etag_value = Some(tag);
        if not_modified {
            reply.status = StatusCode::NOT_MODIFIED;
            reply.body = Bytes::new();
        }
    }
    // settle the unit: an authenticated 304 is free
    let mut cost = if free { 0 } else { reply.cost };
    if reply.status == StatusCode::NOT_MODIFIED && who.authenticated {
        cost = 0;
    }
    if reserved {
        if cost == 0 {
            hub.refund(&who, category, 1);
        } else if cost > 1 {
            let _ = hub.take(&who, category, cost - 1);
        }
    }
    let consumed = if reserved { cost } else { 0 };
    hub.stats
        .record(&who.label, reply.status.as_u16(), consumed);
    if let Some(tag) = etag_value {
        let v = match reply.etag {
            EtagKind::Weak => format!("W/\"{tag}\""),
            _ => format!("\"{tag}\""),
        };
        reply.headers.push(("etag", v));
    }
    let report_cat = if free { Category::Core } else { category };
    Ok(finish(
        &hub,
        &parts.headers,
        &who,
        report_cat,
        reply,
        &request_id,
        true,
    ))
}

fn hv(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag whose opaque
/// part equals ours, `W/` ignored on both sides.
pub(crate) fn inm_matches(header_value: &str, tag: &str) -> bool {
    header_value.split(',').map(str::trim).any(|t| {
        if t == "*" {
            return true;
        }
        let t = t.strip_prefix("W/").unwrap_or(t);
        let t = t.trim_matches('"');
        t == tag
    })
}

pub(crate) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// Adds GitHub's standard headers to a reply.
fn finish(
    hub: &Hub,
    req_headers: &HeaderMap,
    who: &Who,
    cat: Category,
    reply: Reply,
    request_id: &str,
    cache_headers: bool,
) -> Resp {
    let mut b = Response::builder().status(reply.status);
    let h = match b.headers_mut() {
        Some(h) => h,
        None => return Response::new(Full::new(Bytes::new())),
    };
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.append(k, v);
        }
    };
    if reply.status != StatusCode::NOT_MODIFIED && reply.status != StatusCode::NO_CONTENT {
        put("content-type", "application/json; charset=utf-8");
    }
    let (limit, used, reset) = hub.rate_view(who, cat);
    if limit > 0 || cat != Category::Graphql {
        put("x-ratelimit-limit", &limit.to_string());
        put(
            "x-ratelimit-remaining",
            &limit.saturating_sub(used).to_string(),
        );
        put("x-ratelimit-used", &used.to_string());
        put("x-ratelimit-reset", &reset.to_string());
        put("x-ratelimit-resource", cat.name());
    }
    put("x-github-request-id", request_id);
    put("x-github-api-version-selected", API_VERSION);
    put("x-github-media-type", "github.v3; format=json");
    let ok = reply.status.is_success() || reply.status == StatusCode::NOT_MODIFIED;
    if cache_headers && ok && cat != Category::Graphql {
        if who.authenticated {
            put("cache-control", "private, max-age=60, s-maxage=60");
            put("vary", "Accept, Authorization, Cookie, X-GitHub-OTP");
            put("vary", "Accept-Encoding, Accept, X-Requested-With");
        } else {
            put("cache-control", "public, max-age=60, s-maxage=60");
            put("vary", "Accept, Accept-Encoding, Accept, X-Requested-With");
        }
        if let Some(lm) = reply.last_modified {
            put("last-modified", &crate::time::http_date(lm));
        }
    }
    if let Some(l) = &reply.link {
        put("link", l);
    }
    for (k, v) in &reply.headers {
        put(k, v);
    }
    let _ = req_headers;
    b.body(Full::new(reply.body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
