//! Per-job attribution without the token. `setup-github-cache` mints a
//! random job id and points the job's clients at `/_job/<id>/…`; the server
//! strips the prefix, rewrites links back under it (so pagination stays
//! attributed) and runs the request with that job's counters in a task
//! local, which `Proxy::exit`, `count_saved` and `account_upstream` add to
//! beside the daemon's own (a flight's fetch, in a task of its own, is
//! handed the job of the request that led it). So a job's numbers are the
//! daemon's counters restricted to its requests, counted at the same
//! places. Jobs are bounded (LRU).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::report::HitCounts;
use crate::stats::{JobOutcomeCounters, Outcome};

/// Where a job's clients reach the proxy: `/_job/<id>/repos/…`.
pub(crate) const JOB_PREFIX: &str = "/_job/";
/// Jobs remembered at once; the least recently used is forgotten first.
const MAX_JOBS: usize = 1024;

tokio::task_local! {
    static CURRENT: Arc<JobCounters>;
}

/// What a job id may be: 8–64 ASCII letters, digits, `-` or `_` (it is
/// put in rewritten links, so nothing that needs escaping).
pub fn valid_job_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The same words for every refusal of an id.
pub(crate) const INVALID_JOB_ID: &str =
    "invalid job id: it must be 8-64 ASCII letters, digits, '-' or '_'";

#[derive(Debug, Default)]
pub(crate) struct JobCounters {
    requests: AtomicU64,
    outcomes: JobOutcomeCounters,
    units_saved: AtomicU64,
    time_saved_us: AtomicU64,
    upstream_requests: AtomicU64,
    units_spent: AtomicU64,
    /// Dropped from [`Jobs`] (the least recently used of too many): a
    /// connection that remembers these counters enters the job anew.
    forgotten: AtomicBool,
}

/// Counts an answer for the job this task serves, if any.
pub(crate) fn record(outcome: Outcome, saved_us: u64) {
    let _ = CURRENT.try_with(|job| {
        job.requests.fetch_add(1, Relaxed);
        job.outcomes.record(outcome);
        job.time_saved_us.fetch_add(saved_us, Relaxed);
    });
}

/// Counts a rate-limit unit saved for the job this task serves, if any.
pub(crate) fn unit_saved() {
    let _ = CURRENT.try_with(|job| job.units_saved.fetch_add(1, Relaxed));
}

/// Counts an upstream exchange (and the unit it cost, if any) for the job
/// this task serves, if any.
pub(crate) fn upstream_exchange(unit_spent: bool) {
    let _ = CURRENT.try_with(|job| {
        job.upstream_requests.fetch_add(1, Relaxed);
        if unit_spent {
            job.units_spent.fetch_add(1, Relaxed);
        }
    });
}

/// The job this task serves, for work it hands to another task.
pub(crate) fn current() -> Option<Arc<JobCounters>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `f` as `job`'s, when there is one.
pub(crate) async fn scope_if<F: std::future::Future>(
    job: Option<Arc<JobCounters>>,
    f: F,
) -> F::Output {
    match job {
        Some(job) => scope(job, f).await,
        None => f.await,
    }
}

/// Runs `f` with `job`'s counters as the task's current job.
pub(crate) async fn scope<F: std::future::Future>(job: Arc<JobCounters>, f: F) -> F::Output {
    CURRENT.scope(job, f).await
}

/// [`scope`] for what runs without waiting.
pub(crate) fn sync_scope<R>(job: Arc<JobCounters>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(job, f)
}

/// The jobs seen recently, by id.
pub(crate) struct Jobs(Mutex<lru::LruCache<Box<str>, Arc<JobCounters>>>);

impl Default for Jobs {
    fn default() -> Self {
        Jobs(Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(MAX_JOBS).unwrap_or(NonZeroUsize::MIN),
        )))
    }
}

impl Jobs {
    /// The counters of `id` (a valid id), created on first use.
    pub(crate) fn enter(&self, id: &str) -> Arc<JobCounters> {
        let mut jobs = self.0.lock();
        if let Some(job) = jobs.get(id) {
            return job.clone();
        }
        let job = Arc::new(JobCounters::default());
        if let Some((_, dropped)) = jobs.push(id.into(), job.clone()) {
            dropped.forgotten.store(true, Relaxed);
        }
        job
    }

    /// The report of a job seen (or registered) and not yet forgotten.
    pub(crate) fn report(&self, id: &str) -> Option<JobReport> {
        let job = self.0.lock().get(id).cloned()?;
        let get = |c: &AtomicU64| c.load(Relaxed);
        Some(JobReport {
            job: id.to_owned(),
            requests: get(&job.requests),
            hits: job.outcomes.hits(),
            misses: job.outcomes.misses(),
            bypass: job.outcomes.bypassed(),
            units_saved: get(&job.units_saved),
            time_saved_us: get(&job.time_saved_us),
            upstream_requests: get(&job.upstream_requests),
            units_spent: get(&job.units_spent),
            mean_upstream_latency_us: 0,
        })
    }
}

