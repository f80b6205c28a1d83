//! GitHub's gates, one named function each, in the order a request meets
//! them: authentication, the secondary (concurrency) limit, injected faults,
//! the API version, the primary limit, then — per handler — the App-JWT
//! scope, repository visibility and permission; and on the way out the
//! conditional-request check and the settling of the unit. The rules and
//! their sources are in `docs/FAKEHUB.md`.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::{FaultConfig, LatencyRange};

use crate::hub::{Category, Class, Hub, Who};
use crate::reply::{API_VERSION, DOCS, EtagKind, Reply, etag_for};
use crate::world::{Level, Principal, Role, State};

// ------------------------------------------------------------ authentication

/// The identity of a request without credentials: bucketed per client IP.
pub(crate) fn anonymous(ip: IpAddr) -> Who {
    Who {
        principal: Principal::Anonymous,
        label: format!("anonymous:{ip}"),
        authenticated: false,
        subject: ip.to_string(),
    }
}

/// `401 Bad credentials`: what an unknown, malformed or expired token gets.
pub(crate) fn bad_credentials() -> Reply {
    Reply::error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS)
}

/// Identifies the caller from `Authorization: token X` / `Bearer X`. `None`
/// means bad credentials (answer [`bad_credentials`]).
pub(crate) fn authenticate(hub: &Hub, headers: &HeaderMap, ip: IpAddr) -> Option<Who> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Some(anonymous(ip));
    };
    let raw = raw.to_str().ok()?.trim();
    let token = strip_prefix_ci(raw, "token ")
        .or_else(|| strip_prefix_ci(raw, "bearer "))?
        .trim();
    if token == hub.app_jwt {
        let id = hub.state.read().app_id;
        return Some(Who {
            principal: Principal::App,
            label: format!("app:{id}"),
            authenticated: true,
            subject: id.to_string(),
        });
    }
    if let Some(p) = hub.tokens.get(token) {
        let st = hub.state.read();
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
        return Some(Who {
            principal: p.clone(),
            label,
            authenticated: true,
            subject,
        });
    }
    let st = hub.state.read();
    let m = st.minted.get(token)?;
    // an expired installation token is a bad credential, as on GitHub
    if m.expires_at <= hub.clock.now() {
        return None;
    }
    let inst = &st.installations[m.inst];
    Some(Who {
        principal: Principal::Installation {
            inst: m.inst,
            perms: m.perms.clone(),
            repos: m.repos.clone(),
        },
        label: format!("installation:{}", inst.id),
        authenticated: true,
        subject: format!("installation ID {}", inst.id),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    if s.len() >= p.len() && s.is_char_boundary(p.len()) && s[..p.len()].eq_ignore_ascii_case(p) {
        Some(&s[p.len()..])
    } else {
        None
    }
}

// ------------------------------------------------------------ secondary limit

/// Holds one of an identity's concurrent-request slots; releases it when the
/// request ends, however it ends (including a client hanging up mid-latency).
pub(crate) struct InFlight<'a> {
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

/// GitHub's secondary limit (concurrency rule only): at most
/// `secondary_concurrency_limit` requests in flight per identity; the next
/// one gets `403` with `retry-after`.
pub(crate) fn secondary_limit<'h>(
    hub: &'h Hub,
    who: &Who,
    request_id: &str,
) -> Result<InFlight<'h>, Reply> {
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
        return Err(reply);
    }
    Ok(InFlight {
        hub,
        label: who.label.clone(),
    })
}

// ------------------------------------------------------------ faults and latency

/// How an injected fault ends a request.
pub(crate) enum Fault {
    /// Answered (and counted at 0 units).
    Refuse(Reply),
    /// The connection is closed without an answer.
    Drop,
}

/// The fault dice and latency of one request, rolled up front under one lock
/// of the seeded RNG so a run is reproducible.
pub(crate) struct Faults {
    config: FaultConfig,
    outage: bool,
    reset: bool,
    timeout: bool,
    error: Option<u16>,
    latency: Duration,
}

