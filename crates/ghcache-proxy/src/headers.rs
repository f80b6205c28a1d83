//! Header rules: what is hop-by-hop, what is worth storing, ETags, Link
//! rewriting and Cache-Control parsing.
//!
//! Parsed here rather than with the `headers` crate (0.4), whose typed
//! headers would change answers: its `Cache-Control` matches directive names
//! case-sensitively, drops the whole header when one delta-seconds does not
//! parse (RFC 9111 §1.2.2 wants it stale), reads `no-cache="…"` as an unknown
//! directive and lets a repeated directive's last value win; its
//! `Retry-After` has no accessor; its `If-None-Match` comparison needs the
//! stored ETag re-parsed as a strictly quoted tag on every conditional hit.
//! What it would replace that is right here (dates) is already `httpdate`,
//! which it wraps.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

/// Names the hit path sets or looks up, parsed once: a `&str` name is
/// parsed and validated again on every use.
pub static X_GHCACHE: HeaderName = HeaderName::from_static("x-ghcache");
pub static X_GITHUB_API_VERSION: HeaderName = HeaderName::from_static("x-github-api-version");
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub static X_RATELIMIT_USED: HeaderName = HeaderName::from_static("x-ratelimit-used");
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
pub static X_RATELIMIT_RESOURCE: HeaderName = HeaderName::from_static("x-ratelimit-resource");

/// RFC 9110 §7.6.1 hop-by-hop fields, plus those named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Credentials are marked sensitive wherever they are forwarded: never
/// HPACK-indexed, and shown as `Sensitive` by `Debug`, so a stray log line
/// cannot print one.
pub fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if name == header::AUTHORIZATION || name == header::COOKIE {
            value.set_sensitive(true);
        }
    }
}

/// Response headers the proxy recomputes for every answer it sends, so
/// never stored: `Age` (from the entry's age), `Content-Length` (from the
/// body), the caller's rate limit (from the quota tracker), and its own
/// `X-Ghcache`. `Set-Cookie` is never stored either.
fn recomputed(name: &HeaderName) -> bool {
    name == header::AGE
        || name == header::CONTENT_LENGTH
        || name == header::SET_COOKIE
        || is_per_request(name.as_str())
        || name == "x-ghcache"
}

/// The header block an entry replays: every end-to-end header of the
/// response (RFC 9111 §3.1), values byte for byte, minus what is
/// recomputed; `Content-Length` of the body; `Date` added when the
/// upstream sent none (the time it was received).
pub fn stored_head(
    response: &HeaderMap,
    body_len: usize,
    received: std::time::SystemTime,
) -> HeaderMap {
    let mut head = response.clone();
    strip_hop_by_hop(&mut head);
    let drop: Vec<HeaderName> = head.keys().filter(|n| recomputed(n)).cloned().collect();
    for name in drop {
        head.remove(name);
    }
    head.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    if !head.contains_key(header::DATE) {
        head.insert(header::DATE, value(&httpdate::fmt_http_date(received)));
    }
    head
}