/// How often a connection's reuse of its last job also marks the job as
/// used in [`Jobs`]: a job in use is forgotten only if more than
/// `MAX_JOBS` others arrive within this long (and then entered anew on
/// the connection's next request).
const RECENCY_REFRESH_MS: u64 = 1000;

/// The job of a connection's last request. A job's clients keep their
/// connections under its prefix, and pollers ask for one path again and
/// again: the job's counters, its link base and the stripped target are
/// reused while the next request repeats them, not validated, looked up in
/// the shared registry, formatted and parsed anew on every request.
#[derive(Default)]
pub(crate) struct LastJob(Mutex<Option<Remembered>>);

struct Remembered {
    id: Box<str>,
    job: Arc<JobCounters>,
    /// `<client base>/_job/<id>`: where the job's links point.
    base: Arc<str>,
    /// When the registry last saw it used (`now_ms` of that request).
    entered_ms: u64,
    /// The last request's target, its prefix stripped.
    target: Option<http::Uri>,
}

/// A request under a job's prefix, stripped of it.
pub(crate) struct JobPath {
    pub job: Arc<JobCounters>,
    pub base: Arc<str>,
    pub target: http::Uri,
}

/// Why a path under the job prefix was refused (each says what to fix).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `/_job/` with nothing after it.
    NotAJobPath,
    InvalidId,
    InvalidTarget,
}

impl LastJob {
    /// `path_and_query` (under [`JOB_PREFIX`]) as its job, the base its
    /// links point under, and its target without the prefix, for a client
    /// that reached us at `client_base`. `now_ms` is the connection's clock
    /// (it only paces [`RECENCY_REFRESH_MS`]).
    pub(crate) fn strip(
        &self,
        jobs: &Jobs,
        path_and_query: &str,
        client_base: &str,
        now_ms: u64,
    ) -> Result<JobPath, Refusal> {
        let (id, rest) = split(path_and_query).ok_or(Refusal::NotAJobPath)?;
        let mut last = self.0.lock();
        let held = match last.as_mut().filter(|held| *held.id == *id) {
            Some(held) => {
                if now_ms.saturating_sub(held.entered_ms) >= RECENCY_REFRESH_MS
                    || held.job.forgotten.load(Relaxed)
                {
                    // Marks it used; a job the registry dropped meanwhile
                    // counts on in what the registry now holds for it.
                    held.job = jobs.enter(id);
                    held.entered_ms = now_ms;
                }
                held
            }
            None => {
                if !valid_job_id(id) {
                    return Err(Refusal::InvalidId);
                }
                last.insert(Remembered {
                    id: id.into(),
                    job: jobs.enter(id),
                    base: format!("{client_base}{JOB_PREFIX}{id}").into(),
                    entered_ms: now_ms,
                    target: None,
                })
            }
        };
        let target = match &held.target {
            Some(target)
                if target
                    .path_and_query()
                    .is_some_and(|pq| pq.as_str() == rest) =>
            {
                target.clone()
            }
            _ => {
                let target = match rest.starts_with('/') {
                    true => http::Uri::try_from(rest),
                    false => http::Uri::try_from(format!("/{rest}")),
                }
                .map_err(|_| Refusal::InvalidTarget)?;
                held.target = Some(target.clone());
                target
            }
        };
        Ok(JobPath {
            job: held.job.clone(),
            base: held.base.clone(),
            target,
        })
    }
}

/// What one job was served (`GET /_ghcache/jobs/<id>`), counted exactly as
/// the daemon's totals are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobReport {
    pub job: String,
    /// Answers through the job's prefix (control routes excluded).
    pub requests: u64,
    pub hits: HitCounts,
    pub misses: u64,
    pub bypass: u64,
    /// Rate-limit units a cacheless client would have spent.
    pub units_saved: u64,
    /// Upstream time `HIT`s saved: each counts the daemon's mean upstream
    /// latency measured until that moment (µs).
    pub time_saved_us: u64,
    /// Requests the job's own requests sent to GitHub (a fetch others
    /// shared counts for the job whose request led it).
    pub upstream_requests: u64,
    /// Rate-limit units those cost (a `304` to an authenticated request
    /// and `/rate_limit` are free).
    pub units_spent: u64,
    /// The daemon's mean upstream latency now (µs), for the report's text.
    pub mean_upstream_latency_us: u64,
}

