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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

/// Held blocks with more lines than this are not prepared (a sane answer
/// has a few dozen; this bounds what a thread copies and keeps).
const MAX_LINES: usize = 256;

/// The per-answer headers in the order [`Slots::fill`] writes them.
fn per_answer() -> [&'static HeaderName; 7] {
    [
        &header::AGE,
        &X_RATELIMIT_LIMIT,
        &X_RATELIMIT_REMAINING,
        &X_RATELIMIT_USED,
        &X_RATELIMIT_RESET,
        &X_RATELIMIT_RESOURCE,
        &X_GHCACHE,
    ]
}

/// A prepared head whose per-answer headers are its first lines, in
/// [`per_answer`] order: a hit overwrites them in place, with no search.
#[derive(Clone, Copy, Debug)]
struct Slots;

impl Slots {
    /// Writes `age`, the caller's quota and the outcome into `headers`, a
    /// clone of the prepared head these slots belong to.
    fn fill(
        self,
        headers: &mut HeaderMap,
        age: HeaderValue,
        (quota, resource): (Quota, &'static str),
        outcome: HeaderValue,
    ) {
        let [limit, remaining, used, reset] = quota.values;
        let values = [
            age,
            limit,
            remaining,
            used,
            reset,
            HeaderValue::from_static(resource),
            outcome,
        ];
        for ((_, slot), value) in headers.iter_mut().zip(values) {
            *slot = value;
        }
    }
}

/// What a prepared head is for: the block, the status and upstream its
/// links were rewritten under (the proxy), and the client's base.
struct Key {
    stored: StoredHead,
    status: u16,
    owner: u64,
    base: Arc<str>,
}

impl Key {
    fn is(&self, stored: &StoredHead, status: u16, owner: u64, base: &Arc<str>) -> bool {
        // The block is held here, so its address is not reused meanwhile.
        self.stored.is_same(stored)
            && self.status == status
            && self.owner == owner
            && (Arc::ptr_eq(&self.base, base) || *self.base == **base)
    }
}

struct Prepared {
    key: Key,
    /// This thread's copy, its per-answer headers first ([`Slots`]).
    head: HeaderMap,
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
    /// Allocated on a thread's first hit: other threads carry only a pointer.
    static TABLE: RefCell<Option<Box<Table>>> = const { RefCell::new(None) };
}

/// One proxy's prepared heads (tests run many proxies in a process).
#[derive(Debug)]
pub(crate) struct Heads {
    owner: u64,
}

impl Default for Heads {
    fn default() -> Self {
        static OWNERS: AtomicU64 = AtomicU64::new(0);
        Heads {
            owner: OWNERS.fetch_add(1, Relaxed),
        }
    }
}

/// What a hit adds to the held block: its current `Age`, the caller's
/// quota when known (with the bucket it is for), and its `X-Ghcache`.
pub(crate) struct PerAnswer {
    pub age: HeaderValue,
    pub quota: Option<(Quota, &'static str)>,
    pub outcome: HeaderValue,
}

/// A head to send, and whether it says its outcome already (else the
/// exit writes `X-Ghcache`).
pub(crate) struct Head {
    pub map: HeaderMap,
    pub has_outcome: bool,
}

impl Heads {
    /// The head to send for `stored` (a block held with `status`) to a
    /// client that reached us at `base`, with `added` in it. `rewrite`
    /// points the links of a copy of the block at `base`; it runs once per
    /// thread, entry and base while the table holds their head.
    pub fn head_for(
        &self,
        stored: &StoredHead,
        status: u16,
        base: &Arc<str>,
        added: PerAnswer,
        rewrite: impl FnOnce(&mut HeaderMap),
    ) -> Head {
        let PerAnswer {
            age,
            quota,
            outcome,
        } = added;
        let (mut headers, slots) = if stored.len() > MAX_LINES {
            let mut plain = stored.map().clone();
            rewrite(&mut plain);
            (plain, None)
        } else {
            self.cached(stored, status, base, quota.is_some(), rewrite)
        };
        let has_outcome = match (slots, quota) {
            (Some(slots), Some(quota)) => {
                slots.fill(&mut headers, age, quota, outcome);
                true
            }
            (_, quota) => {
                headers.insert(header::AGE, age);
                if let Some((quota, resource)) = quota {
                    crate::respond::quota_headers(&mut headers, quota, resource);
                }
                false
            }
        };
        Head {
            map: headers,
            has_outcome,
        }
    }

