//! The daemon's side: analyses kept in the daemon's store and found through
//! the fleet. Records are store entries under a keyed hash of the analysis
//! key (so a non-member cannot tell which keys are held); bundles are store
//! bodies, addressed by content id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use ghcache_core::{ContentId, Partition, PartitionSecret, ResourceId};
use ghcache_store::{EntryMeta, Store};
use parking_lot::Mutex;

use crate::api::{
    AnalysisRecord, DecisionReport, Found, LookupRequest, LookupResponse, MAX_CANDIDATES,
    SaveRequest, SaveResponse, Source,
};
use crate::bundle::SarifBundle;
use crate::decide::Reason;
use crate::key::AnalysisKey;
use crate::stats::CodeqlStats;

pub type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Other daemons of the fleet (the daemon adapts its mesh to this).
pub trait Fleet: Send + Sync + 'static {
    /// The body of an entry a member holds for `resource`, checked against
    /// the CID the member sent with it.
    fn fetch_entry(
        &self,
        resource: ResourceId,
        deadline: Duration,
    ) -> FleetFuture<'_, Option<Bytes>>;
    /// A body by content id, checked against it.
    fn fetch_blob(&self, cid: ContentId, deadline: Duration) -> FleetFuture<'_, Option<Bytes>>;
    /// We now hold `resource` (for provider records).
    fn hold(&self, _resource: &ResourceId) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the store refused the analysis: {0}")]
    Store(String),
}

/// Records stay as long as the store keeps them; this is what their
/// entries claim as TTL (informational: the store evicts by size, LRU).
const RECORD_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
/// A bundle is up to 12 MiB: members get longer to send it than a record.
const BLOB_DEADLINE: Duration = Duration::from_secs(15);

pub struct CodeqlService {
    store: Arc<Store>,
    secret: PartitionSecret,
    fleet: Option<Arc<dyn Fleet>>,
    fleet_deadline: Duration,
    stats: Mutex<CodeqlStats>,
}

