//! The seam between the proxy and the mesh. The proxy never talks to libp2p;
//! it asks a [`PeerSource`] after its own store and before the upstream, and
//! tells it about new versions and writes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_store::EntryMeta;

/// Whether a copy from a mesh member may be served on its word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PeerTrust {
    /// Served only after GitHub answers `304` to the requester's own token
    /// for the ETag synthesised from the peer's bytes (free, and it proves
    /// the exact body): a compromised member cannot feed the fleet forgeries.
    #[default]
    Verify,
    /// A fresh copy labelled with the requester's partition is served as a
    /// `HIT` with no request: peer-hit latency, trusting every member.
    Members,
}

/// A copy of a resource held by another daemon (already decrypted and
/// checked against its CID by the mesh).
#[derive(Debug, Clone)]
pub struct PeerCopy {
    pub partition: Partition,
    pub meta: EntryMeta,
    pub body: Bytes,
}

pub type PeerFuture<'a> = Pin<Box<dyn Future<Output = Option<PeerCopy>> + Send + 'a>>;

pub trait PeerSource: Send + Sync + 'static {
    /// The best copy peers hold for `resource`, preferring `partition`;
    /// must resolve within `deadline` (the proxy enforces it too).
    fn lookup<'a>(
        &'a self,
        resource: &'a ResourceId,
        partition: &'a Partition,
        deadline: Duration,
    ) -> PeerFuture<'a>;

    /// We stored a new version of `resource` (a `200` with a new ETag).
    fn announce_version(
        &self,
        resource: &ResourceId,
        cid: &ContentId,
        etag: Option<&str>,
        size: u64,
    );

    /// A write went through us: these paths (and all their query variants)
    /// changed.
    fn announce_invalidation(&self, paths: &[String]);

    /// We now hold a copy of `resource` (stored from upstream or a peer), so
    /// peers may fetch it from us.
    fn hold(&self, _resource: &ResourceId) {}

    /// What `/_ghcache/peers` shows (peer id, addresses, peers, counters).
    fn describe(&self) -> Pin<Box<dyn Future<Output = serde_json::Value> + Send + '_>> {
        Box::pin(std::future::ready(serde_json::json!({"enabled": false})))
    }
}

/// No mesh: the proxy goes from its store straight to the upstream.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPeers;

impl PeerSource for NoPeers {
    fn lookup<'a>(&'a self, _: &'a ResourceId, _: &'a Partition, _: Duration) -> PeerFuture<'a> {
        Box::pin(std::future::ready(None))
    }
    fn announce_version(&self, _: &ResourceId, _: &ContentId, _: Option<&str>, _: u64) {}
    fn announce_invalidation(&self, _: &[String]) {}
}