/// The stored block updated by a `304` (RFC 9111 §4.3.4): each header the
/// `304` carries replaces the stored lines of that name, except what is
/// recomputed, what describes the bytes of the body we hold
/// (`Content-Encoding`, `Content-Range`, `Content-MD5`), and the `ETag`,
/// which the caller settles (it identifies the stored response updated).
pub fn merge_not_modified(stored: &HeaderMap, fresh: &HeaderMap) -> HeaderMap {
    let mut merged = stored.clone();
    let mut fresh = fresh.clone();
    strip_hop_by_hop(&mut fresh);
    for name in fresh.keys() {
        if recomputed(name)
            || name == header::ETAG
            || name == header::CONTENT_ENCODING
            || name == header::CONTENT_RANGE
            || name == "content-md5"
        {
            continue;
        }
        merged.remove(name);
        for value in fresh.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

/// Headers that describe the caller's quota at the time of the answer.
pub fn is_per_request(name: &str) -> bool {
    name.starts_with("x-ratelimit-")
}

/// The ETag GitHub would give this requester for `body` (a scheme observed
/// on api.github.com, not documented; docs/FAKEHUB.md): SHA-256 over the
/// Accept, Authorization and Cookie values present, each followed by `:`,
/// then the body; hex.
pub fn synthesize_etag(
    accept: Option<&str>,
    authorization: Option<&str>,
    cookie: Option<&str>,
    body: &[u8],
) -> String {
    let mut hash = Sha256::new();
    for value in [accept, authorization, cookie].into_iter().flatten() {
        hash.update(value.as_bytes());
        hash.update(b":");
    }
    hash.update(body);
    hex::encode(hash.finalize())
}

/// The opaque part of an entity tag, without `W/` and quotes.
pub fn etag_opaque(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"')
}

/// Formats an opaque tag with the weakness of `like`.
pub fn etag_like(like: Option<&str>, opaque: &str) -> String {
    match like {
        Some(tag) if tag.trim().starts_with("W/") => format!("W/\"{opaque}\""),
        _ => format!("\"{opaque}\""),
    }
}

/// RFC 9110 §13.1.2 weak comparison against an `If-None-Match` list.
pub fn if_none_match_matches(if_none_match: &str, etag: &str) -> bool {
    let ours = etag_opaque(etag);
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || etag_opaque(candidate) == ours)
}

/// `url` moved under `proxy_base` when it lies under the upstream base
/// (`https://api.github.com/...`, not `https://api.github.com.evil/...`).
pub fn rewrite_url(url: &str, upstream_base: &str, proxy_base: &str) -> Option<String> {
    let base = upstream_base.trim_end_matches('/');
    match url.strip_prefix(base) {
        Some(tail) if tail.is_empty() || tail.starts_with(['/', '?', '#']) => {
            Some(format!("{proxy_base}{tail}"))
        }
        _ => None,
    }
}

/// Rewrites the URLs of a `Link` value that lie under the upstream base
/// to the proxy's base; every other URL is left as it is.
pub fn rewrite_link(value: &str, upstream_base: &str, proxy_base: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let url = &rest[..close];
        match rewrite_url(url, upstream_base, proxy_base) {
            Some(rewritten) => out.push_str(&rewritten),
            None => out.push_str(url),
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Parsed request or response `Cache-Control` directives we act on.
/// Names are case-insensitive; a repeated directive keeps its first
/// value; a delta-seconds that does not parse counts as 0 (stale), one
/// too large as 2^31 (RFC 9111 §1.2.2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    /// Also set by a field-qualified `no-cache="…"` (treated as unqualified).
    pub no_cache: bool,
    pub private: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// Request only.
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
}

fn delta_seconds(text: &str) -> u64 {
    let text = text.trim().trim_matches('"');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    text.parse::<u64>().unwrap_or(1 << 31).min(1 << 31)
}

/// A list field's members: split on the commas outside quoted strings
/// (RFC 9110 §5.6.1, §5.6.4), so a quoted value's commas stay in it. A
/// value whose quotes do not close is split on every comma, so that a
/// stray quote cannot hide the directives after it.
fn list_members(value: &str) -> impl Iterator<Item = &str> {
    let quotes_close = {
        let mut quoting = Quoting::default();
        value.bytes().for_each(|byte| {
            quoting.separates(byte);
        });
        !quoting.quoted
    };
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut quoting = Quoting::default();
        for (i, byte) in text.bytes().enumerate() {
            let separates = match quotes_close {
                true => quoting.separates(byte),
                false => byte == b',',
            };
            if separates {
                rest = Some(&text[i + 1..]);
                return Some(&text[..i]);
            }
        }
        rest = None;
        Some(text)
    })
}

/// Whether the bytes of a field value read so far are inside a quoted
/// string.
#[derive(Default)]
struct Quoting {
    quoted: bool,
    escaped: bool,
}

