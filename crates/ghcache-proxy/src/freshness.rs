//! RFC 9111 rules as a shared cache partitioned per credential applies
//! them: which responses may be stored, their freshness lifetime, their
//! age, and the `Vary` secondary key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName};

use crate::headers::{CacheControl, Present, exact_bytes, header_str};

/// Statuses whose responses are stored. 404 and 410 are not: GitHub says
/// 404 both for "absent" and for "not yours", a resource may appear at any
/// moment (created by another host), and GitHub's error answers carry no
/// validator, so a cached error could only be replayed blind, never
/// revalidated for free. 201, 202 (`/stats/*` while GitHub computes), 204
/// and every other status answer one request only.
const STORABLE: [u16; 4] = [200, 203, 301, 308];

/// Request headers the primary key or the partition already covers, or
/// that are never forwarded upstream (so the answer cannot depend on them):
/// a `Vary` naming them adds nothing to the secondary key.
const COVERED: [&str; 13] = [
    "accept",
    "authorization",
    "x-github-api-version",
    "cookie",
    "x-github-otp",
    "accept-encoding",
    "host",
    "if-none-match",
    "if-modified-since",
    "cache-control",
    "pragma",
    "content-length",
    "connection",
];

/// Why a response is not stored, or `None` when it may be.
pub(crate) fn refuse_to_store(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    anonymous: bool,
) -> Option<&'static str> {
    if !STORABLE.contains(&status.as_u16()) {
        return Some("status is not reusable");
    }
    if cc.no_store {
        return Some("no-store");
    }
    // `private` is for one user's cache: a token's own partition is that,
    // the anonymous partition (every client of this host) is not.
    if cc.private && anonymous {
        return Some("private response to an anonymous request");
    }
    if vary_names(headers).any(|name| name == "*") {
        return Some("Vary: *");
    }
    None
}

/// The explicit freshness lifetime (RFC 9111 §4.2.1, shared cache):
/// `s-maxage`, else `max-age`, else `Expires` minus `Date`. An `Expires`
/// that does not parse means already expired.
pub(crate) fn explicit_lifetime(headers: &HeaderMap, cc: &CacheControl) -> Option<Duration> {
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(secs));
    }
    let expires = headers.get(header::EXPIRES)?;
    let Some(expires) = expires.to_str().ok().and_then(parse_date) else {
        return Some(Duration::ZERO);
    };
    let date = header_str(headers, header::DATE)
        .and_then(parse_date)
        .unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The corrected initial age of a response (RFC 9111 §4.2.3), in ms:
/// the larger of its apparent age (`Date` to receipt) and its `Age` plus
/// the time the exchange took.
/// An `Age` that is not exactly one non-negative integer makes the
/// response stale.
pub(crate) fn initial_age_ms(headers: &HeaderMap, sent_at_ms: u64, received_at_ms: u64) -> u64 {
    let Some(age_value) = age_value_secs(headers) else {
        return STALE_AGE_MS;
    };
    let age_value = age_value.saturating_mul(1000);
    let apparent = header_str(headers, header::DATE)
        .and_then(parse_date)
        .map_or(0, |date| received_at_ms.saturating_sub(unix_ms(date)));
    let corrected = age_value.saturating_add(received_at_ms.saturating_sub(sent_at_ms));
    apparent.max(corrected)
}

/// An age past any freshness lifetime (lifetimes are capped far below).
const STALE_AGE_MS: u64 = 1 << 50;

/// The `Age` in seconds: 0 when absent, `None` when malformed (repeated,
/// a list, signed, fractional, with a suffix or parameter).
fn age_value_secs(headers: &HeaderMap) -> Option<u64> {
    let mut lines = headers.get_all(header::AGE).iter();
    let Some(first) = lines.next() else {
        return Some(0);
    };
    if lines.next().is_some() {
        return None;
    }
    let text = first.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // RFC 9111 §1.2.2: too large to represent means 2^31.
    Some(text.parse::<u64>().unwrap_or(1 << 31).min(1 << 31))
}

pub(crate) fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The field names a response's `Vary` lines list, lower-cased.
pub(crate) fn vary_names(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
}