impl Faults {
    pub(crate) fn roll(hub: &Hub, class: Class) -> Self {
        let config = hub.faults.read().clone();
        let since = hub.clock.since_start_secs();
        let outage = config.outage
            || config
                .outage_windows
                .iter()
                .any(|w| since >= w.start_secs && since < w.end_secs);
        let mut rng = hub.rng.lock();
        let lp = *hub.latency.read();
        let range = match class {
            Class::Read => lp.read,
            Class::List => lp.list,
            Class::Write => lp.write,
            Class::Graphql => lp.graphql,
        };
        // the draw order is part of the seed's meaning: keep it
        let reset = config.reset_rate > 0.0 && rng.r#gen::<f64>() < config.reset_rate;
        let timeout = config.timeout_rate > 0.0 && rng.r#gen::<f64>() < config.timeout_rate;
        let error = if config.error_rate > 0.0 && rng.r#gen::<f64>() < config.error_rate {
            Some(if rng.gen_bool(0.5) { 502u16 } else { 503 })
        } else {
            None
        };
        let latency = sample(&mut rng, range);
        drop(rng);
        Self {
            config,
            outage,
            reset,
            timeout,
            error,
            latency,
        }
    }

    /// Before the body is read: an outage answers `503`; an injected reset
    /// closes at once; an injected timeout hangs, then closes.
    pub(crate) async fn before_body(&self, hub: &Hub, label: &str) -> Result<(), Fault> {
        if self.outage {
            return Err(Fault::Refuse(Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: GitHub is experiencing an outage (fakehub injected)",
                "https://www.githubstatus.com",
            )));
        }
        if self.reset {
            hub.stats.record_dropped(label);
            return Err(Fault::Drop);
        }
        if self.timeout {
            hub.stats.record_timeout(label);
            tokio::time::sleep(self.config.hang()).await;
            return Err(Fault::Drop);
        }
        Ok(())
    }

    /// After the body: the latency (slept while holding the secondary-limit
    /// slot, as on GitHub), then an injected `502`/`503`.
    pub(crate) async fn after_body(&self) -> Result<(), Reply> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if let Some(code) = self.error {
            let (status, msg) = if code == 502 {
                (StatusCode::BAD_GATEWAY, "Server Error")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            };
            return Err(Reply::error(status, msg, DOCS));
        }
        Ok(())
    }
}

fn sample(rng: &mut ChaCha8Rng, r: LatencyRange) -> Duration {
    let j = u64::try_from(r.jitter.as_micros()).unwrap_or(0);
    let extra = if j == 0 { 0 } else { rng.gen_range(0..=j) };
    r.base + Duration::from_micros(extra)
}

// ------------------------------------------------------------ API version

/// An `X-GitHub-Api-Version` other than the one the fake serves is a `400`.
pub(crate) fn api_version(headers: &HeaderMap) -> Result<(), Reply> {
    let Some(v) = headers.get("x-github-api-version") else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    if v == API_VERSION {
        return Ok(());
    }
    Err(Reply::error(
        StatusCode::BAD_REQUEST,
        &format!("API version {v} is not supported."),
        "https://docs.github.com/rest/about-the-rest-api/api-versions",
    ))
}

// ------------------------------------------------------------ primary limit

/// The primary limit: reserves one unit up front (atomic with the check, so
/// concurrent requests cannot overshoot) unless the request is `free`.
/// `Ok(true)` means a unit is reserved and must be settled with [`settle`].
pub(crate) fn primary_limit(
    hub: &Hub,
    who: &Who,
    category: Category,
    free: bool,
) -> Result<bool, Reply> {
    if free || hub.limit_for(who, category) == 0 {
        return Ok(false);
    }
    if hub.take(who, category, 1) {
        return Ok(true);
    }
    let msg = if who.authenticated {
        format!("API rate limit exceeded for {}.", who.subject)
    } else {
        format!(
            "API rate limit exceeded for {}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
            who.subject
        )
    };
    Err(Reply::error(
        StatusCode::FORBIDDEN,
        &msg,
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
    ))
}

/// Settles the reserved unit against what the answer costs: an
/// authenticated `304` is free (refunded), a GraphQL query may cost more.
/// Returns the units consumed, for the stats.
pub(crate) fn settle(
    hub: &Hub,
    who: &Who,
    category: Category,
    reserved: bool,
    free: bool,
    reply: &Reply,
) -> u64 {
    let mut cost = if free { 0 } else { reply.cost };
    if reply.status == StatusCode::NOT_MODIFIED && who.authenticated {
        cost = 0;
    }
    if !reserved {
        return 0;
    }
    if cost == 0 {
        hub.refund(who, category, 1);
    } else if cost > 1 {
        let _ = hub.take(who, category, cost - 1);
    }
    cost
}

// ------------------------------------------------------------ conditional requests

