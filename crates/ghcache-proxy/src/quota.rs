//! What the upstream last told us about each partition's quota, so that an
//! exhausted partition is not sent upstream until its reset, and a
//! partition GitHub told to back off (`Retry-After`, a secondary limit) is
//! answered locally until then.
//!
//! Bounded: at most [`MAX_TRACKED`] (partition, bucket) pairs and as many
//! back-offs, least recently seen dropped first; a record past its reset is
//! forgotten. Stats and metrics show the [`SHOWN`] lowest plus a total.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ghcache_core::Partition;
use http::{HeaderMap, HeaderValue, StatusCode};
use lru::LruCache;
use parking_lot::Mutex;
use serde::Serialize;

use crate::headers::header_str;

/// (partition, bucket) pairs remembered; bogus tokens cannot grow it further.
pub const MAX_TRACKED: usize = 4096;
/// Rows listed in stats and metrics (the lowest remaining first).
pub const SHOWN: usize = 20;
/// Longest back-off honoured from one answer, whatever `Retry-After` says.
const MAX_BACKOFF_SECS: u64 = 3600;
/// GitHub: "wait for at least one minute" when a secondary limit names no time.
const SECONDARY_DEFAULT_SECS: u64 = 60;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    pub used: u64,
    /// Unix seconds.
    pub reset: u64,
    /// The four above as `x-ratelimit-*` values, rendered once when
    /// observed: every hit sends them, cloned rather than formatted.
    #[serde(skip)]
    pub values: [HeaderValue; 4],
}

/// Every hit clones the caller's quota: element by element, which the
/// derived array clone (through an iterator) is not.
impl Clone for Quota {
    fn clone(&self) -> Quota {
        let [limit, remaining, used, reset] = &self.values;
        Quota {
            values: [
                limit.clone(),
                remaining.clone(),
                used.clone(),
                reset.clone(),
            ],
            ..*self
        }
    }
}

impl Quota {
    pub fn new(limit: u64, remaining: u64, used: u64, reset: u64) -> Quota {
        Quota {
            limit,
            remaining,
            used,
            reset,
            values: [limit, remaining, used, reset].map(HeaderValue::from),
        }
    }

    /// A copy sharing no buffer with this one.
    fn detached(&self) -> Quota {
        Quota::new(self.limit, self.remaining, self.used, self.reset)
    }
}

/// GitHub's refusal, replayed locally while its back-off lasts.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Unix seconds before which nothing of this partition goes upstream.
    pub until: u64,
}