/// The secondary key of a response stored for this request: the request's
/// values of the headers `Vary` names that the key does not cover.
pub(crate) fn secondary_key(
    response: &HeaderMap,
    request: &HeaderMap,
) -> Vec<(String, Option<String>)> {
    let mut key: Vec<(String, Option<String>)> = Vec::new();
    for name in vary_names(response) {
        if COVERED.contains(&name.as_str()) || key.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = exact_bytes(request, name.as_str())
            .map(|bytes| bytes.iter().map(|&b| char::from(b)).collect());
        key.push((name, value));
    }
    key
}

/// A lower-case field name `HeaderName` accepts (RFC 9110 §5.1 token).
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~')
        })
}

/// `X-Requested-With`, which every `Vary` of GitHub's JSON answers names.
static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// The names a stored secondary key usually holds (those `Vary` names that
/// [`COVERED`] leaves), parsed once: looked up by `&str`, a name is
/// validated and parsed again on every hit.
/// With each, its bit in [`Present`]: a request's scan says whether it
/// carries the name at all.
fn usual_name(name: &str) -> Option<(&'static HeaderName, Present)> {
    let known = match name {
        "x-requested-with" => &X_REQUESTED_WITH,
        "origin" => &header::ORIGIN,
        "accept-language" => &header::ACCEPT_LANGUAGE,
        "user-agent" => &header::USER_AGENT,
        _ => return None,
    };
    Some((known, Present::named(known)))
}

