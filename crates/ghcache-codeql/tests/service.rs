//! The daemon-side service: what it refuses and what it counts, over a real
//! redb store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use base64::Engine;
use ghcache_codeql::api::{AnalysisRecord, DecisionReport, LookupRequest, SaveRequest};
use ghcache_codeql::testing::{SARIF, pack_unchecked};
use ghcache_codeql::{AnalysisKey, CodeqlService, RawInputs, SarifBundle};
use ghcache_core::{ContentId, PartitionSecret};
use ghcache_store::{Store, StoreConfig};

fn service(dir: &std::path::Path) -> CodeqlService {
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    CodeqlService::new(store, PartitionSecret::generate())
}

fn request(name: &str) -> SaveRequest {
    let inputs = RawInputs {
        repository: "o/r".into(),
        languages: "go".into(),
        codeql_version: "2.19.3".into(),
        ..RawInputs::default()
    }
    .validate()
    .unwrap();
    // Unchecked: some requests carry a name a runner must never send.
    let packed = pack_unchecked(&[(name, SARIF.as_bytes())]);
    SaveRequest {
        record: AnalysisRecord {
            key: AnalysisKey::compute(&inputs, "4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
            repository: "o/r".into(),
            commit: "c".repeat(40),
            tree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
            created_at: 4_000_000_000,
            duration_secs: 60,
            codeql_version: "2.19.3".into(),
            languages: vec!["go".into()],
            category: String::new(),
            // SARIF holds one error.
            results: [("error".to_owned(), 1)].into(),
            bundle_cid: ContentId::of(&packed).to_string(),
            bundle_len: packed.len() as u64,
            files: vec![name.into()],
        },
        bundle: base64::engine::general_purpose::STANDARD.encode(&packed),
    }
}

#[tokio::test]
async fn saves_are_checked_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let secret = PartitionSecret::generate();
    let good = request("go.sarif");
    {
        let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        let service = CodeqlService::new(store.clone(), secret.clone());
        // A record naming another bundle, and a bundle with a traversal name.
        let mut mismatched = good.clone();
        mismatched.record.bundle_cid = ContentId::of(b"other").to_string();
        assert!(
            service
                .save(&mismatched)
                .unwrap_err()
                .to_string()
                .contains("names bundle")
        );
        let mut miscounted = request("python.sarif");
        miscounted.record.results = [("note".to_owned(), 7)].into();
        let mut renamed = request("python.sarif");
        renamed.record.files = vec!["other.sarif".into()];
        for lying in [miscounted, renamed] {
            assert!(
                service
                    .save(&lying)
                    .unwrap_err()
                    .to_string()
                    .contains("not the bundle's")
            );
        }
        let traversal = request("../../etc/cron.d/x.sarif");
        assert!(
            service
                .save(&traversal)
                .unwrap_err()
                .to_string()
                .contains("plain file name")
        );
        service.save(&good).unwrap();
        assert_eq!(service.stats().saves, 1);
        store.flush();
    }
    // Reopened: the record and its bundle are still there.
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let service = CodeqlService::new(store, secret);
    let found = service
        .lookup(&LookupRequest {
            candidates: vec![good.record.key],
            max_age_secs: u64::MAX,
        })
        .await
        .unwrap()
        .found
        .unwrap();
    assert_eq!(found.record, good.record);
    let cid: ContentId = found.record.bundle_cid.parse().unwrap();
    let packed = service.bundle(&cid).await.unwrap();
    assert!(SarifBundle::unpack_verified(&packed, &cid).is_ok());
}

#[tokio::test]
async fn another_secret_sees_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let good = request("go.sarif");
    CodeqlService::new(store.clone(), PartitionSecret::generate())
        .save(&good)
        .unwrap();
    let other = CodeqlService::new(store, PartitionSecret::generate());
    let response = other
        .lookup(&LookupRequest {
            candidates: vec![good.record.key],
            max_age_secs: u64::MAX,
        })
        .await
        .unwrap();
    assert!(response.found.is_none());
}

