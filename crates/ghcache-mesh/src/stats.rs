//! Counters the event loop keeps itself; each concern (fetch, provide,
//! announce, penalty) counts its own, and the loop's snapshot gathers them
//! into a [`ghcache_peer::MeshStats`].

use ghcache_peer::RejectedCounts;

use crate::wire::Reject;

pub(crate) fn bump(counts: &mut RejectedCounts, r: Reject) {
    match r {
        Reject::Decrypt => counts.decrypt += 1,
        Reject::CidMismatch => counts.cid_mismatch += 1,
        Reject::Oversized => counts.oversized += 1,
        Reject::Malformed => counts.malformed += 1,
        Reject::Replayed => counts.replayed += 1,
    }
}

/// Bytes on the wire and fetch requests we answered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    /// Fetch requests we answered with an entry...
    pub(crate) fetches_served: u64,
    /// ...and "not found".
    pub(crate) fetches_not_found: u64,
}
