//! Heads of held entries, ready to send, in a small table per worker
//! thread. A hit's head is the stored block with its links pointed at the
//! client's base, plus `Age` and the caller's quota. Built from the shared
//! stored block on every hit, that costs hashed inserts, a re-allocation,
//! and reference counts that all worker threads bump on the same cache
//! lines. A thread's own copy, with a slot for each header that changes
//! per answer, makes a hit one clone of memory that thread owns and a few
//! writes in place.
//!
//! Bounded: [`SLOTS`] heads per worker thread, outside the store's limit.

use std::cell::RefCell;
use std::sync::Arc;

use ghcache_store::StoredHead;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::headers::{
    X_GHCACHE, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET, X_RATELIMIT_RESOURCE,
    X_RATELIMIT_USED,
};
use crate::quota::Quota;

/// Heads kept per worker thread.
const SLOTS: usize = 64;

/// GitHub's own header names (the standard ones are static already).
static COMMON_NAMES: [HeaderName; 8] = [
    HeaderName::from_static("x-github-request-id"),
    HeaderName::from_static("x-github-api-version-selected"),
    HeaderName::from_static("x-github-media-type"),
    HeaderName::from_static("x-oauth-scopes"),
    HeaderName::from_static("x-accepted-oauth-scopes"),
    HeaderName::from_static("github-authentication-token-expiration"),
    HeaderName::from_static("x-github-sso"),
    HeaderName::from_static("x-poll-interval"),
];

/// Values GitHub sends on most answers.
static COMMON_VALUES: [&str; 17] = [
    "application/json; charset=utf-8",
    "private, max-age=60, s-maxage=60",
    "public, max-age=60, s-maxage=60",
    "Accept, Authorization, Cookie, X-GitHub-OTP",
    "Accept-Encoding, Accept, X-Requested-With",
    "Accept",
    "2022-11-28",
    "github.v3; format=json",
    "deny",
    "nosniff",
    "0",
    "*",
    "max-age=31536000; includeSubdomains; preload",
    "origin-when-cross-origin, strict-origin-when-cross-origin",
    "default-src 'none'",
    "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, \
     X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, \
     X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, \
     X-GitHub-Request-Id, Deprecation, Sunset",
    "GitHub.com",
];

/// The per-answer headers in the order [`Slots::fill`] writes them.
fn per_answer() -> [&'static HeaderName; 6] {
    [
        &header::AGE,
        &X_RATELIMIT_LIMIT,
        &X_RATELIMIT_REMAINING,
        &X_RATELIMIT_USED,
        &X_RATELIMIT_RESET,
        &X_RATELIMIT_RESOURCE,
    ]
}

/// Where a prepared head takes its per-answer values: positions in
/// [`HeaderMap::iter_mut`] order. `None` for a head that has no slots
/// (the caller's quota is unknown): the values are inserted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slots(Option<[usize; 6]>);