impl Quoting {
    /// Reads one byte: true for a comma outside quoted strings.
    fn separates(&mut self, byte: u8) -> bool {
        match byte {
            _ if self.escaped => self.escaped = false,
            b'\\' if self.quoted => self.escaped = true,
            b'"' => self.quoted = !self.quoted,
            b',' => return !self.quoted,
            _ => {}
        }
        false
    }
}

pub fn cache_control(headers: &HeaderMap) -> CacheControl {
    let mut cc = CacheControl::default();
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in list_members(value) {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg)),
                None => (directive.trim(), None),
            };
            let set = |slot: &mut Option<u64>| {
                if slot.is_none() {
                    *slot = Some(arg.map_or(0, delta_seconds));
                }
            };
            // Compared in place: lower-casing a copy would allocate.
            let is = |directive: &str| name.eq_ignore_ascii_case(directive);
            if is("max-age") {
                set(&mut cc.max_age);
            } else if is("s-maxage") {
                set(&mut cc.s_maxage);
            } else if is("min-fresh") {
                set(&mut cc.min_fresh);
            } else if is("no-store") {
                cc.no_store = true;
            } else if is("no-cache") {
                cc.no_cache = true;
            } else if is("private") {
                cc.private = true;
            } else if is("must-revalidate") || is("proxy-revalidate") {
                cc.must_revalidate = true;
            } else if is("only-if-cached") {
                cc.only_if_cached = true;
            }
        }
    }
    // HTTP/1.0 clients.
    if headers
        .get(header::PRAGMA)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-cache"))
        && !headers.contains_key(header::CACHE_CONTROL)
    {
        cc.no_cache = true;
    }
    cc
}

/// Which of the request headers a hit asks about are present, from one
/// pass over the request's names: a hit looks up only those present (most
/// requests carry none of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Present(u16);

impl Present {
    pub const CACHE_CONTROL: Present = Present(1);
    pub const PRAGMA: Present = Present(1 << 1);
    pub const COOKIE: Present = Present(1 << 2);
    pub const RANGE: Present = Present(1 << 3);
    pub const OTP: Present = Present(1 << 4);
    pub const API_VERSION: Present = Present(1 << 5);
    pub const IF_NONE_MATCH: Present = Present(1 << 6);
    pub const IF_MODIFIED_SINCE: Present = Present(1 << 7);
    // Names a stored `Vary` usually leaves in the secondary key.
    pub const X_REQUESTED_WITH: Present = Present(1 << 8);
    pub const ORIGIN: Present = Present(1 << 9);
    pub const ACCEPT_LANGUAGE: Present = Present(1 << 10);
    pub const USER_AGENT: Present = Present(1 << 11);
    /// Every name: nothing is known absent (so everything is looked up).
    #[cfg(test)]
    pub const ALL: Present = Present((1 << 12) - 1);

    /// Matched as a string: the compiler sorts the names by length, so
    /// most of a request's names are told apart by it alone.
    pub fn named(name: &HeaderName) -> Present {
        match name.as_str() {
            "cache-control" => Present::CACHE_CONTROL,
            "pragma" => Present::PRAGMA,
            "cookie" => Present::COOKIE,
            "range" => Present::RANGE,
            "x-github-otp" => Present::OTP,
            "x-github-api-version" => Present::API_VERSION,
            "if-none-match" => Present::IF_NONE_MATCH,
            "if-modified-since" => Present::IF_MODIFIED_SINCE,
            "x-requested-with" => Present::X_REQUESTED_WITH,
            "origin" => Present::ORIGIN,
            "accept-language" => Present::ACCEPT_LANGUAGE,
            "user-agent" => Present::USER_AGENT,
            _ => Present(0),
        }
    }

    /// Whether any of `names` (bits or-ed together) is present.
    pub fn any(self, names: Present) -> bool {
        self.0 & names.0 != 0
    }
}

