//! What the upstream last told us about each partition's remaining quota,
//! so that an exhausted partition is not sent upstream until its reset.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ghcache_core::Partition;
use http::HeaderMap;
use parking_lot::Mutex;
use serde::Serialize;

use crate::headers::header_str;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    pub used: u64,
    /// Unix seconds.
    pub reset: u64,
}

#[derive(Debug, Default)]
pub struct QuotaTracker {
    by_partition: Mutex<HashMap<(Partition, &'static str), Quota>>,
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
        let quota = Quota {
            limit,
            remaining,
            used: num("x-ratelimit-used").unwrap_or(limit.saturating_sub(remaining)),
            reset,
        };
        self.by_partition
            .lock()
            .insert((*partition, bucket(resource)), quota);
    }

    /// The last known quota, if any.
    pub fn get(&self, partition: &Partition, resource: &str) -> Option<Quota> {
        self.by_partition
            .lock()
            .get(&(*partition, bucket(resource)))
            .cloned()
    }

    /// `Some(quota)` when the partition is known to have nothing left and
    /// the window has not reset yet.
    pub fn exhausted(&self, partition: &Partition, resource: &str) -> Option<Quota> {
        self.get(partition, resource)
            .filter(|q| q.remaining == 0 && now_secs() < q.reset)
    }

    pub fn snapshot(&self) -> Vec<(String, String, Quota)> {
        let mut rows: Vec<_> = self
            .by_partition
            .lock()
            .iter()
            .map(|((p, r), q)| (p.to_string(), (*r).to_owned(), q.clone()))
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows
    }
}