impl Slots {
    /// Writes `age` and, when known, the caller's quota into `headers` (a
    /// head from [`head_for`] with these slots).
    pub fn fill(
        self,
        headers: &mut HeaderMap,
        age: HeaderValue,
        quota: Option<(Quota, &'static str)>,
    ) {
        let (at, (quota, resource)) = match (self.0, quota) {
            (Some(at), Some(quota)) => (at, quota),
            (_, quota) => {
                headers.insert(header::AGE, age);
                if let Some((quota, resource)) = quota {
                    crate::respond::quota_headers(headers, quota, resource);
                }
                return;
            }
        };
        let [limit, remaining, used, reset] = quota.values;
        let mut values = [
            Some(age),
            Some(limit),
            Some(remaining),
            Some(used),
            Some(reset),
            Some(HeaderValue::from_static(resource)),
        ];
        let last = at.iter().copied().max().unwrap_or(0);
        for (i, (_, value)) in headers.iter_mut().enumerate().take(last + 1) {
            if let Some(k) = at.iter().position(|&slot| slot == i)
                && let Some(new) = values[k].take()
            {
                *value = new;
            }
        }
    }
}

struct Prepared {
    /// Which stored block this was made from (held, so it is not reused).
    stored: StoredHead,
    base: Arc<str>,
    /// This thread's copy, with a slot for each per-answer header.
    head: HeaderMap,
    slots: Slots,
    /// The rewritten block as stored, for a caller whose quota is unknown
    /// (and so gets no quota headers of ours).
    plain: HeaderMap,
}

/// A thread's prepared heads, found by a scan of their blocks' addresses
/// and replaced in turn.
struct Table {
    addresses: [usize; SLOTS],
    heads: [Option<Prepared>; SLOTS],
    next: usize,
}

thread_local! {
    static TABLE: RefCell<Table> = const {
        RefCell::new(Table { addresses: [0; SLOTS], heads: [const { None }; SLOTS], next: 0 })
    };
}

/// The head to send for `stored` to a client that reached us at `base`,
/// and where its per-answer values go. `quota_known`: whether the caller's
/// quota will be filled in. `rewrite` points the links of a copy of the
/// stored block at `base`; it runs once per thread, entry and base while
/// the table holds their head.
pub(crate) fn head_for(
    stored: &StoredHead,
    base: &Arc<str>,
    quota_known: bool,
    rewrite: impl FnOnce(&mut HeaderMap),
) -> (HeaderMap, Slots) {
    let address = stored.address();
    TABLE.with_borrow_mut(|table| {
        let held = (0..SLOTS).find(|&i| {
            table.addresses[i] == address
                && table.heads[i].as_ref().is_some_and(|p| {
                    p.stored.is_same(stored) && (Arc::ptr_eq(&p.base, base) || *p.base == **base)
                })
        });
        let pick = |p: &Prepared| match quota_known {
            true => (p.head.clone(), p.slots),
            false => (p.plain.clone(), Slots(None)),
        };
        if let Some(p) = held.and_then(|i| table.heads[i].as_ref()) {
            return pick(p);
        }
        let prepared = prepare(stored, base, rewrite);
        let sent = pick(&prepared);
        let i = table.next;
        table.next = (i + 1) % SLOTS;
        table.addresses[i] = address;
        table.heads[i] = Some(prepared);
        sent
    })
}

fn prepare(stored: &StoredHead, base: &Arc<str>, rewrite: impl FnOnce(&mut HeaderMap)) -> Prepared {
    let mut plain = stored.map().clone();
    rewrite(&mut plain);
    let mut head = HeaderMap::with_capacity(plain.len() + per_answer().len() + 1);
    // Copied, not cloned: this thread's values count their own references,
    // and GitHub's usual names and values are static (no count at all).
    for (name, value) in &plain {
        let name = COMMON_NAMES
            .iter()
            .find(|common| *common == name)
            .cloned()
            .or_else(|| HeaderName::from_bytes(name.as_str().as_bytes()).ok())
            .unwrap_or_else(|| name.clone());
        let mut copy = COMMON_VALUES
            .iter()
            .find(|common| common.as_bytes() == value.as_bytes())
            .map(|common| HeaderValue::from_static(common))
            .or_else(|| HeaderValue::from_bytes(value.as_bytes()).ok())
            .unwrap_or_else(|| value.clone());
        copy.set_sensitive(value.is_sensitive());
        head.append(name, copy);
    }
    // Inserted as a hit inserts them: in place of held values (one value,
    // where the first was), else last. The exit overwrites `X-Ghcache`.
    for name in per_answer() {
        head.insert(name.clone(), HeaderValue::from_static("0"));
    }
    head.insert(X_GHCACHE.clone(), HeaderValue::from_static("HIT"));
    let names: Vec<&HeaderName> = head.iter().map(|(name, _)| name).collect();
    let at = per_answer().map(|name| names.iter().position(|n| *n == name));
    let slots = Slots(
        at.iter()
            .all(Option::is_some)
            .then(|| at.map(|i| i.unwrap_or(0))),
    );
    Prepared {
        stored: stored.clone(),
        base: base.clone(),
        head,
        slots,
        plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(pairs: &[(&str, &str)]) -> StoredHead {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        StoredHead::new(map)
    }

    fn quota(remaining: u64) -> Quota {
        Quota::new(5000, remaining, 5000 - remaining, 1_700_000_000)
    }

    /// The lines sent, by name; a name's values in the order sent (where
    /// the added headers go among the held ones does not matter).
    fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = map
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs
    }

    /// What a hit sent before heads were prepared: the stored block,
    /// rewritten, then `Age` and the quota inserted.
    fn inserted(head: &StoredHead, age: &str, q: Option<Quota>) -> HeaderMap {
        let mut map = head.map().clone();
        map.insert(header::AGE, HeaderValue::from_str(age).unwrap());
        if let Some(q) = q {
            crate::respond::quota_headers(&mut map, q, "core");
        }
        map.insert(X_GHCACHE.clone(), HeaderValue::from_static("HIT"));
        map
    }

    fn served(head: &StoredHead, age: &str, q: Option<Quota>) -> HeaderMap {
        let base: Arc<str> = Arc::from("http://127.0.0.1:1");
        let (mut map, slots) = head_for(head, &base, q.is_some(), |_| {});
        slots.fill(
            &mut map,
            HeaderValue::from_str(age).unwrap(),
            q.map(|q| (q, "core")),
        );
        map.insert(X_GHCACHE.clone(), HeaderValue::from_static("HIT"));
        map
    }

    #[test]
    fn a_prepared_head_sends_what_inserting_into_the_stored_block_sends() {
        let github = stored(&[
            ("content-type", "application/json; charset=utf-8"),
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4999"),
            ("etag", "\"abc\""),
            ("x-ratelimit-reset", "1"),
            ("x-ratelimit-used", "1"),
            ("x-ratelimit-resource", "core"),
            ("vary", "Accept"),
            ("vary", "Authorization"),
        ]);
        let bare = stored(&[("content-type", "text/plain")]);
        let repeated = stored(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-used", "1"),
            ("x-ratelimit-reset", "1"),
            ("x-ratelimit-resource", "core"),
            ("age", "7"),
        ]);
        for head in [&github, &bare, &repeated] {
            // Twice each: built, then reused from the thread's table.
            for (age, q) in [("3", Some(quota(4000))), ("4", None), ("5", Some(quota(3)))] {
                assert_eq!(
                    pairs(&served(head, age, q.clone())),
                    pairs(&inserted(head, age, q)),
                    "{head:?}"
                );
            }
        }
    }

