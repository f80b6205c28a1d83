//! The messages between the [`crate::Mesh`] handle and the event loop, and
//! from the tasks the loop spawns back to it. A leaf: no other module of the
//! crate but the wire format and the error type.

use bytes::Bytes;
use ghcache_core::{ContentId, ResourceId};
use ghcache_peer::{MeshStats, PeerCopy};
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId, kad};
use tokio::sync::{mpsc, oneshot};

use crate::error::MeshError;
use crate::wire::Frame;

/// What the handle asks of the event loop.
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    /// Starts a dial; answers once it is under way.
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), MeshError>>,
    },
    /// Dials and answers with the outcome of the connection.
    Connect {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, MeshError>>,
    },
    Fetch {
        wanted: Wanted,
        /// The sealed request.
        request: Vec<u8>,
        reply: Reply,
        /// Ask only this peer (waiting for its fetch under way).
        only: Option<PeerId>,
    },
    /// A sealed announcement.
    Publish(Vec<u8>),
    Stats(oneshot::Sender<MeshStats>),
    Shutdown(oneshot::Sender<()>),
    /// Test hook: raw bytes as a fetch request, raw response back.
    #[cfg(feature = "test-util")]
    Raw {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// Test hook: every provider Kademlia knows for a resource.
    #[cfg(feature = "test-util")]
    Providers {
        resource: ResourceId,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
}

/// How a peer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    Registry,
    Bootstrap,
    Mdns,
    Kademlia,
    Manual,
}

/// Messages from tasks the loop spawned.
pub(crate) enum Internal {
    /// A fetch answer built off the loop, ready to send.
    Respond {
        channel: ResponseChannel<Frame>,
        frame: Frame,
        found: bool,
    },
    Discovered {
        source: Source,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    /// Provider keys of every resource the store holds (start, republish).
    Held(Vec<kad::RecordKey>),
    /// Bootstrap address `index` (a `/dns*` one) resolved to these.
    Resolved { index: usize, addrs: Vec<Multiaddr> },
}

/// What a fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// An entry (metadata and body) of a resource.
    Entry(ResourceId),
    /// A body by content id.
    Blob(ContentId),
}

/// A verified answer to a fetch.
#[derive(Debug)]
pub(crate) enum Answer {
    Entry(PeerCopy),
    Blob(Bytes),
    /// The peer holds no copy but fetches it under this earlier claim.
    InFlight(PeerId, u64),
}

/// What an entry fetch hands its caller.
#[derive(Debug)]
pub(crate) enum EntryNote {
    Copy(PeerCopy),
    InFlight(PeerId, u64),
}

/// Where a fetch's answer goes.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Every valid entry as it arrives; closed when the fetch ends. The
    /// caller picks the best (its own partition's, a newer version).
    Entries(mpsc::UnboundedSender<EntryNote>),
    Blob(oneshot::Sender<Option<Bytes>>),
}

impl Reply {
    /// The caller stopped waiting (its deadline passed).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Reply::Entries(tx) => tx.is_closed(),
            Reply::Blob(tx) => tx.is_closed(),
        }
    }

    pub(crate) fn miss(self) {
        match self {
            // Dropped: the channel closes.
            Reply::Entries(_) => {}
            Reply::Blob(tx) => {
                let _ = tx.send(None);
            }
        }
    }

    /// Whether this reply takes every answer, not just the first.
    pub(crate) fn streams(&self) -> bool {
        matches!(self, Reply::Entries(_))
    }

    /// Hands on one of several answers (a streaming reply): false when the
    /// caller is gone or the reply is not one that streams.
    pub(crate) fn pass(&self, answer: Answer) -> bool {
        match (self, answer) {
            (Reply::Entries(tx), Answer::Entry(copy)) => tx.send(EntryNote::Copy(copy)).is_ok(),
            _ => false,
        }
    }

    /// Hands on an in-flight note (entry fetches only); not an answer.
    pub(crate) fn note(&self, peer: PeerId, claim: u64) {
        if let Reply::Entries(tx) = self {
            let _ = tx.send(EntryNote::InFlight(peer, claim));
        }
    }

    /// Hands `answer` to the caller; false when it is gone or the answer is
    /// of the other kind.
    pub(crate) fn answer(self, answer: Answer) -> bool {
        match (self, answer) {
            (Reply::Entries(tx), Answer::Entry(copy)) => tx.send(EntryNote::Copy(copy)).is_ok(),
            (Reply::Blob(tx), Answer::Blob(body)) => tx.send(Some(body)).is_ok(),
            _ => false,
        }
    }
}