/// Conditional requests on a cacheable `200`: computes the per-requester
/// ETag, turns the answer into a `304` when `If-None-Match` matches (or,
/// without one, `If-Modified-Since` is not older than `Last-Modified`), and
/// adds the `etag` header.
pub(crate) fn conditional(headers: &HeaderMap, reply: &mut Reply) {
    if reply.status != StatusCode::OK || reply.etag == EtagKind::None {
        return;
    }
    let tag = etag_for(
        hv(headers, header::ACCEPT),
        hv(headers, header::AUTHORIZATION),
        hv(headers, header::COOKIE),
        &reply.body,
    );
    let not_modified = if let Some(inm) = hv(headers, header::IF_NONE_MATCH) {
        inm_matches(inm, &tag)
    } else if let (Some(ims), Some(lm)) =
        (hv(headers, header::IF_MODIFIED_SINCE), reply.last_modified)
    {
        crate::time::parse_http_date(ims).is_some_and(|t| lm <= t)
    } else {
        false
    };
    if not_modified {
        reply.status = StatusCode::NOT_MODIFIED;
        reply.body = Bytes::new();
    }
    let v = match reply.etag {
        EtagKind::Weak => format!("W/\"{tag}\""),
        _ => format!("\"{tag}\""),
    };
    reply.headers.push(("etag", v));
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

// ------------------------------------------------------------ App JWT

/// The App JWT is accepted only on `/app/…` (and `/rate_limit`).
pub(crate) fn app_scope(p: &Principal, first_segment: Option<&str>) -> Result<(), Reply> {
    if matches!(p, Principal::App)
        && first_segment != Some("app")
        && first_segment != Some("rate_limit")
    {
        return Err(Reply::not_integration());
    }
    Ok(())
}

/// `/app/…` endpoints want the App JWT.
pub(crate) fn require_app(p: &Principal) -> Result<(), Reply> {
    if matches!(p, Principal::App) {
        Ok(())
    } else {
        Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
            DOCS,
        ))
    }
}

// ------------------------------------------------------------ repository access

/// What an endpoint needs of a permission scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
    Admin,
}

/// Whether an integration token's repository set includes repository `ri`.
fn integration_repos(st: &State, p: &Principal, ri: usize) -> bool {
    match p {
        Principal::GithubToken { repo, .. } => *repo == ri,
        Principal::Installation { inst, repos, .. } => {
            st.repos[ri].owner == st.installations[*inst].account
                && repos.as_ref().is_none_or(|r| r.contains(&ri))
        }
        _ => false,
    }
}

/// Whether `p` may see repository `ri` at all; callers answer `404` when
/// not, so private repositories are hidden, never refused.
pub(crate) fn repo_visible(st: &State, p: &Principal, ri: usize) -> bool {
    let private = st.repos[ri].private;
    match p {
        Principal::Anonymous | Principal::App => !private,
        Principal::User { user } => st.user_role(*user, ri) > Role::None,
        Principal::GithubToken { .. } | Principal::Installation { .. } => {
            !private || integration_repos(st, p, ri)
        }
    }
}

/// Checks `need` on `scope` for a visible repository; returns the viewer's
/// role for the `permissions` object (None for anonymous).
pub(crate) fn repo_permission(
    st: &State,
    p: &Principal,
    ri: usize,
    scope: &str,
    need: Need,
) -> Result<Option<Role>, Reply> {
    match p {
        Principal::Anonymous => {
            if need == Need::Read && scope != "administration" {
                Ok(None)
            } else {
                Err(Reply::requires_auth())
            }
        }
        Principal::App => Err(Reply::not_integration()),
        Principal::User { user } => {
            let role = st.user_role(*user, ri);
            let required = match (scope, need) {
                ("administration", _) | (_, Need::Admin) => Role::Admin,
                ("issues", Need::Write) => Role::Read,
                (_, Need::Write) => Role::Write,
                (_, Need::Read) => Role::Read,
            };
            if role >= required {
                Ok(Some(role))
            } else if required == Role::Admin {
                Err(Reply::error(
                    StatusCode::FORBIDDEN,
                    "Must have admin rights to Repository.",
                    DOCS,
                ))
            } else {
                Err(Reply::error(
                    StatusCode::FORBIDDEN,
                    "Must have push access to repository.",
                    DOCS,
                ))
            }
        }
        Principal::GithubToken { perms, .. } | Principal::Installation { perms, .. } => {
            let in_set = integration_repos(st, p, ri);
            let have = if in_set {
                perms.get(scope).copied()
            } else {
                None
            };
            let ok = match need {
                Need::Read => {
                    scope == "metadata" || have.is_some() || (!in_set && scope != "administration")
                }
                Need::Write | Need::Admin => have.is_some_and(|l| l >= Level::Write),
            };
            if !ok {
                return Err(Reply::not_integration());
            }
            let role = if in_set && perms.get("contents").is_some_and(|l| *l >= Level::Write) {
                Role::Write
            } else {
                Role::Read
            };
            Ok(Some(role))
        }
    }
}

/// The viewer's role for a repository's `permissions` object.
pub(crate) fn viewer_role(st: &State, p: &Principal, ri: usize) -> Option<Role> {
    repo_permission(st, p, ri, "metadata", Need::Read)
        .ok()
        .flatten()
}
