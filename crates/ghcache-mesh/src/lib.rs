//! The ghcache mesh: daemons on different hosts sharing cache entries over
//! libp2p.
//!
//! What it is for: finding the other daemons of a cluster (file registry,
//! bootstrap list, mDNS, Kademlia), fetching entries they hold within a
//! deadline (request-response), and telling them about new versions and
//! writes (gossipsub). Every payload is an AES-256-GCM envelope under a key
//! derived from the cluster secret, and every body is checked against its
//! CID, so only members read or serve entries and a peer sending garbage is
//! counted, penalised and dropped while the daemon keeps serving.
//!
//! How it is built: one task owns the libp2p `Swarm` and runs the event loop
//! (`event_loop`); everything else holds a cheap cloneable [`Mesh`] handle
//! (`handle`) that sends it commands (`command`) over a channel. It
//! implements [`ghcache_peer::PeerSource`]. Each concern of the loop keeps
//! its own state and returns verdicts: the fetch and provider-record state
//! machines (`fetch`, `provide`) do no I/O, serving (`serve`), announcements
//! (`announce`) and membership refuse bad messages with a [`Reject`], and
//! only the loop applies penalties (`penalty`) to the swarm.
//!
//! What it is not for: HTTP semantics or storage (the proxy and the store).

mod announce;
mod command;
mod config;
mod discovery;
mod envelope;
mod error;
mod event_loop;
mod fetch;
mod handle;
mod identity;
mod keys;
mod membership;
mod penalty;
mod provide;
mod rtt;
mod serve;
mod stats;
mod swarm;
mod wire;

pub use config::MeshConfig;
pub use discovery::registry::{Record as RegistryRecord, read_live as read_registry};
pub use envelope::{OpenError, Opened, aad, open, open_message, seal, seal_message};
pub use error::MeshError;
pub use ghcache_peer::{
    ConnectedPeer, DiscoveredPeers, LastRejection, MeshStats, PeerStatus, RejectedCounts,
};
pub use handle::Mesh;
pub use keys::{ClusterKeys, PBKDF2_ITERATIONS, derive_keys};
pub use libp2p::multiaddr::Protocol as MultiaddrProtocol;
pub use libp2p::{Multiaddr, PeerId};
pub use wire::{
    AnnounceKind, Announcement, FETCH_PROTOCOL, FETCH_REQUEST_AAD, FETCH_RESPONSE_AAD,
    KAD_PROTOCOL, Reject, announce_topic, decode_response, encode_request, encode_response,
};
