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
use crate::stats::Outcome;

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

/// The per-answer headers in the order [`Prepared::fill`] writes them.
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

/// What a prepared head's per-answer lines hold: a hit that would write
/// the same writes nothing (a poller's hits differ only when a second
/// passes or its quota moves).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Filled {
    age_secs: u64,
    quota: [u64; 4],
    resource: &'static str,
    outcome: Outcome,
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
    /// This thread's copy, its per-answer headers first, in
    /// [`per_answer`] order: a hit overwrites them in place, with no
    /// search, and sends a clone.
    head: HeaderMap,
    /// What `head`'s per-answer lines hold (`None`: placeholders).
    filled: Option<Filled>,
    /// The rewritten block as stored, for a caller whose quota is unknown
    /// (and so gets no quota headers of ours).
    plain: HeaderMap,
}

impl Prepared {
    /// Points the per-answer lines of `head` at `want`, from `quota`.
    fn fill(&mut self, want: Filled, quota: &Quota) {
        if self.filled == Some(want) {
            return;
        }
        let [limit, remaining, used, reset] = &quota.values;
        let values = [
            crate::respond::age_value(want.age_secs),
            limit.clone(),
            remaining.clone(),
            used.clone(),
            reset.clone(),
            HeaderValue::from_static(want.resource),
            want.outcome.header_value(),
        ];
        for ((_, slot), value) in self.head.iter_mut().zip(values) {
            *slot = value;
        }
        self.filled = Some(want);
    }
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

/// What a hit adds to the held block: its current `Age` (seconds), the
/// caller's quota when known (with the bucket it is for), and its
/// `X-Ghcache`.
pub(crate) struct PerAnswer<'q> {
    pub age_secs: u64,
    pub quota: Option<(&'q Quota, &'static str)>,
    pub outcome: Outcome,
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
        added: PerAnswer<'_>,
        rewrite: impl FnOnce(&mut HeaderMap),
    ) -> Head {
        if stored.len() <= MAX_LINES {
            return self.cached(stored, status, base, added, rewrite);
        }
        let mut plain = stored.map().clone();
        rewrite(&mut plain);
        inserted(plain, &added)
    }

    /// A clone of the prepared head, its per-answer lines filled, when the
    /// quota is known; else of the rewritten block, with `added` inserted.
    fn cached(
        &self,
        stored: &StoredHead,
        status: u16,
        base: &Arc<str>,
        added: PerAnswer<'_>,
        rewrite: impl FnOnce(&mut HeaderMap),
    ) -> Head {
        let address = stored.address();
        let send = |p: &mut Prepared| match added.quota {
            Some((quota, resource)) => {
                let want = Filled {
                    age_secs: added.age_secs,
                    quota: [quota.limit, quota.remaining, quota.used, quota.reset],
                    resource,
                    outcome: added.outcome,
                };
                p.fill(want, quota);
                Head {
                    map: p.head.clone(),
                    has_outcome: true,
                }
            }
            None => inserted(p.plain.clone(), &added),
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
            if let Some(p) = held.and_then(|i| table.heads[i].as_mut()) {
                return send(p);
            }
            let key = Key {
                stored: stored.clone(),
                status,
                owner: self.owner,
                base: base.clone(),
            };
            let i = table.next;
            table.next = (i + 1) % SLOTS;
            table.addresses[i] = address;
            send(table.heads[i].insert(prepare(key, rewrite)))
        })
    }
}

/// `map` with `Age` and the quota inserted (the exit adds `X-Ghcache`).
fn inserted(mut map: HeaderMap, added: &PerAnswer<'_>) -> Head {
    map.insert(header::AGE, crate::respond::age_value(added.age_secs));
    if let Some((quota, resource)) = added.quota {
        crate::respond::quota_headers(&mut map, quota, resource);
    }
    Head {
        map,
        has_outcome: false,
    }
}