/// One pass over a request's headers: which of those a hit asks about it
/// carries, and its `Authorization` and `Accept` values (the key's), so
/// that none of them is looked up by name.
pub(crate) struct Scan<'a> {
    pub present: Present,
    pub authorization: Values<'a>,
    pub accept: Values<'a>,
}

/// A key header's values, as far as keying needs them. No `Debug`: it
/// holds the `Authorization` value.
#[derive(Clone, Copy)]
pub(crate) enum Values<'a> {
    Absent,
    One(&'a HeaderValue),
    Repeated,
}

impl<'a> Values<'a> {
    fn and(self, value: &'a HeaderValue) -> Values<'a> {
        match self {
            Values::Absent => Values::One(value),
            _ => Values::Repeated,
        }
    }

    /// As [`exact_single`]: `Ok(None)` when absent, `Err(())` when
    /// repeated or not visible ASCII.
    #[allow(clippy::result_unit_err)]
    pub fn exact(self) -> Result<Option<&'a str>, ()> {
        match self {
            Values::Absent => Ok(None),
            Values::One(value) => value.to_str().map(Some).map_err(|_| ()),
            Values::Repeated => Err(()),
        }
    }
}

impl<'a> Scan<'a> {
    pub fn of(headers: &'a HeaderMap) -> Scan<'a> {
        let mut scan = Scan {
            present: Present::default(),
            authorization: Values::Absent,
            accept: Values::Absent,
        };
        // Every value, so a repeated name is seen as repeated.
        for (name, value) in headers {
            if name == header::AUTHORIZATION {
                scan.authorization = scan.authorization.and(value);
            } else if name == header::ACCEPT {
                scan.accept = scan.accept.and(value);
            } else {
                scan.present = scan.present | Present::named(name);
            }
        }
        scan
    }
}

impl std::ops::BitOr for Present {
    type Output = Present;
    fn bitor(self, other: Present) -> Present {
        Present(self.0 | other.0)
    }
}

/// A key header's one value, exactly: `Ok(None)` when absent, `Err(())`
/// when it is repeated or not visible ASCII (it cannot be keyed exactly).
#[allow(clippy::result_unit_err)]
pub fn exact_single(
    headers: &HeaderMap,
    name: impl header::AsHeaderName,
) -> Result<Option<&str>, ()> {
    headers
        .get_all(name)
        .iter()
        .fold(Values::Absent, Values::and)
        .exact()
}

/// Every value of a header, byte for byte (joined by `\n`, which no value
/// can contain), or `None` when absent.
pub fn exact_bytes(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let mut out = values.next()?.as_bytes().to_vec();
    // Between every two values, empty ones too: `["", "v"]` is not `["v"]`.
    for value in values {
        out.push(b'\n');
        out.extend_from_slice(value.as_bytes());
    }
    Some(out)
}

pub fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_names_exactly_the_headers_a_request_carries() {
        let names = [
            ("cache-control", Present::CACHE_CONTROL),
            ("pragma", Present::PRAGMA),
            ("cookie", Present::COOKIE),
            ("range", Present::RANGE),
            ("x-github-otp", Present::OTP),
            ("x-github-api-version", Present::API_VERSION),
            ("if-none-match", Present::IF_NONE_MATCH),
            ("if-modified-since", Present::IF_MODIFIED_SINCE),
            ("x-requested-with", Present::X_REQUESTED_WITH),
            ("origin", Present::ORIGIN),
            ("accept-language", Present::ACCEPT_LANGUAGE),
            ("user-agent", Present::USER_AGENT),
        ];
        let mut all = Present::default();
        for (name, bit) in names {
            let mut map = HeaderMap::new();
            map.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            // Written as a client might: any case, repeated.
            let upper = HeaderName::from_bytes(name.to_uppercase().as_bytes()).unwrap();
            map.append(upper.clone(), HeaderValue::from_static("a"));
            map.append(upper, HeaderValue::from_static("b"));
            let present = Scan::of(&map).present;
            assert_eq!(present, bit, "{name}");
            assert!(present.any(bit), "{name}");
            all = all | bit;
        }
        assert_eq!(all, Present::ALL, "every bit is one name's");
        // All of them in one request, among others, in either order.
        let mut every = HeaderMap::new();
        for (name, _) in names.iter().chain(names.iter().rev()) {
            every.insert(header::HOST, HeaderValue::from_static("x"));
            every.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
            every.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        assert_eq!(Scan::of(&every).present, Present::ALL);
        let mut reversed = HeaderMap::new();
        for (name, _) in names.iter().rev() {
            reversed.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(Scan::of(&reversed).present, Present::ALL);
        let mut others = HeaderMap::new();
        for name in [
            "accept",
            "authorization",
            "host",
            "x-github-otp-x",
            "set-cookie",
            "user-agent-x",
        ] {
            others.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(Scan::of(&others).present, Present::default());
    }

    #[test]
    fn synthesis_follows_the_observed_scheme() {
        let mut h = Sha256::new();
        h.update(b"application/json:token abc:{}");
        let expected = hex::encode(h.finalize());
        assert_eq!(
            synthesize_etag(Some("application/json"), Some("token abc"), None, b"{}"),
            expected
        );
    }

    #[test]
    fn weak_comparison_and_lists() {
        assert!(if_none_match_matches("W/\"abc\"", "\"abc\""));
        assert!(if_none_match_matches("\"x\", W/\"abc\"", "W/\"abc\""));
        assert!(if_none_match_matches("*", "\"abc\""));
        assert!(!if_none_match_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn hop_by_hop_including_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, value("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", value("1"));
        h.insert("keep-alive", value("timeout=5"));
        h.insert(header::TRANSFER_ENCODING, value("chunked"));
        h.insert(header::ACCEPT, value("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn link_rewriting_stays_under_the_upstream_base() {
        let up = "https://api.github.com";
        let proxy = "http://127.0.0.1:8787";
        for (link, expected) in [
            (
                "<https://api.github.com.evil.example/x>; rel=\"next\"",
                "<https://api.github.com.evil.example/x>; rel=\"next\"",
            ),
            ("<https://api.github.comx>", "<https://api.github.comx>"),
            (
                "<https://other.example/https://api.github.com/x>",
                "<https://other.example/https://api.github.com/x>",
            ),
            (
                "<https://api.github.com/a?page=2>; rel=\"next\", <https://api.github.com/a?page=9>; rel=\"last\"",
                "<http://127.0.0.1:8787/a?page=2>; rel=\"next\", <http://127.0.0.1:8787/a?page=9>; rel=\"last\"",
            ),
            ("<https://api.github.com/a", "<https://api.github.com/a"),
        ] {
            assert_eq!(rewrite_link(link, up, proxy), expected, "{link}");
        }
    }

    #[test]
    fn forwarded_credentials_are_sensitive() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value("token ghp_secret"));
        h.insert(header::ACCEPT, value("application/json"));
        mark_sensitive(&mut h);
        assert!(h[header::AUTHORIZATION].is_sensitive());
        assert!(!h[header::ACCEPT].is_sensitive());
        assert!(!format!("{h:?}").contains("ghp_secret"));
    }

    #[test]
    fn exact_bytes_keeps_every_value_apart_empty_ones_too() {
        let mut h = HeaderMap::new();
        assert_eq!(exact_bytes(&h, header::ACCEPT), None);
        h.append(header::ACCEPT, value(""));
        assert_eq!(exact_bytes(&h, header::ACCEPT).unwrap(), b"");
        h.append(header::ACCEPT, value("v"));
        assert_eq!(exact_bytes(&h, header::ACCEPT).unwrap(), b"\nv");
        h.append(header::ACCEPT, value(""));
        assert_eq!(exact_bytes(&h, header::ACCEPT).unwrap(), b"\nv\n");
    }

    #[test]
    fn a_scan_reads_the_key_headers_as_exact_single_does() {
        let mut maps = vec![HeaderMap::new()];
        let values = [
            value("token a"),
            value("application/vnd.github+json"),
            value(""),
            HeaderValue::from_bytes(b"token\xa0x").unwrap(),
        ];
        for name in [header::AUTHORIZATION, header::ACCEPT] {
            for first in &values {
                let mut one = HeaderMap::new();
                one.insert(header::USER_AGENT, value("x"));
                one.append(name.clone(), first.clone());
                maps.push(one.clone());
                for second in &values {
                    let mut two = one.clone();
                    two.append(name.clone(), second.clone());
                    maps.push(two);
                }
            }
        }
        // Both at once, repeated apart by other names.
        let mut both = HeaderMap::new();
        both.append(header::ACCEPT, value("a"));
        both.append(header::COOKIE, value("c"));
        both.append(header::AUTHORIZATION, value("token a"));
        both.append(header::ACCEPT, value("b"));
        maps.push(both);
        for map in &maps {
            let scan = Scan::of(map);
            assert_eq!(
                scan.authorization.exact(),
                exact_single(map, header::AUTHORIZATION),
                "{map:?}"
            );
            assert_eq!(
                scan.accept.exact(),
                exact_single(map, header::ACCEPT),
                "{map:?}"
            );
        }
    }

    #[test]
    fn exact_key_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(exact_single(&h, header::AUTHORIZATION), Ok(None));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"token\xa0x").unwrap(),
        );
        assert_eq!(exact_single(&h, header::AUTHORIZATION), Err(()));
        h.insert(header::AUTHORIZATION, value("token a"));
        assert_eq!(exact_single(&h, header::AUTHORIZATION), Ok(Some("token a")));
        h.append(header::AUTHORIZATION, value("token b"));
        assert_eq!(exact_single(&h, header::AUTHORIZATION), Err(()));
        assert_eq!(
            exact_bytes(&h, header::AUTHORIZATION).unwrap(),
            b"token a\ntoken b"
        );
    }

    #[test]
    fn link_rewriting() {
        let link = "<https://api.github.com/repositories/1/pulls?page=2>; rel=\"next\"";
        assert_eq!(
            rewrite_link(link, "https://api.github.com", "http://127.0.0.1:8787"),
            "<http://127.0.0.1:8787/repositories/1/pulls?page=2>; rel=\"next\""
        );
    }

    #[test]
    fn cache_control_directives() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            value("private, max-age=60, s-maxage=60"),
        );
        assert_eq!(cache_control(&h).max_age, Some(60));
        h.insert(header::CACHE_CONTROL, value("no-cache"));
        assert!(cache_control(&h).no_cache);
    }

    /// Where the `headers` crate's `CacheControl` would differ (and why it
    /// is not used): one malformed value there drops the whole field.
    #[test]
    fn a_bad_directive_loses_no_other_and_names_are_case_blind() {
        let parse = |text: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CACHE_CONTROL, value(text));
            cache_control(&h)
        };
        let cc = parse("no-store, max-age=lolz");
        assert!(cc.no_store);
        assert_eq!(cc.max_age, Some(0), "malformed means stale");
        assert_eq!(parse("max-age=99999999999999999999").max_age, Some(1 << 31));
        assert!(parse("No-Store").no_store);
        assert!(parse(r#"private="Authorization""#).private);
        assert!(parse(r#"no-cache="Set-Cookie""#).no_cache);
        // A quoted value's commas are its own.
        let quoted = parse(r#"community="UCI, no-store, max-age=9", max-age=5"#);
        assert!(!quoted.no_store);
        assert_eq!(quoted.max_age, Some(5));
        let escaped = parse(r#"x="a\", no-store", max-age=7"#);
        assert!(!escaped.no_store);
        assert_eq!(escaped.max_age, Some(7));
        // A quote that never closes hides nothing after it.
        let stray = parse(r#"x="a, no-store, max-age=3"#);
        assert!(stray.no_store);
        assert_eq!(stray.max_age, Some(3));
    }
}
