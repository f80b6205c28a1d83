//! Counters of the CodeQL cache, for `ghcache stats`, `/_ghcache/stats`
//! and `/metrics`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    pub identical_tree: u64,
    pub no_relevant_changes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeqlStats {
    pub lookups: u64,
    pub hits_local: u64,
    pub hits_fleet: u64,
    pub saves: u64,
    /// Records or bundles that failed verification and were refused.
    pub refused: u64,
    pub skips: SkipCounts,
    /// Scans that ran, by reason.
    pub scans: BTreeMap<String, u64>,
    pub seconds_saved: u64,
}

/// One counter family: samples with at most one label.
pub type CounterFamily = (
    &'static str,
    &'static str,
    Vec<(Option<(&'static str, String)>, u64)>,
);

impl CodeqlStats {
    /// The counters `/metrics` shows (name, help, samples).
    pub fn counters(&self) -> Vec<CounterFamily> {
        let label = |k: &'static str, v: &str| Some((k, v.to_owned()));
        vec![
            (
                "ghcache_codeql_skips",
                "CodeQL scans skipped, by reason.",
                vec![
                    (label("reason", "identical-tree"), self.skips.identical_tree),
                    (
                        label("reason", "no-relevant-changes"),
                        self.skips.no_relevant_changes,
                    ),
                ],
            ),
            (
                "ghcache_codeql_scans",
                "CodeQL scans that ran, by reason.",
                self.scans
                    .iter()
                    .map(|(r, n)| (label("reason", r), *n))
                    .collect(),
            ),
            (
                "ghcache_codeql_seconds_saved",
                "Analysis seconds saved by skipped scans.",
                vec![(None, self.seconds_saved)],
            ),
            (
                "ghcache_codeql_lookups",
                "Analysis lookups answered.",
                vec![(None, self.lookups)],
            ),
            (
                "ghcache_codeql_hits",
                "Analyses found, by where.",
                vec![
                    (label("source", "local"), self.hits_local),
                    (label("source", "fleet"), self.hits_fleet),
                ],
            ),
            (
                "ghcache_codeql_saves",
                "Analyses saved.",
                vec![(None, self.saves)],
            ),
            (
                "ghcache_codeql_refused",
                "Records or bundles refused (unreadable, CID mismatch).",
                vec![(None, self.refused)],
            ),
        ]
    }
}
