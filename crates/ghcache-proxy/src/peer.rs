//! The seam between the proxy and the mesh lives in `ghcache-peer`; the
//! proxy re-exports it and keeps its own policy on peer copies.

pub use ghcache_peer::{NoPeers, PeerCopy, PeerFuture, PeerSource, PeerStatus, StatusFuture};

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