/// Splits `/_job/<id>/rest` into the id and `/rest` (with its query);
/// `None` when the path is not under the job prefix.
pub(crate) fn split(path_and_query: &str) -> Option<(&str, &str)> {
    let tail = path_and_query.strip_prefix(JOB_PREFIX)?;
    let end = tail.find(['/', '?']).unwrap_or(tail.len());
    Some((&tail[..end], &tail[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_plain_words() {
        assert!(valid_job_id("0123abcd"));
        assert!(valid_job_id("run-42_job_A"));
        assert!(!valid_job_id("short"));
        assert!(!valid_job_id(&"a".repeat(65)));
        assert!(!valid_job_id("has space1"));
        assert!(!valid_job_id("dot.dot.dot"));
        assert!(!valid_job_id("%2e%2e%2f%2e%2e"));
    }

    #[test]
    fn split_keeps_the_rest_and_its_query() {
        assert_eq!(
            split("/_job/abcdefgh/repos/o/r?page=2"),
            Some(("abcdefgh", "/repos/o/r?page=2"))
        );
        assert_eq!(split("/_job/abcdefgh?x=1"), Some(("abcdefgh", "?x=1")));
        assert_eq!(split("/_job/abcdefgh"), Some(("abcdefgh", "")));
        assert_eq!(split("/repos/o/r"), None);
    }

    #[test]
    fn jobs_are_bounded() {
        let jobs = Jobs::default();
        for n in 0..MAX_JOBS + 10 {
            jobs.enter(&format!("job-{n:08}"));
        }
        assert!(jobs.report("job-00000000").is_none());
        assert!(jobs.report(&format!("job-{:08}", MAX_JOBS + 9)).is_some());
        assert_eq!(jobs.0.lock().len(), MAX_JOBS);
    }

    #[test]
    fn a_connections_last_job_is_reused_and_kept_in_the_registry() {
        let jobs = Jobs::default();
        let last = LastJob::default();
        let strip = |pq: &str, now_ms| last.strip(&jobs, pq, "http://h:1", now_ms);
        let first = strip("/_job/job-kept0000/repos/o/r?page=2", 0).unwrap();
        assert_eq!(&*first.base, "http://h:1/_job/job-kept0000");
        assert_eq!(first.target, "/repos/o/r?page=2");
        let again = strip("/_job/job-kept0000/repos/o/r?page=2", 10).unwrap();
        assert!(Arc::ptr_eq(&first.job, &again.job) && Arc::ptr_eq(&first.base, &again.base));
        assert_eq!(again.target, "/repos/o/r?page=2");
        // Another target of the same job, then one without a path.
        assert_eq!(
            strip("/_job/job-kept0000/repos/o/r", 10).unwrap().target,
            "/repos/o/r"
        );
        assert_eq!(strip("/_job/job-kept0000?x=1", 10).unwrap().target, "/?x=1");
        assert_eq!(strip("/_job/job-kept0000", 10).unwrap().target, "/");
        // Another job on the connection, then the first again: each its own.
        let other = strip("/_job/job-other000/repos/o/r", 20).unwrap();
        assert!(!Arc::ptr_eq(&first.job, &other.job));
        assert_eq!(&*other.base, "http://h:1/_job/job-other000");
        let back = strip("/_job/job-kept0000/repos/o/r", 30).unwrap();
        assert!(
            Arc::ptr_eq(&first.job, &back.job),
            "the registry's counters, found again"
        );
        // Refusals, whatever was remembered.
        assert_eq!(strip("/_job/bad/repos", 30).err(), Some(Refusal::InvalidId));
        assert_eq!(strip("/repos/o/r", 30).err(), Some(Refusal::NotAJobPath));
        // A job in use stays the registry's most recent within a refresh.
        for n in 0..MAX_JOBS - 1 {
            jobs.enter(&format!("job-{n:08}"));
        }
        let refreshed = strip("/_job/job-kept0000/repos/o/r", 30 + RECENCY_REFRESH_MS).unwrap();
        assert!(Arc::ptr_eq(&first.job, &refreshed.job));
        jobs.enter("job-newcomer");
        assert!(
            jobs.report("job-kept0000").is_some(),
            "forgotten while in use"
        );
        // Without that refresh it would have been the least recent.
        assert!(jobs.report("job-other000").is_none());
        // Dropped between two requests (here within a refresh): the next
        // request counts in the registry's counters, not the dropped ones.
        for n in 0..MAX_JOBS {
            jobs.enter(&format!("job-b{n:07}"));
        }
        assert!(jobs.report("job-kept0000").is_none());
        let after = strip("/_job/job-kept0000/repos/o/r", 31 + RECENCY_REFRESH_MS).unwrap();
        assert!(!Arc::ptr_eq(&first.job, &after.job));
        assert!(Arc::ptr_eq(&after.job, &jobs.enter("job-kept0000")));
        let again = strip("/_job/job-kept0000/repos/o/r", 32 + RECENCY_REFRESH_MS).unwrap();
        assert!(Arc::ptr_eq(&after.job, &again.job), "remembered again");
    }

    #[tokio::test]
    async fn only_the_scoped_job_counts() {
        let jobs = Jobs::default();
        let a = jobs.enter("job-aaaaaaaa");
        jobs.enter("job-bbbbbbbb");
        scope(a, async {
            record(Outcome::Hit, 7);
            unit_saved();
        })
        .await;
        record(Outcome::Miss, 0);
        let a = jobs.report("job-aaaaaaaa").unwrap_or_default();
        assert_eq!((a.requests, a.hits.hit, a.hits.total), (1, 1, 1));
        assert_eq!((a.units_saved, a.time_saved_us, a.misses), (1, 7, 0));
        assert_eq!(jobs.report("job-bbbbbbbb").unwrap_or_default().requests, 0);
    }
}