/// Whether this request selects a response stored with `key`. `present`
/// is the request's scan ([`crate::headers::Scan`]): a usual name it
/// lacks is not looked up.
pub(crate) fn secondary_key_matches(
    key: &[(String, Option<String>)],
    request: &HeaderMap,
    present: Present,
) -> bool {
    key.iter().all(|(name, stored)| {
        // `Vary: *` matches no request (RFC 9111 §4.1).
        if name == "*" {
            return false;
        }
        let mut values = match usual_name(name) {
            Some((_, bit)) if !present.any(bit) => return stored.is_none(),
            Some((known, _)) => request.get_all(known).iter(),
            // Looked up by `&str`: parsing a custom name into a
            // `HeaderName` would allocate on every hit.
            None if is_field_name(name) => request.get_all(name.as_str()).iter(),
            None => return false,
        };
        match stored {
            None => values.next().is_none(),
            Some(stored) if stored.is_ascii() => {
                // The request's lines joined by '\n': here bytes and chars
                // agree, so compared as slices.
                let mut rest = stored.as_bytes();
                let mut first = true;
                for value in values {
                    if !first {
                        let Some((b'\n', after)) = rest.split_first() else {
                            return false;
                        };
                        rest = after;
                    }
                    first = false;
                    let Some(after) = rest.strip_prefix(value.as_bytes()) else {
                        return false;
                    };
                    rest = after;
                }
                !first && rest.is_empty()
            }
            Some(stored) => {
                // The request's lines joined by '\n', compared without
                // allocating: stored chars are the bytes as Latin-1.
                let mut stored = stored.chars();
                let mut first = true;
                for value in values {
                    if !first && stored.next() != Some('\n') {
                        return false;
                    }
                    first = false;
                    for &b in value.as_bytes() {
                        if stored.next() != Some(char::from(b)) {
                            return false;
                        }
                    }
                }
                !first && stored.next().is_none()
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Scan;

    /// As a hit asks (with the request's scan), checked against looking
    /// every name up (nothing known absent).
    fn matches(key: &[(String, Option<String>)], request: &HeaderMap) -> bool {
        let scanned = secondary_key_matches(key, request, Scan::of(request).present);
        let looked_up = secondary_key_matches(key, request, Present::ALL);
        assert_eq!(scanned, looked_up, "{key:?} {request:?}");
        scanned
    }
    use crate::headers::{cache_control, value};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                value(v),
            );
        }
        h
    }

    #[test]
    fn only_reusable_statuses_and_never_vary_star() {
        let plain = map(&[]);
        let cc = CacheControl::default();
        for code in [200, 203, 301, 308] {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(refuse_to_store(status, &plain, &cc, false), None, "{code}");
        }
        for code in [201, 202, 204, 302, 404, 410, 500] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(
                refuse_to_store(status, &plain, &cc, false).is_some(),
                "{code}"
            );
        }
        let star = map(&[("vary", "Accept"), ("vary", "*")]);
        assert!(refuse_to_store(StatusCode::OK, &star, &cc, false).is_some());
        let private = map(&[("cache-control", "private, max-age=60")]);
        let pcc = cache_control(&private);
        assert!(refuse_to_store(StatusCode::OK, &private, &pcc, true).is_some());
        assert_eq!(refuse_to_store(StatusCode::OK, &private, &pcc, false), None);
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires() {
        let h = map(&[("cache-control", "max-age=60, s-maxage=5")]);
        assert_eq!(
            explicit_lifetime(&h, &cache_control(&h)),
            Some(Duration::from_secs(5))
        );
        let h = map(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
        ]);
        assert_eq!(
            explicit_lifetime(&h, &cache_control(&h)),
            Some(Duration::from_secs(60))
        );
        let h = map(&[("expires", "0")]);
        assert_eq!(
            explicit_lifetime(&h, &cache_control(&h)),
            Some(Duration::ZERO)
        );
        assert_eq!(explicit_lifetime(&map(&[]), &CacheControl::default()), None);
    }

    #[test]
    fn upstream_age_counts_and_a_malformed_one_means_stale() {
        let h = map(&[("age", "7200")]);
        assert_eq!(initial_age_ms(&h, 1_000, 1_500), 7_200_500);
        for bad in ["abc", "-7200", "7200.0", "7200a", "0, 7200", "7200;x=1"] {
            assert_eq!(
                initial_age_ms(&map(&[("age", bad)]), 0, 0),
                STALE_AGE_MS,
                "{bad}"
            );
        }
        assert_eq!(
            initial_age_ms(&map(&[("age", "0"), ("age", "7200")]), 0, 0),
            STALE_AGE_MS
        );
    }

    #[test]
    fn secondary_key_skips_covered_headers_and_compares_exactly() {
        let response = map(&[
            ("vary", "Accept, Authorization, Cookie, X-GitHub-OTP"),
            ("vary", "Accept-Encoding, Accept, X-Requested-With, Foo"),
        ]);
        let request = map(&[("foo", "a"), ("foo", "b"), ("accept", "x")]);
        let key = secondary_key(&response, &request);
        assert_eq!(
            key,
            vec![
                ("x-requested-with".to_owned(), None),
                ("foo".to_owned(), Some("a\nb".to_owned()))
            ]
        );
        assert!(matches(&key, &request));
        assert!(!matches(&key, &map(&[("foo", "a")])));
        assert!(!matches(
            &key,
            &map(&[("foo", "a"), ("foo", "b"), ("x-requested-with", "1")])
        ));
        assert!(!matches(&key, &map(&[])));
    }

    #[test]
    fn usual_names_match_as_any_other_name() {
        for name in [
            "x-requested-with",
            "origin",
            "accept-language",
            "user-agent",
        ] {
            let (known, bit) = usual_name(name).unwrap();
            assert_eq!(*known, HeaderName::from_bytes(name.as_bytes()).unwrap());
            assert_ne!(bit, Present::default(), "{name} has a bit of its own");
            let with = map(&[(name, "a"), (name, "b")]);
            let present = vec![(name.to_owned(), Some("a\nb".to_owned()))];
            let absent = vec![(name.to_owned(), None)];
            assert!(matches(&present, &with), "{name}");
            assert!(!matches(&present, &map(&[(name, "a")])));
            assert!(!matches(&present, &map(&[])));
            assert!(matches(&absent, &map(&[])));
            assert!(!matches(&absent, &with));
            // A name as no request can carry it is never matched.
            let upper = vec![(name.to_uppercase(), None)];
            assert!(!matches(&upper, &map(&[])));
        }
        assert_eq!(usual_name("foo"), None);
    }

    #[test]
    fn vary_star_matches_no_request() {
        let response = map(&[("vary", "Accept, *")]);
        for request in [map(&[]), map(&[("x-requested-with", "a")])] {
            let key = secondary_key(&response, &request);
            assert!(!matches(&key, &request), "{key:?}");
        }
    }
}
