//! The upstream: reachable, the token accepted and its remaining quota
//! (`GET /rate_limit` through octocrab, which GitHub does not count), and
//! this host's clock against the upstream's `Date`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::RateLimit;
use secrecy::{ExposeSecret, SecretString};

use crate::{Finding, Level, finding};

/// Past this, GitHub refuses App JWTs (`iat`/`exp` checked against its
/// clock) and freshness judged from `Date`/`Age` goes wrong.
pub const MAX_SKEW_SECS: i64 = 30;

const UPSTREAM_FIX: &str = "check the network path to the upstream (DNS, firewall, HTTPS_PROXY) and GHCACHE_UPSTREAM / --upstream (https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server)";

fn client(base: &str, token: Option<&SecretString>) -> Result<Octocrab, String> {
    let builder = Octocrab::builder()
        .base_uri(base)
        .map_err(|e| format!("not a usable base URL ({e})"))?;
    let builder = match token {
        Some(t) => builder.personal_token(t.expose_secret().to_owned()),
        None => builder,
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the client ({e})"))
}

/// The innermost cause, which names what went wrong (connection refused,
/// DNS failure, certificate…), without URLs' credentials (the configured
/// upstream has none) or the token (never part of an error).
fn error_kind(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    let mut text = cause.to_string();
    while let Some(next) = cause.source() {
        cause = next;
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return format!("{:?}: {io}", io.kind());
        }
        text = cause.to_string();
    }
    text
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) async fn findings(
    base: &str,
    token: Option<&SecretString>,
    timeout: Duration,
) -> Vec<Finding> {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/rate_limit");
    let github = match client(base, token) {
        Ok(c) => c,
        Err(e) => {
            return vec![finding(
                Level::Fail,
                "upstream",
                format!("upstream {base}: {e}"),
                UPSTREAM_FIX,
            )];
        }
    };
    let response = match tokio::time::timeout(timeout, github._get(url.as_str())).await {
        Err(_) => {
            return vec![finding(
                Level::Fail,
                "upstream",
                format!(
                    "upstream {url}: no answer within {} ms",
                    timeout.as_millis()
                ),
                UPSTREAM_FIX,
            )];
        }
        Ok(Err(e)) => {
            return vec![finding(
                Level::Fail,
                "upstream",
                format!("upstream {url} unreachable: {}", error_kind(&e)),
                UPSTREAM_FIX,
            )];
        }
        Ok(Ok(r)) => r,
    };
    let received = unix_now();
    let status = response.status();
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = vec![quota(&url, status, &body, token.is_some(), received)];
    out.push(clock(base, date, received));
    out
}

fn quota(
    url: &str,
    status: http::StatusCode,
    body: &[u8],
    authenticated: bool,
    now: i64,
) -> Finding {
    let who = if authenticated {
        "the token"
    } else {
        "anonymous requests from this IP (no GITHUB_TOKEN given)"
    };
    if status == http::StatusCode::UNAUTHORIZED {
        return finding(
            Level::Fail,
            "upstream",
            format!("{url} answered 401: the upstream rejects the token (bad credentials)"),
            "the token in GITHUB_TOKEN is expired, revoked or for another GitHub host: use a valid one for this upstream",
        );
    }
    if !status.is_success() {
        return finding(
            Level::Fail,
            "upstream",
            format!("{url} answered {status}, not GitHub's rate-limit document"),
            UPSTREAM_FIX,
        );
    }
    let Ok(limits) = serde_json::from_slice::<RateLimit>(body) else {
        return finding(
            Level::Fail,
            "upstream",
            format!("{url} answered {status} with a body that is not GitHub's rate-limit document"),
            UPSTREAM_FIX,
        );
    };
    let core = &limits.resources.core;
    let reset_in = (i64::try_from(core.reset).unwrap_or(i64::MAX) - now).max(0);
    let message = format!(
        "{} reachable; {who}: core quota {}/{} remaining, resets in {} min",
        url.trim_end_matches("/rate_limit"),
        core.remaining,
        core.limit,
        (reset_in + 59) / 60
    );
    if core.remaining == 0 {
        finding(
            if authenticated {
                Level::Fail
            } else {
                Level::Warn
            },
            "upstream",
            message,
            "wait for the reset or use another token; meanwhile the daemon serves what it holds and replays GitHub's refusal",
        )
    } else if core.remaining.saturating_mul(10) < core.limit {
        finding(
            Level::Warn,
            "upstream",
            message,
            "less than 10% left: find the heavy caller with `ghcache stats`",
        )
    } else if !authenticated {
        finding(
            Level::Info,
            "upstream",
            message,
            "set GITHUB_TOKEN when running doctor to check the token your jobs use",
        )
    } else {
        finding(Level::Ok, "upstream", message, "")
    }
}

fn clock(base: &str, date: Option<i64>, now: i64) -> Finding {
    let Some(date) = date else {
        return finding(
            Level::Warn,
            "clock",
            format!("{base} sent no Date header: clock skew not checked"),
            "",
        );
    };
    let skew = now - date;
    let direction = if skew > 0 { "ahead of" } else { "behind" };
    if skew.abs() > MAX_SKEW_SECS {
        finding(
            Level::Fail,
            "clock",
            format!(
                "this host's clock is {} s {direction} the upstream's (Date header of {base})",
                skew.abs()
            ),
            "synchronise the clock (NTP: `timedatectl set-ntp true`, chrony): GitHub rejects App JWTs whose iat/exp its own clock disputes and OIDC tokens judged on skewed time, and cache freshness is computed from Date and Age",
        )
    } else {
        finding(
            Level::Ok,
            "clock",
            format!(
                "clock within {} s of the upstream's (limit {MAX_SKEW_SECS} s)",
                skew.abs()
            ),
            "",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_beyond_the_limit_fails_either_way() {
        assert_eq!(clock("u", Some(1000), 1010).level, Level::Ok);
        let ahead = clock("u", Some(1000), 1000 + MAX_SKEW_SECS + 1);
        assert_eq!(ahead.level, Level::Fail);
        assert!(ahead.message.contains("ahead of") && ahead.fix.contains("NTP"));
        assert!(clock("u", Some(1000), 900).message.contains("behind"));
        assert_eq!(clock("u", None, 0).level, Level::Warn);
    }

    #[test]
    fn quota_levels() {
        let doc = |remaining: u64| {
            serde_json::to_vec(&serde_json::json!({
                "resources": {"core": {"limit": 5000, "used": 5000 - remaining, "remaining": remaining, "reset": 3600},
                              "search": {"limit": 30, "used": 0, "remaining": 30, "reset": 60}},
                "rate": {"limit": 5000, "used": 5000 - remaining, "remaining": remaining, "reset": 3600},
            }))
            .expect("json")
        };
        let ok = http::StatusCode::OK;
        let f = quota("u", ok, &doc(4000), true, 0);
        assert_eq!(f.level, Level::Ok);
        assert!(f.message.contains("4000/5000") && f.message.contains("60 min"));
        assert_eq!(quota("u", ok, &doc(100), true, 0).level, Level::Warn);
        assert_eq!(quota("u", ok, &doc(0), true, 0).level, Level::Fail);
        assert_eq!(quota("u", ok, &doc(0), false, 0).level, Level::Warn);
        assert_eq!(quota("u", ok, b"<html>", true, 0).level, Level::Fail);
        let bad = quota("u", http::StatusCode::UNAUTHORIZED, b"{}", true, 0);
        assert_eq!(bad.level, Level::Fail);
        assert!(bad.message.contains("401") && bad.fix.contains("GITHUB_TOKEN"));
    }
}
