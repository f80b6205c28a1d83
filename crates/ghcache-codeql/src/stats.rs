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

impl CodeqlStats {
    /// Prometheus text exposition of these counters.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let mut counter = |name: &str, help: &str, rows: &[(Option<(&str, &str)>, u64)]| {
            let _ = writeln!(out, "# HELP ghcache_codeql_{name} {help}");
            let _ = writeln!(out, "# TYPE ghcache_codeql_{name} counter");
            for (label, value) in rows {
                match label {
                    Some((k, v)) => {
                        let _ = writeln!(out, "ghcache_codeql_{name}_total{{{k}=\"{v}\"}} {value}");
                    }
                    None => {
                        let _ = writeln!(out, "ghcache_codeql_{name}_total {value}");
                    }
                }
            }
        };
        counter(
            "skips",
            "CodeQL scans skipped, by reason.",
            &[
                (
                    Some(("reason", "identical-tree")),
                    self.skips.identical_tree,
                ),
                (
                    Some(("reason", "no-relevant-changes")),
                    self.skips.no_relevant_changes,
                ),
            ],
        );
        let scans: Vec<_> = self
            .scans
            .iter()
            .map(|(reason, n)| (Some(("reason", reason.as_str())), *n))
            .collect();
        counter("scans", "CodeQL scans that ran, by reason.", &scans);
        counter(
            "seconds_saved",
            "Analysis seconds saved by skipped scans.",
            &[(None, self.seconds_saved)],
        );
        counter(
            "lookups",
            "Analysis lookups answered.",
            &[(None, self.lookups)],
        );
        counter(
            "hits",
            "Analyses found, by where.",
            &[
                (Some(("source", "local")), self.hits_local),
                (Some(("source", "fleet")), self.hits_fleet),
            ],
        );
        counter("saves", "Analyses saved.", &[(None, self.saves)]);
        counter(
            "refused",
            "Records or bundles refused (corrupt, CID mismatch).",
            &[(None, self.refused)],
        );
    }
}
