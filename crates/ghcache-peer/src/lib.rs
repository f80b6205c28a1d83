//! The seam between the proxy and the mesh. The proxy never talks to libp2p;
//! it asks a [`PeerSource`] after its own store and before the upstream, and
//! tells it about new versions and writes.
//!
//! A crate of its own so the mesh implements the trait without building the
//! proxy's HTTP stack (hyper, rustls), and so `ghcache peers` and `doctor`
//! read the typed [`PeerStatus`] the proxy serves at `/_ghcache/peers`.

mod flights;
mod status;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_store::EntryMeta;

pub use flights::{Claim, Flights, Joined, Waiter};
pub use status::{
    ConnectedPeer, DiscoveredPeers, LastRejection, MeshStats, PeerStatus, RejectedCounts,
};

/// A copy of a resource held by another daemon (already decrypted and
/// checked against its CID by the mesh).
#[derive(Debug, Clone)]
pub struct PeerCopy {
    pub partition: Partition,
    pub meta: EntryMeta,
    pub body: Bytes,
}

pub type PeerFuture<'a> = Pin<Box<dyn Future<Output = Option<PeerCopy>> + Send + 'a>>;

/// How a claimed lookup ended: what the proxy tells apart when it then
/// pays for a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupEnd {
    /// A member's copy came back.
    Found,
    /// Every member asked answered without one (and none fetched it under
    /// an earlier claim).
    NotHeld,
    /// The deadline passed before every member answered.
    Deadline,
    /// A member fetching it under an earlier claim was waited for, and
    /// sent nothing (its fetch failed, or took longer than the wait).
    WaitedInVain,
    /// No mesh to ask.
    NoPeers,
}

/// What [`PeerSource::lookup_claimed`] resolves to.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub copy: Option<PeerCopy>,
    pub end: LookupEnd,
}

pub type ClaimedFuture<'a> = Pin<Box<dyn Future<Output = Claimed> + Send + 'a>>;

/// What [`PeerSource::describe`] resolves to.
pub type StatusFuture<'a> = Pin<Box<dyn Future<Output = PeerStatus> + Send + 'a>>;

pub trait PeerSource: Send + Sync + 'static {
    /// The best copy peers hold for `resource`, preferring `partition`;
    /// must resolve within `deadline` (the proxy enforces it too).
    fn lookup<'a>(
        &'a self,
        resource: &'a ResourceId,
        partition: &'a Partition,
        deadline: Duration,
    ) -> PeerFuture<'a>;

    /// As [`PeerSource::lookup`], for a request holding `claim` on the
    /// resource (see [`Flights`]): when no member holds a copy but one is
    /// fetching it under an earlier claim, its answer is waited for, at most
    /// `wait` past `deadline`.
    fn lookup_claimed<'a>(
        &'a self,
        resource: &'a ResourceId,
        partition: &'a Partition,
        _claim: u64,
        deadline: Duration,
        _wait: Duration,
    ) -> ClaimedFuture<'a> {
        Box::pin(async move {
            let copy = self.lookup(resource, partition, deadline).await;
            let end = if copy.is_some() {
                LookupEnd::Found
            } else {
                LookupEnd::NoPeers
            };
            Claimed { copy, end }
        })
    }

    /// How long a lookup the caller allows `configured` for may take: a
    /// mesh stretches it when members answer slower (measured).
    fn deadline(&self, configured: Duration) -> Duration {
        configured
    }

    /// The proxy's fetches under way: a member asking for one of them
    /// under a later claim is told to wait for it.
    fn share_flights(&self, _flights: std::sync::Arc<Flights>) {}

    /// We stored a new version of `resource` (a `200` with a new ETag).
    fn announce_version(
        &self,
        resource: &ResourceId,
        cid: &ContentId,
        etag: Option<&str>,
        size: u64,
    );

    /// A copy of `resource` whose body is not the `held` one (preferring
    /// `partition`'s, not marked stale; the peer that announced the last
    /// version is asked first): what a copy the fleet marked stale is
    /// revalidated with, by a synthesised ETag, for a free `304`. Must
    /// resolve within `deadline`.
    fn newer_version<'a>(
        &'a self,
        _resource: &'a ResourceId,
        _partition: &'a Partition,
        _held: &'a ContentId,
        _deadline: Duration,
    ) -> PeerFuture<'a> {
        Box::pin(std::future::ready(None))
    }

    /// A write went through us: these paths (and all their query variants)
    /// changed.
    fn announce_invalidation(&self, paths: &[String]);

    /// We now hold a copy of `resource` (stored from upstream or a peer), so
    /// peers may fetch it from us.
    fn hold(&self, _resource: &ResourceId) {}

    /// What `/_ghcache/peers` shows (peer id, addresses, peers, counters).
    fn describe(&self) -> StatusFuture<'_> {
        Box::pin(std::future::ready(PeerStatus::disabled()))
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
