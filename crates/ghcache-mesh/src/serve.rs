//! Answering other members' fetch requests from our store. Opening a request
//! gives a verdict; the answer is built off the event loop (the store reads
//! disk) and comes back to it as [`Internal::Respond`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_peer::Flights;
use ghcache_store::Store;
use libp2p::request_response::ResponseChannel;
use tokio::sync::mpsc;

use crate::command::{Internal, Wanted};
use crate::envelope::{open_message, seal_message};
use crate::wire::{
    ClaimAsk, FETCH_REQUEST_AAD, FETCH_RESPONSE_AAD, Frame, Reject, decode_entry_request,
    encode_in_flight, encode_response,
};

/// Longest we hold a member's request for our own fetch under way.
const MAX_HOLD: Duration = Duration::from_secs(30);

/// An opened fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// An entry, preferably of `partition` (`None`: a partition we cannot
    /// decode, answered "not found").
    Entry {
        resource: ResourceId,
        partition: Option<Partition>,
        /// The requester's claim (it is about to fetch upstream).
        claim: Option<ClaimAsk>,
    },
    Blob(ContentId),
    /// A kind we do not know (a newer daemon's, during a rolling upgrade).
    Unknown {
        resource: Option<ResourceId>,
        cid: Option<ContentId>,
    },
}

pub(crate) struct Server {
    store: Arc<Store>,
    key: [u8; 32],
    max_message_bytes: usize,
    /// Test hook: delay before answering each request.
    delay_ms: Arc<AtomicU64>,
    /// The proxy's upstream fetches under way, once it shared them.
    flights: Arc<OnceLock<Arc<Flights>>>,
}

impl Server {
    pub(crate) fn new(
        store: Arc<Store>,
        key: [u8; 32],
        max_message_bytes: usize,
        delay_ms: Arc<AtomicU64>,
        flights: Arc<OnceLock<Arc<Flights>>>,
    ) -> Self {
        Server {
            store,
            key,
            max_message_bytes,
            delay_ms,
            flights,
        }
    }

    /// The verdict on a request's bytes. It opened under the cluster key, so
    /// a member sent it: a request we do not understand is [`Request::Unknown`],
    /// never a rejection.
    pub(crate) fn open(&self, bytes: &[u8]) -> Result<Request, Reject> {
        let opened = open_message(&self.key, FETCH_REQUEST_AAD, bytes)?;
        Ok(match (opened.resource, opened.cid) {
            (Some(resource), None) => {
                let decoded = decode_entry_request(&opened.plaintext).ok();
                Request::Entry {
                    resource,
                    partition: decoded.map(|(p, _)| p),
                    claim: decoded.and_then(|(_, c)| c),
                }
            }
            (None, Some(cid)) if opened.plaintext.is_empty() => Request::Blob(cid),
            (resource, cid) => Request::Unknown { resource, cid },
        })
    }

    /// The sealed "not found" for a request of an unknown kind.
    pub(crate) fn not_found(
        &self,
        resource: Option<&ResourceId>,
        cid: Option<&ContentId>,
    ) -> Frame {
        Frame::Bytes(seal_message(
            &self.key,
            FETCH_RESPONSE_AAD,
            resource,
            cid,
            &encode_response(None),
        ))
    }

    /// Looks `request` up in the store off the loop and sends the sealed
    /// answer back through `tx`.
    pub(crate) fn spawn(
        &self,
        wanted: Wanted,
        partition: Option<Partition>,
        claim: Option<ClaimAsk>,
        channel: ResponseChannel<Frame>,
        tx: mpsc::Sender<Internal>,
    ) {
        let store = self.store.clone();
        let key = self.key;
        let delay = self.delay_ms.load(Ordering::Relaxed);
        let max = self.max_message_bytes;
        let under_way = match (wanted, claim, self.flights.get()) {
            (Wanted::Entry(rid), Some(ask), Some(flights)) => {
                flights.under_way(&rid).map(|w| (rid, ask, w))
            }
            _ => None,
        };
        tokio::spawn(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if let Some((rid, ask, waiter)) = under_way {
                if ask.wait_ms > 0 {
                    // Asked to wait: answer from the store once our fetch
                    // is stored (or failed: then "not found").
                    let hold = Duration::from_millis(u64::from(ask.wait_ms)).min(MAX_HOLD);
                    waiter.wait(hold).await;
                } else if waiter.claim() < ask.claim {
                    // Ours is earlier: the requester may wait for it.
                    let plain = encode_in_flight(waiter.claim());
                    let sealed = seal_message(&key, FETCH_RESPONSE_AAD, Some(&rid), None, &plain);
                    let _ = tx
                        .send(Internal::Respond {
                            channel,
                            frame: Frame::Bytes(sealed),
                            found: false,
                        })
                        .await;
                    return;
                }
            }
            let built =
                tokio::task::spawn_blocking(move || answer(&store, &key, max, wanted, partition))
                    .await;
            if let Ok((frame, found)) = built {
                let _ = tx
                    .send(Internal::Respond {
                        channel,
                        frame,
                        found,
                    })
                    .await;
            }
        });
    }
}

/// The sealed answer, and whether it holds what was asked.
fn answer(
    store: &Store,
    key: &[u8; 32],
    max: usize,
    wanted: Wanted,
    partition: Option<Partition>,
) -> (Frame, bool) {
    match (wanted, partition) {
        (Wanted::Entry(rid), Some(partition)) => {
            // The requester's partition's copy, unless it is marked stale
            // and another partition holds a newer one: that is the body a
            // stale copy is after (a synthesised ETag confirms it).
            let own = store.get(&rid, &partition).map(|h| (partition, h));
            let hit = match own {
                Some(own) if !own.1.meta.stale => Some(own),
                own => store
                    .get_any(&rid)
                    .filter(|(_, h)| !h.meta.stale)
                    .or(own)
                    .or_else(|| store.get_any(&rid)),
            };
            // Never send what the requester would refuse as oversized.
            let hit = hit.filter(|(_, h)| h.body.len() + 4096 + h.meta.headers.len() * 256 < max);
            let (plain, cid) = match &hit {
                Some((p, h)) => (
                    encode_response(Some((p, &h.meta, &h.body))),
                    Some(h.meta.body_cid),
                ),
                None => (encode_response(None), None),
            };
            let sealed = seal_message(key, FETCH_RESPONSE_AAD, Some(&rid), cid.as_ref(), &plain);
            (Frame::Bytes(sealed), hit.is_some())
        }
        (Wanted::Blob(cid), _) => {
            let body = store.get_blob(&cid).filter(|b| b.len() + 4096 < max);
            let mut plain = Vec::with_capacity(1 + body.as_ref().map_or(0, |b| b.len()));
            plain.push(u8::from(body.is_some()));
            if let Some(b) = &body {
                plain.extend_from_slice(b);
            }
            let sealed = seal_message(key, FETCH_RESPONSE_AAD, None, Some(&cid), &plain);
            (Frame::Bytes(sealed), body.is_some())
        }
        (Wanted::Entry(rid), None) => {
            let sealed = seal_message(
                key,
                FETCH_RESPONSE_AAD,
                Some(&rid),
                None,
                &encode_response(None),
            );
            (Frame::Bytes(sealed), false)
        }
    }
}