    #[test]
    fn a_replaced_entry_or_another_base_gets_its_own_head() {
        let old = stored(&[("link", "<http://up/x?page=2>; rel=\"next\"")]);
        let rewrite = |base: &str| {
            let base = base.to_owned();
            move |map: &mut HeaderMap| {
                map.insert(header::LINK, HeaderValue::from_str(&base).unwrap());
            }
        };
        let a: Arc<str> = Arc::from("http://a");
        let b: Arc<str> = Arc::from("http://b");
        let link = |(map, _): (HeaderMap, Slots)| map[header::LINK].to_str().unwrap().to_owned();
        assert_eq!(
            link(head_for(&old, &a, true, rewrite("http://a"))),
            "http://a"
        );
        assert_eq!(
            link(head_for(&old, &b, true, rewrite("http://b"))),
            "http://b"
        );
        // The same block and base again: the prepared copy, not a rewrite.
        assert_eq!(
            link(head_for(&old, &a, true, |_| panic!("rebuilt"))),
            "http://a"
        );
        // An equal block stored anew is a different entry.
        let new = stored(&[("link", "<http://up/x?page=2>; rel=\"next\"")]);
        assert_eq!(
            link(head_for(&new, &a, true, rewrite("http://new"))),
            "http://new"
        );
    }
}