#[tokio::test]
async fn routes_refuse_bad_requests_and_count_only_known_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    let too_many = LookupRequest {
        candidates: vec![request("a.sarif").record.key; 1002],
        max_age_secs: 1,
    };
    let reply = service
        .route("POST", "lookup", &serde_json::to_vec(&too_many).unwrap())
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        service.route("POST", "save", b"{not json").await.status,
        400
    );
    assert_eq!(
        service.route("GET", "bundle/not-a-cid", b"").await.status,
        400
    );
    assert_eq!(service.route("DELETE", "lookup", b"").await.status, 404);
    let missing = format!("bundle/{}", ContentId::of(b"nobody has this"));
    assert_eq!(service.route("GET", &missing, b"").await.status, 404);
    for (skipped, reason, seconds) in [
        (true, "identical-tree", 100),
        (true, "no-relevant-changes", 1_000_000),
        (false, "relevant-changes", 0),
        (false, "made-up-reason-\u{1b}[31m", 0),
    ] {
        let report = DecisionReport {
            skipped,
            reason: reason.into(),
            seconds_saved: seconds,
        };
        let reply = service
            .route("POST", "decision", &serde_json::to_vec(&report).unwrap())
            .await;
        assert_eq!(reply.status, 200);
    }
    let stats = service.stats();
    assert_eq!(stats.skips.identical_tree, 1);
    assert_eq!(stats.skips.no_relevant_changes, 1);
    // One skip is credited with at most a day.
    assert_eq!(stats.seconds_saved, 100 + 86_400);
    assert_eq!(stats.scans.get("relevant-changes"), Some(&1));
    assert_eq!(stats.scans.get("other"), Some(&1));
    assert_eq!(stats.scans.len(), 2);
}

/// A fleet whose members answer with fixed bytes.
struct FixedFleet {
    record: Option<bytes::Bytes>,
    blob: Option<bytes::Bytes>,
}

impl ghcache_codeql::Fleet for FixedFleet {
    fn fetch_entry(
        &self,
        _: ghcache_core::ResourceId,
        _: std::time::Duration,
    ) -> ghcache_codeql::FleetFuture<'_, Option<bytes::Bytes>> {
        Box::pin(std::future::ready(self.record.clone()))
    }
    fn fetch_blob(
        &self,
        _: ContentId,
        _: std::time::Duration,
    ) -> ghcache_codeql::FleetFuture<'_, Option<bytes::Bytes>> {
        Box::pin(std::future::ready(self.blob.clone()))
    }
}

#[tokio::test]
async fn what_members_send_is_checked_before_it_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let good = request("go.sarif");
    let cid: ContentId = good.record.bundle_cid.parse().unwrap();
    let lookup = LookupRequest {
        candidates: vec![good.record.key],
        max_age_secs: u64::MAX,
    };
    // A record for another key is refused; a bundle that is not its CID too.
    let fleet = FixedFleet {
        record: Some(
            serde_json::to_vec(&AnalysisRecord {
                key: "ab".repeat(32).parse().unwrap(),
                ..good.record.clone()
            })
            .unwrap()
            .into(),
        ),
        blob: Some(bytes::Bytes::from_static(b"forged")),
    };
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let service = CodeqlService::new(store, PartitionSecret::generate())
        .with_fleet(Arc::new(fleet), std::time::Duration::from_secs(1));
    assert!(service.lookup(&lookup).await.unwrap().found.is_none());
    assert!(service.bundle(&cid).await.is_none());
    assert_eq!(service.stats().refused, 2);
    // An honest member's record and bundle are kept for the next lookup.
    let packed = base64::engine::general_purpose::STANDARD
        .decode(&good.bundle)
        .unwrap();
    let fleet = FixedFleet {
        record: Some(serde_json::to_vec(&good.record).unwrap().into()),
        blob: Some(packed.into()),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let service = CodeqlService::new(store.clone(), PartitionSecret::generate())
        .with_fleet(Arc::new(fleet), std::time::Duration::from_secs(1));
    let found = service.lookup(&lookup).await.unwrap().found.unwrap();
    assert_eq!(found.source, ghcache_codeql::api::Source::Fleet);
    assert!(service.bundle(&cid).await.is_some());
    assert!(store.contains_blob(&cid));
    assert_eq!(service.stats().hits_fleet, 1);
}
