//! The control API's bodies under `/_ghcache/codeql/`, shared by the
//! daemon's service and its clients (`ghcache codeql check|save|stats`).
//!
//! - `POST lookup`   [`LookupRequest`] → [`LookupResponse`]
//! - `GET  bundle/<cid>` → the packed SARIF bundle (404 when nobody holds it)
//! - `POST save`     [`SaveRequest`] → [`SaveResponse`]
//! - `POST decision` [`DecisionReport`] → `{}` (counts a check's outcome)
//! - `GET  stats`    → [`crate::CodeqlStats`]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::key::AnalysisKey;

/// Path prefix of every CodeQL route.
pub const PREFIX: &str = "/_ghcache/codeql/";
/// Largest request body the service reads (a save carries the bundle in base64).
pub const MAX_REQUEST_BYTES: usize = 24 << 20;
/// Most candidate keys in one lookup (HEAD and its ancestors).
pub const MAX_CANDIDATES: usize = 1001;

/// What is known about one stored analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisRecord {
    pub key: AnalysisKey,
    pub repository: String,
    pub commit: String,
    pub tree: String,
    /// When the analysis was saved (unix seconds).
    pub created_at: u64,
    /// How long the analysis took (what a skip saves).
    pub duration_secs: u64,
    pub codeql_version: String,
    pub languages: Vec<String>,
    pub category: String,
    /// Results per SARIF level (`error`, `warning`, `note`, `none`).
    pub results: BTreeMap<String, u64>,
    /// Content id of the packed SARIF bundle.
    pub bundle_cid: String,
    pub bundle_len: u64,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupRequest {
    /// HEAD's key first, then its ancestors', newest first.
    pub candidates: Vec<AnalysisKey>,
    /// Records older than this are not answered.
    pub max_age_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Local,
    Fleet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Found {
    /// Index into the request's candidates.
    pub index: usize,
    pub record: AnalysisRecord,
    pub source: Source,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The newest candidate held and younger than `max_age_secs`.
    pub found: Option<Found>,
    /// Newer candidates that were held but too old.
    pub expired: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveRequest {
    pub record: AnalysisRecord,
    /// The packed bundle, base64 (standard alphabet).
    pub bundle: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveResponse {
    pub key: AnalysisKey,
    pub bundle_cid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionReport {
    pub skipped: bool,
    pub reason: String,
    pub seconds_saved: u64,
}