    /// A clone of the prepared head (with its slots) when the quota is
    /// known, else of the rewritten block.
    fn cached(
        &self,
        stored: &StoredHead,
        status: u16,
        base: &Arc<str>,
        quota_known: bool,
        rewrite: impl FnOnce(&mut HeaderMap),
    ) -> (HeaderMap, Option<Slots>) {
        let address = stored.address();
        let pick = |p: &Prepared| match quota_known {
            true => (p.head.clone(), Some(Slots)),
            false => (p.plain.clone(), None),
        };
        TABLE.with_borrow_mut(|table| {
            let table = table.get_or_insert_with(|| {
                Box::new(Table {
                    addresses: [0; SLOTS],
                    heads: [const { None }; SLOTS],
                    next: 0,
                })
            });
            let held = (0..SLOTS).find(|&i| {
                table.addresses[i] == address
                    && table.heads[i]
                        .as_ref()
                        .is_some_and(|p| p.key.is(stored, status, self.owner, base))
            });
            if let Some(p) = held.and_then(|i| table.heads[i].as_ref()) {
                return pick(p);
            }
            let key = Key {
                stored: stored.clone(),
                status,
                owner: self.owner,
                base: base.clone(),
            };
            let prepared = prepare(key, rewrite);
            let sent = pick(&prepared);
            let i = table.next;
            table.next = (i + 1) % SLOTS;
            table.addresses[i] = address;
            table.heads[i] = Some(prepared);
            sent
        })
    }
}

fn prepare(key: Key, rewrite: impl FnOnce(&mut HeaderMap)) -> Prepared {
    let mut plain = key.stored.map().clone();
    rewrite(&mut plain);
    // At most MAX_LINES + 7 lines: within what a map holds.
    let mut head = HeaderMap::with_capacity(plain.len() + per_answer().len() + 1);
    // The per-answer lines first (where a field's line goes among other
    // fields' carries no meaning), so [`Slots::fill`] finds them at once.
    for name in per_answer() {
        head.insert(name.clone(), HeaderValue::from_static("0"));
    }
    // Copied, not cloned: this thread's values count their own references,
    // and GitHub's usual names and values are static (no count at all).
    for (name, value) in plain
        .iter()
        .filter(|(name, _)| !per_answer().contains(name))
    {
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
    Prepared { key, head, plain }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(pairs: &[(&str, &str)]) -> StoredHead {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        StoredHead::from(pairs)
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

    fn served(heads: &Heads, head: &StoredHead, age: &str, q: Option<Quota>) -> HeaderMap {
        let base: Arc<str> = Arc::from("http://127.0.0.1:1");
        let prepared = head.len() <= MAX_LINES && q.is_some();
        let added = PerAnswer {
            age: HeaderValue::from_str(age).unwrap(),
            quota: q.map(|q| (q, "core")),
            outcome: HeaderValue::from_static("HIT"),
        };
        let Head {
            mut map,
            has_outcome,
        } = heads.head_for(head, 200, &base, added, |_| {});
        assert_eq!(has_outcome, prepared);
        // As the exit does.
        if !has_outcome {
            map.insert(X_GHCACHE.clone(), HeaderValue::from_static("HIT"));
        }
        map
    }

    fn link_for(heads: &Heads, stored: &StoredHead, status: u16, base: &Arc<str>) -> String {
        let added = PerAnswer {
            age: HeaderValue::from_static("1"),
            quota: Some((quota(1), "core")),
            outcome: HeaderValue::from_static("HIT"),
        };
        let rewritten = format!("{base} {status}");
        let map = heads.head_for(stored, status, base, added, |map| {
            map.insert(header::LINK, HeaderValue::from_str(&rewritten).unwrap());
        });
        map.map[header::LINK].to_str().unwrap().to_owned()
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
        // Repeated names before the slots shift their positions.
        let shifted = stored(&[
            ("vary", "Accept"),
            ("vary", "Authorization"),
            ("vary", "Cookie"),
            ("etag", "\"x\""),
            ("x-ratelimit-limit", "1"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-used", "1"),
            ("x-ratelimit-reset", "1"),
            ("x-ratelimit-resource", "core"),
        ]);
        let lines: Vec<(String, String)> = (0..MAX_LINES + 10)
            .map(|i| (format!("x-line-{i}"), i.to_string()))
            .collect();
        let huge = stored(
            &lines
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        let heads = Heads::default();
        for head in [&github, &bare, &repeated, &shifted, &huge] {
            // Twice each: built, then reused from the thread's table.
            for (age, q) in [("3", Some(quota(4000))), ("4", None), ("5", Some(quota(3)))] {
                assert_eq!(
                    pairs(&served(&heads, head, age, q.clone())),
                    pairs(&inserted(head, age, q)),
                    "{head:?}"
                );
            }
        }
    }

    #[test]
    fn another_entry_base_status_or_proxy_gets_its_own_head() {
        let old = stored(&[("link", "<http://up/x?page=2>; rel=\"next\"")]);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("http://a"), Arc::from("http://b"));
        let heads = Heads::default();
        assert_eq!(link_for(&heads, &old, 200, &a), "http://a 200");
        assert_eq!(link_for(&heads, &old, 200, &b), "http://b 200");
        assert_eq!(link_for(&heads, &old, 301, &a), "http://a 301");
        // The same block, status and base again: the prepared copy.
        let added = PerAnswer {
            age: HeaderValue::from_static("1"),
            quota: Some((quota(1), "core")),
            outcome: HeaderValue::from_static("HIT"),
        };
        let again = heads.head_for(&old, 200, &a, added, |_| panic!("rebuilt"));
        assert_eq!(again.map[header::LINK], "http://a 200");
        // An equal block stored anew is a different entry.
        let new = stored(&[("link", "<http://up/x?page=2>; rel=\"next\"")]);
        let added = PerAnswer {
            age: HeaderValue::from_static("1"),
            quota: Some((quota(1), "core")),
            outcome: HeaderValue::from_static("HIT"),
        };
        let rebuilt = heads.head_for(&new, 200, &a, added, |map| {
            map.insert(header::LINK, HeaderValue::from_static("rebuilt"));
        });
        assert_eq!(rebuilt.map[header::LINK], "rebuilt");
        // Another proxy (another upstream) prepares its own.
        let other = Heads::default();
        let added = PerAnswer {
            age: HeaderValue::from_static("1"),
            quota: None,
            outcome: HeaderValue::from_static("HIT"),
        };
        let theirs = other.head_for(&old, 200, &a, added, |map| {
            map.insert(header::LINK, HeaderValue::from_static("theirs"));
        });
        assert_eq!(theirs.map[header::LINK], "theirs");
    }
}
