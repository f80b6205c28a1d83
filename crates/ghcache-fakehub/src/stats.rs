//! Per-identity request accounting (`GET /_fakehub/stats`).

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Counters of one identity (or the totals).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityStats {
    /// API requests received (introspection excluded).
    pub requests: u64,
    /// Answers with status 200.
    pub status_200: u64,
    /// Other 2xx answers (201, 202, 204).
    pub status_2xx_other: u64,
    /// 304 Not Modified answers.
    pub status_304: u64,
    /// 4xx answers (incl. rate-limit and secondary-limit refusals).
    pub status_4xx: u64,
    /// 5xx answers (injected errors and outages).
    pub status_5xx: u64,
    /// Primary rate-limit units (or GraphQL points) consumed.
    pub units_consumed: u64,
    /// Refused by the primary rate limit.
    pub rate_limited: u64,
    /// Refused by the secondary (concurrency) limit.
    pub secondary_limited: u64,
    /// Connections dropped by the reset fault.
    pub dropped: u64,
    /// Requests hung by the timeout fault.
    pub timeouts: u64,
}

impl IdentityStats {
    fn add(&mut self, o: &IdentityStats) {
        self.requests += o.requests;
        self.status_200 += o.status_200;
        self.status_2xx_other += o.status_2xx_other;
        self.status_304 += o.status_304;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.units_consumed += o.units_consumed;
        self.rate_limited += o.rate_limited;
        self.secondary_limited += o.secondary_limited;
        self.dropped += o.dropped;
        self.timeouts += o.timeouts;
    }
}

/// A copy of all counters. Identities are labels such as `user:alice`,
/// `repo:acme/widgets`, `installation:N`, `anonymous:127.0.0.1`,
/// `invalid-token` — never a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Per identity.
    pub identities: BTreeMap<String, IdentityStats>,
    /// Sum over identities.
    pub totals: IdentityStats,
}

impl StatsSnapshot {
    /// Counters of one identity (zero if it made no request).
    pub fn identity(&self, label: &str) -> IdentityStats {
        self.identities.get(label).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<BTreeMap<String, IdentityStats>>,
}

impl Stats {
    fn with(&self, label: &str, f: impl FnOnce(&mut IdentityStats)) {
        let mut m = self.inner.lock();
        match m.get_mut(label) {
            Some(s) => f(s),
            None => {
                let mut s = IdentityStats::default();
                f(&mut s);
                m.insert(label.to_string(), s);
            }
        }
    }
    pub(crate) fn record(&self, label: &str, status: u16, units: u64) {
        self.with(label, |s| {
            s.requests += 1;
            match status {
                200 => s.status_200 += 1,
                201..=299 => s.status_2xx_other += 1,
                304 => s.status_304 += 1,
                400..=499 => s.status_4xx += 1,
                500..=599 => s.status_5xx += 1,
                _ => {}
            }
            s.units_consumed += units;
        });
    }
    pub(crate) fn record_rate_limited(&self, label: &str) {
        self.record(label, 403, 0);
        self.with(label, |s| s.rate_limited += 1);
    }
    pub(crate) fn record_secondary(&self, label: &str) {
        self.record(label, 403, 0);
        self.with(label, |s| s.secondary_limited += 1);
    }
    pub(crate) fn record_dropped(&self, label: &str) {
        self.with(label, |s| {
            s.requests += 1;
            s.dropped += 1;
        });
    }
    pub(crate) fn record_timeout(&self, label: &str) {
        self.with(label, |s| {
            s.requests += 1;
            s.timeouts += 1;
        });
    }
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let m = self.inner.lock();
        let mut totals = IdentityStats::default();
        for s in m.values() {
            totals.add(s);
        }
        StatsSnapshot {
            identities: m.clone(),
            totals,
        }
    }
    pub(crate) fn reset(&self) {
        self.inner.lock().clear();
    }
}