fn prepare(key: Key, rewrite: impl FnOnce(&mut HeaderMap)) -> Prepared {
    let mut plain = key.stored.map().clone();
    rewrite(&mut plain);
    // At most MAX_LINES + 7 lines: within what a map holds.
    let mut head = HeaderMap::with_capacity(plain.len() + per_answer().len() + 1);
    // The per-answer lines first (where a field's line goes among other
    // fields' carries no meaning), so [`Prepared::fill`] finds them at once.
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
    Prepared {
        key,
        head,
        filled: None,
        plain,
    }
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
    fn inserted(head: &StoredHead, age: u64, q: Option<&Quota>) -> HeaderMap {
        let mut map = head.map().clone();
        map.insert(header::AGE, HeaderValue::from(age));
        if let Some(q) = q {
            crate::respond::quota_headers(&mut map, q, "core");
        }
        map.insert(X_GHCACHE.clone(), HeaderValue::from_static("HIT"));
        map
    }

    fn served(heads: &Heads, head: &StoredHead, age: u64, q: Option<&Quota>) -> HeaderMap {
        let base: Arc<str> = Arc::from("http://127.0.0.1:1");
        let prepared = head.len() <= MAX_LINES && q.is_some();
        let added = PerAnswer {
            age_secs: age,
            quota: q.map(|q| (q, "core")),
            outcome: Outcome::Hit,
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
            age_secs: 1,
            quota: Some((&quota(1), "core")),
            outcome: Outcome::Hit,
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
            for (age, q) in [(3, Some(quota(4000))), (4, None), (5, Some(quota(3)))] {
                assert_eq!(
                    pairs(&served(&heads, head, age, q.as_ref())),
                    pairs(&inserted(head, age, q.as_ref())),
                    "{head:?}"
                );
            }
        }
    }

    #[test]
    fn a_prepared_heads_added_lines_follow_every_change_of_what_a_hit_adds() {
        let github = stored(&[("etag", "\"a\""), ("x-ratelimit-remaining", "1")]);
        let heads = Heads::default();
        let base: Arc<str> = Arc::from("http://a");
        let q = |limit, remaining, used, reset| Quota::new(limit, remaining, used, reset);
        // Each answer after the first changes one thing it adds, or none.
        let answers = [
            (1, q(5000, 10, 4990, 1_700_000_000), "core", Outcome::Hit),
            (1, q(5000, 10, 4990, 1_700_000_000), "core", Outcome::Hit),
            (2, q(5000, 10, 4990, 1_700_000_000), "core", Outcome::Hit),
            (2, q(5001, 10, 4990, 1_700_000_000), "core", Outcome::Hit),
            (2, q(5001, 9, 4990, 1_700_000_000), "core", Outcome::Hit),
            (2, q(5001, 9, 4991, 1_700_000_000), "core", Outcome::Hit),
            (2, q(5001, 9, 4991, 1_700_000_001), "core", Outcome::Hit),
            (2, q(5001, 9, 4991, 1_700_000_001), "search", Outcome::Hit),
            (2, q(5001, 9, 4991, 1_700_000_001), "search", Outcome::Stale),
            (1, q(5000, 10, 4990, 1_700_000_000), "core", Outcome::Hit),
        ];
        for (age, quota, resource, outcome) in &answers {
            let added = PerAnswer {
                age_secs: *age,
                quota: Some((quota, resource)),
                outcome: *outcome,
            };
            let sent = heads.head_for(&github, 200, &base, added, |_| {});
            assert!(sent.has_outcome);
            let mut expected = github.map().clone();
            expected.insert(header::AGE, HeaderValue::from(*age));
            crate::respond::quota_headers(&mut expected, quota, resource);
            expected.insert(X_GHCACHE.clone(), outcome.header_value());
            assert_eq!(pairs(&sent.map), pairs(&expected));
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
            age_secs: 1,
            quota: Some((&quota(1), "core")),
            outcome: Outcome::Hit,
        };
        let again = heads.head_for(&old, 200, &a, added, |_| panic!("rebuilt"));
        assert_eq!(again.map[header::LINK], "http://a 200");
        // An equal block stored anew is a different entry.
        let new = stored(&[("link", "<http://up/x?page=2>; rel=\"next\"")]);
        let added = PerAnswer {
            age_secs: 1,
            quota: Some((&quota(1), "core")),
            outcome: Outcome::Hit,
        };
        let rebuilt = heads.head_for(&new, 200, &a, added, |map| {
            map.insert(header::LINK, HeaderValue::from_static("rebuilt"));
        });
        assert_eq!(rebuilt.map[header::LINK], "rebuilt");
        // Another proxy (another upstream) prepares its own.
        let other = Heads::default();
        let added = PerAnswer {
            age_secs: 1,
            quota: None,
            outcome: Outcome::Hit,
        };
        let theirs = other.head_for(&old, 200, &a, added, |map| {
            map.insert(header::LINK, HeaderValue::from_static("theirs"));
        });
        assert_eq!(theirs.map[header::LINK], "theirs");
    }
}