#[derive(Debug)]
pub struct QuotaTracker {
    by_partition: Mutex<LruCache<(Partition, &'static str), Quota>>,
    /// Bumped by every change to `by_partition`: a thread's copy of a
    /// record read at the same version is current ([`LastRead`]).
    version: AtomicU64,
    /// Tells trackers apart in [`LastRead`] (tests run many per process).
    id: u64,
    backoff: Mutex<LruCache<Partition, Arc<Refusal>>>,
}

impl Default for QuotaTracker {
    fn default() -> Self {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let cap = NonZeroUsize::new(MAX_TRACKED).unwrap_or(NonZeroUsize::MIN);
        QuotaTracker {
            by_partition: Mutex::new(LruCache::new(cap)),
            version: AtomicU64::new(0),
            id: IDS.fetch_add(1, Relaxed),
            backoff: Mutex::new(LruCache::new(cap)),
        }
    }
}

/// A thread's last answer from [`QuotaTracker::get`]. Every hit sends its
/// partition's quota: repeated hits of one partition on one thread read
/// this copy (its values this thread's own) instead of taking the shared
/// lock and bouncing the values' reference counts between cores.
struct LastRead {
    tracker: u64,
    version: u64,
    key: (Partition, &'static str),
    quota: Option<Quota>,
}

thread_local! {
    static LAST_READ: RefCell<Option<LastRead>> = const { RefCell::new(None) };
}

/// What stats and metrics show: the lowest few and how many there are.
#[derive(Debug)]
pub struct QuotaSnapshot {
    pub rows: Vec<(String, String, Quota)>,
    pub tracked: usize,
    pub backing_off: usize,
}

/// The bucket names GitHub reports, interned so that lookups on the hit
/// path allocate nothing; anything unknown is kept as "other".
fn bucket(resource: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "core",
        "search",
        "graphql",
        "code_scanning_upload",
        "integration_manifest",
        "source_import",
        "actions_runner_registration",
        "scim",
        "dependency_snapshots",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == resource)
        .unwrap_or("other")
}

/// The rate-limit bucket a request would draw from.
pub fn resource_for(method: &http::Method, path: &str) -> &'static str {
    if path.starts_with("/search/") {
        "search"
    } else if path == "/graphql" {
        "graphql"
    } else if method == http::Method::POST && path.ends_with("/code-scanning/sarifs") {
        "code_scanning_upload"
    } else {
        "core"
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl QuotaTracker {
    /// Records the `x-ratelimit-*` headers of an upstream response.
    pub fn observe(&self, partition: &Partition, headers: &HeaderMap) {
        let num = |name| header_str(headers, name).and_then(|v| v.parse::<u64>().ok());
        let (Some(limit), Some(remaining), Some(reset)) = (
            num("x-ratelimit-limit"),
            num("x-ratelimit-remaining"),
            num("x-ratelimit-reset"),
        ) else {
            return;
        };
        let resource = header_str(headers, "x-ratelimit-resource").unwrap_or("core");
        let used = num("x-ratelimit-used").unwrap_or(limit.saturating_sub(remaining));
        let quota = Quota::new(limit, remaining, used, reset);
        let mut map = self.by_partition.lock();
        map.put((*partition, bucket(resource)), quota);
        self.version.fetch_add(1, Relaxed);
    }

    /// Remembers GitHub's order to back off, from a rate-limit refusal:
    /// `Retry-After` (seconds or a date), else `x-ratelimit-reset` when
    /// nothing remains, else a minute. Capped at an hour.
    pub fn observe_refusal(
        &self,
        partition: &Partition,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
    ) {
        let now = now_secs();
        let wait = retry_after(headers, now)
            .or_else(|| {
                let remaining = header_str(headers, "x-ratelimit-remaining")?;
                let reset = header_str(headers, "x-ratelimit-reset")?
                    .parse::<u64>()
                    .ok()?;
                (remaining == "0").then(|| reset.saturating_sub(now))
            })
            .unwrap_or(SECONDARY_DEFAULT_SECS)
            .min(MAX_BACKOFF_SECS);
        if wait == 0 {
            return;
        }
        let mut kept = HeaderMap::new();
        for (name, value) in headers {
            let n = name.as_str();
            if n == "content-type"
                || n.starts_with("x-ratelimit-")
                || n == "x-github-media-type"
                || n == "x-github-request-id"
            {
                kept.append(name.clone(), value.clone());
            }
        }
        let refusal = Refusal {
            status,
            headers: kept,
            body: body.clone(),
            until: now + wait,
        };
        self.backoff.lock().put(*partition, Arc::new(refusal));
    }

    /// GitHub's standing refusal for this partition, while it lasts.
    pub fn backing_off(&self, partition: &Partition) -> Option<Arc<Refusal>> {
        let mut map = self.backoff.lock();
        let refusal = map.get(partition)?.clone();
        if now_secs() >= refusal.until {
            map.pop(partition);
            return None;
        }
        Some(refusal)
    }

    /// The last known quota, if its window has not reset yet.
    pub fn get(&self, partition: &Partition, resource: &str) -> Option<Quota> {
        self.get_at(partition, resource, now_secs())
    }

    /// [`QuotaTracker::get`] at `now` (unix seconds).
    pub fn get_at(&self, partition: &Partition, resource: &str, now: u64) -> Option<Quota> {
        self.with_at(partition, resource, now, |quota| quota.cloned())
    }

    /// `f` of the quota [`QuotaTracker::get_at`] returns, read in place: a
    /// hit passes the clock it read already, and a thread's repeated reads
    /// of one partition copy nothing ([`LastRead`]).
    pub fn with_at<R>(
        &self,
        partition: &Partition,
        resource: &str,
        now: u64,
        f: impl FnOnce(Option<&Quota>) -> R,
    ) -> R {
        let key = (*partition, bucket(resource));
        let version = self.version.load(Relaxed);
        LAST_READ.with(|cell| {
            if let Ok(last) = cell.try_borrow()
                && let Some(l) = last.as_ref()
                && l.tracker == self.id
                && l.version == version
                && l.key == key
                && l.quota.as_ref().is_none_or(|q| now < q.reset)
            {
                return f(l.quota.as_ref());
            }
            let (quota, version) = self.read_locked(&key, now);
            match cell.try_borrow_mut() {
                Ok(mut last) => {
                    let l = last.insert(LastRead {
                        tracker: self.id,
                        version,
                        key,
                        quota: quota.as_ref().map(Quota::detached),
                    });
                    f(l.quota.as_ref())
                }
                // Read from within `f` (nothing does): no memo then.
                Err(_) => f(quota.as_ref()),
            }
        })
    }

    /// The shared record and the version it was read at (a record past its
    /// reset is forgotten).
    fn read_locked(&self, key: &(Partition, &'static str), now: u64) -> (Option<Quota>, u64) {
        let mut map = self.by_partition.lock();
        let quota = match map.get(key).cloned() {
            Some(q) if now >= q.reset => {
                map.pop(key);
                self.version.fetch_add(1, Relaxed);
                None
            }
            other => other,
        };
        (quota, self.version.load(Relaxed))
    }

    /// `Some(quota)` when the partition is known to have nothing left and
    /// the window has not reset yet.
    pub fn exhausted(&self, partition: &Partition, resource: &str) -> Option<Quota> {
        self.get(partition, resource).filter(|q| q.remaining == 0)
    }

    /// The lowest [`SHOWN`] live records and the totals; drops expired ones.
    pub fn snapshot(&self) -> QuotaSnapshot {
        let now = now_secs();
        let mut map = self.by_partition.lock();
        let expired: Vec<_> = map
            .iter()
            .filter(|(_, q)| now >= q.reset)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            map.pop(&k);
            self.version.fetch_add(1, Relaxed);
        }
        let mut rows: Vec<_> = map
            .iter()
            .map(|((p, r), q)| (p.to_string(), (*r).to_owned(), q.clone()))
            .collect();
        let tracked = rows.len();
        drop(map);
        rows.sort_by(|a, b| (a.2.remaining, &a.0, &a.1).cmp(&(b.2.remaining, &b.0, &b.1)));
        rows.truncate(SHOWN);
        let backing_off = self
            .backoff
            .lock()
            .iter()
            .filter(|(_, r)| now < r.until)
            .count();
        QuotaSnapshot {
            rows,
            tracked,
            backing_off,
        }
    }
}

/// `Retry-After` as seconds from now (RFC 9110 §10.2.3: seconds or a date).
fn retry_after(headers: &HeaderMap, now: u64) -> Option<u64> {
    let value = header_str(headers, http::header::RETRY_AFTER)?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghcache_core::PartitionSecret;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bounded_by_lru_and_forgets_past_resets() {
        let secret = PartitionSecret::generate();
        let tracker = QuotaTracker::default();
        let reset = (now_secs() + 600).to_string();
        for i in 0..(MAX_TRACKED + 500) {
            let p = secret.partition_for(Some(&format!("token bogus{i}")));
            tracker.observe(
                &p,
                &headers(&[
                    ("x-ratelimit-limit", "60".into()),
                    ("x-ratelimit-remaining", "59".into()),
                    ("x-ratelimit-reset", reset.clone()),
                ]),
            );
        }
        let snap = tracker.snapshot();
        assert_eq!(snap.tracked, MAX_TRACKED);
        assert_eq!(snap.rows.len(), SHOWN);
        let old = secret.partition_for(Some("token old"));
        tracker.observe(
            &old,
            &headers(&[
                ("x-ratelimit-limit", "60".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", (now_secs() - 1).to_string()),
            ]),
        );
        assert!(tracker.exhausted(&old, "core").is_none());
    }

    #[test]
    fn retry_after_seconds_and_dates_and_the_default_minute() {
        let now = now_secs();
        assert_eq!(
            retry_after(&headers(&[("retry-after", "30".into())]), now),
            Some(30)
        );
        let date = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(now + 90));
        assert_eq!(
            retry_after(&headers(&[("retry-after", date)]), now),
            Some(90)
        );
        let tracker = QuotaTracker::default();
        let p = PartitionSecret::generate().partition_for(Some("token a"));
        tracker.observe_refusal(&p, StatusCode::FORBIDDEN, &HeaderMap::new(), &Bytes::new());
        let r = tracker.backing_off(&p).unwrap();
        assert!(r.until >= now + SECONDARY_DEFAULT_SECS);
        let q = PartitionSecret::generate().partition_for(Some("token b"));
        tracker.observe_refusal(
            &q,
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "99999999".into())]),
            &Bytes::new(),
        );
        assert!(tracker.backing_off(&q).unwrap().until <= now + MAX_BACKOFF_SECS + 1);
    }
}