impl std::fmt::Debug for CodeqlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeqlService")
            .field("fleet", &self.fleet.is_some())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CodeqlService {
    /// `secret` keys the record ids: the cluster's partition key with a
    /// mesh (so the fleet agrees), the host's own without.
    pub fn new(store: Arc<Store>, secret: PartitionSecret) -> CodeqlService {
        CodeqlService {
            store,
            secret,
            fleet: None,
            fleet_deadline: Duration::from_secs(2),
            stats: Mutex::new(CodeqlStats::default()),
        }
    }

    pub fn with_fleet(mut self, fleet: Arc<dyn Fleet>, deadline: Duration) -> CodeqlService {
        self.fleet = Some(fleet);
        self.fleet_deadline = deadline;
        self
    }

    /// The store id of `key`'s record: an HMAC of the key under `secret`.
    pub fn record_id(&self, key: &AnalysisKey) -> ResourceId {
        self.keyed_id(&format!("ghcache-codeql/record/v1/{key}"))
    }

    fn bundle_id(&self, cid: &ContentId) -> ResourceId {
        self.keyed_id(&format!("ghcache-codeql/bundle/v1/{cid}"))
    }

    /// HMAC-SHA256 of `label` under the secret (what keys partitions), as a
    /// store id: no HTTP resource id is ever an HMAC, so they cannot collide.
    fn keyed_id(&self, label: &str) -> ResourceId {
        let keyed = self.secret.partition_for(Some(label));
        let id: [u8; 32] = keyed
            .as_bytes()
            .try_into()
            .expect("a keyed partition is an HMAC-SHA256: 32 bytes");
        ResourceId::from_bytes(id)
    }

    pub fn stats(&self) -> CodeqlStats {
        self.stats.lock().clone()
    }

    /// A record read from the store or a member, accepted only if it parses
    /// and is for the key asked.
    fn parse_record(&self, key: &AnalysisKey, body: &[u8]) -> Option<AnalysisRecord> {
        match serde_json::from_slice::<AnalysisRecord>(body) {
            Ok(record) if record.key == *key && record.bundle_cid.parse::<ContentId>().is_ok() => {
                Some(record)
            }
            _ => {
                self.stats.lock().refused += 1;
                tracing::warn!(%key, "an analysis record is unreadable or not for its key; ignored");
                None
            }
        }
    }

    fn local_record(&self, key: &AnalysisKey, rid: &ResourceId) -> Option<AnalysisRecord> {
        let hit = self.store.get(rid, &Partition::Anonymous)?;
        self.parse_record(key, &hit.body)
    }

    /// The newest candidate held here or by the fleet, within `max_age`.
    pub async fn lookup(&self, request: &LookupRequest) -> Result<LookupResponse, ServiceError> {
        if request.candidates.len() > MAX_CANDIDATES {
            return Err(ServiceError::BadRequest(format!(
                "at most {MAX_CANDIDATES} candidates"
            )));
        }
        self.stats.lock().lookups += 1;
        let now = now_secs();
        let young = |r: &AnalysisRecord| now.saturating_sub(r.created_at) <= request.max_age_secs;
        let mut expired = 0;
        let mut best: Option<Found> = None;
        let rids: Vec<ResourceId> = request
            .candidates
            .iter()
            .map(|key| self.record_id(key))
            .collect();
        for (index, key) in request.candidates.iter().enumerate() {
            if let Some(record) = self.local_record(key, &rids[index]) {
                if young(&record) {
                    best = Some(Found {
                        index,
                        record,
                        source: Source::Local,
                    });
                    break;
                }
                expired += 1;
            }
        }
        // Members may hold a newer candidate than we do: ask for those only.
        let newer = best.as_ref().map_or(request.candidates.len(), |f| f.index);
        if let (Some(fleet), true) = (&self.fleet, newer > 0) {
            let asks = rids[..newer]
                .iter()
                .map(|rid| fleet.fetch_entry(*rid, self.fleet_deadline));
            let answers = futures_util::future::join_all(asks).await;
            for (index, body) in answers.into_iter().enumerate() {
                let key = &request.candidates[index];
                let Some(record) = body.and_then(|b| self.parse_record(key, &b)) else {
                    continue;
                };
                if !young(&record) {
                    expired += 1;
                    continue;
                }
                // Keep it: this host now holds it for the next job and for peers.
                if let Ok(body) = serde_json::to_vec(&record) {
                    self.put(rids[index], Bytes::from(body));
                }
                best = Some(Found {
                    index,
                    record,
                    source: Source::Fleet,
                });
                break;
            }
        }
        let mut stats = self.stats.lock();
        match best.as_ref().map(|f| f.source) {
            Some(Source::Local) => stats.hits_local += 1,
            Some(Source::Fleet) => stats.hits_fleet += 1,
            None => {}
        }
        Ok(LookupResponse {
            found: best,
            expired,
        })
    }

    /// The packed bundle with content id `cid`, from the store or the fleet
    /// (checked against `cid` either way).
    pub async fn bundle(&self, cid: &ContentId) -> Option<Bytes> {
        if let Some(body) = self.store.get_blob(cid) {
            return Some(body);
        }
        let fleet = self.fleet.as_ref()?;
        let body = fleet.fetch_blob(*cid, BLOB_DEADLINE).await?;
        if !cid.verify(&body) {
            self.stats.lock().refused += 1;
            tracing::warn!(%cid, "a member sent a SARIF bundle that does not match its content id; refused");
            return None;
        }
        self.put(self.bundle_id(cid), body.clone());
        Some(body)
    }

    /// Stores an analysis after checking that the bundle is what the record
    /// says and is valid SARIF with safe names.
    pub fn save(&self, request: &SaveRequest) -> Result<SaveResponse, ServiceError> {
        let packed = base64::engine::general_purpose::STANDARD
            .decode(&request.bundle)
            .map_err(|e| ServiceError::BadRequest(format!("bundle is not base64: {e}")))?;
        let cid = ContentId::of(&packed);
        let record = &request.record;
        if record.bundle_cid != cid.to_string() {
            return Err(ServiceError::BadRequest(format!(
                "the record names bundle {} but the bundle is {cid}",
                record.bundle_cid
            )));
        }
        let bundle = SarifBundle::unpack_verified(&packed, &cid)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        // The record is what jobs are told about the analysis: its counts
        // and names must be the bundle's.
        let names: Vec<&str> = bundle.files().iter().map(|f| f.name()).collect();
        if record.files != names || record.results != bundle.result_counts() {
            return Err(ServiceError::BadRequest(
                "the record's files or result counts are not the bundle's".into(),
            ));
        }
        let body =
            serde_json::to_vec(record).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        self.put_checked(self.bundle_id(&cid), Bytes::from(packed))?;
        self.put_checked(self.record_id(&record.key), Bytes::from(body))?;
        self.stats.lock().saves += 1;
        Ok(SaveResponse {
            key: record.key,
            bundle_cid: cid.to_string(),
        })
    }

    /// Counts the outcome a client decided.
    pub fn record_decision(&self, report: &DecisionReport) {
        let mut stats = self.stats.lock();
        // Only known reasons become labels: a client cannot grow the metrics.
        let reason = Reason::from_label(&report.reason);
        match reason {
            Some(Reason::IdenticalTree) if report.skipped => stats.skips.identical_tree += 1,
            Some(Reason::NoRelevantChanges) if report.skipped => {
                stats.skips.no_relevant_changes += 1
            }
            Some(r) if !report.skipped && !r.is_skip() => {
                *stats.scans.entry(r.label().to_owned()).or_insert(0) += 1;
                return;
            }
            _ => {
                *stats.scans.entry("other".to_owned()).or_insert(0) += 1;
                return;
            }
        }
        // At most a day per skip: a client cannot inflate the figure much.
        stats.seconds_saved += report.seconds_saved.min(86_400);
    }

    fn put_checked(&self, rid: ResourceId, body: Bytes) -> Result<(), ServiceError> {
        let meta = EntryMeta {
            stored_at_ms: now_secs() * 1000,
            ttl_ms: RECORD_TTL_MS,
            ..EntryMeta::for_body(&body)
        };
        self.store
            .put(rid, Partition::Anonymous, meta, body)
            .map_err(|e| ServiceError::Store(e.to_string()))?;
        if let Some(fleet) = &self.fleet {
            fleet.hold(&rid);
        }
        Ok(())
    }

    fn put(&self, rid: ResourceId, body: Bytes) {
        if let Err(e) = self.put_checked(rid, body) {
            tracing::warn!(error = %e, "cannot keep an analysis fetched from the fleet");
        }
    }
}
