//! The loop's side of the fetch protocol and of announcements: carrying out
//! the fetch and provider machines' actions, membership probes, serving, and
//! penalties for refused messages.

use std::time::Instant;

use ghcache_core::{Partition, ResourceId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{PeerId, gossipsub, kad};

use super::{EventLoop, Pending};
use crate::command::{Answer, Internal, Reply, Wanted};
use crate::envelope::seal_message;
use crate::fetch::{
    Action, EntryAnswer, FetchId, verify_blob_response, verify_entry, verify_response,
};
use crate::membership::MAX_PROBE_ATTEMPTS;
use crate::penalty::Verdict;
use crate::serve::Request;
use crate::wire::{FETCH_REQUEST_AAD, Frame, Reject, encode_request};

impl EventLoop {
    /// Whether fetches may go to `peer`: not banned, not known to hold
    /// another cluster key.
    fn askable(&self, peer: &PeerId) -> bool {
        !self.penalties.is_banned(peer) && !self.members.is_stranger(peer)
    }

    pub(super) fn start_fetch(
        &mut self,
        wanted: Wanted,
        request: Vec<u8>,
        reply: Reply,
        only: Option<PeerId>,
    ) {
        let candidates: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .copied()
            .filter(|p| self.askable(p) && only.is_none_or(|o| o == *p))
            .collect();
        let holder = match wanted {
            Wanted::Entry(rid) => self.announcements.holder(&rid),
            Wanted::Blob(_) => None,
        };
        let actions = self
            .fetches
            .start(wanted, request, reply, candidates, holder);
        // A request to one peer waits for its fetch under way: not a
        // round trip to learn from.
        self.apply_fetch_timed(actions, only.is_none());
    }

    /// Carries out what the fetch machine decided.
    pub(super) fn apply_fetch(&mut self, actions: Vec<Action<kad::QueryId>>) {
        self.apply_fetch_timed(actions, true);
    }

    fn apply_fetch_timed(&mut self, actions: Vec<Action<kad::QueryId>>, timed: bool) {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Ask {
                    fetch,
                    peer,
                    request,
                    via_provider,
                } => {
                    self.traffic.bytes_out += request.len() as u64;
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_request(&peer, Frame::Bytes(request));
                    self.pending.insert(
                        id,
                        Pending::Fetch {
                            fetch,
                            via_provider,
                            sent_at: timed.then(Instant::now),
                        },
                    );
                }
                Action::FindProviders { fetch, resource } => {
                    let key = kad::RecordKey::new(&self.keys.provider_key(&resource));
                    match self.swarm.behaviour_mut().kad.as_mut() {
                        Some(k) => {
                            let qid = k.get_providers(key);
                            self.fetches.providers_started(fetch, qid);
                        }
                        None => queue.extend(self.fetches.providers_unavailable(fetch)),
                    }
                }
                Action::FinishQuery(qid) => {
                    if let Some(mut q) = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .as_mut()
                        .and_then(|k| k.query_mut(&qid))
                    {
                        q.finish();
                    }
                }
            }
        }
    }

    pub(super) fn on_providers(&mut self, qid: kad::QueryId, found: Vec<PeerId>, last: bool) {
        #[cfg(feature = "test-util")]
        if let Some(probe) = self.provider_probes.get_mut(&qid) {
            probe.found.extend(found);
            if last && let Some(probe) = self.provider_probes.remove(&qid) {
                let _ = probe.reply.send(probe.found);
            }
            return;
        }
        let found = found
            .into_iter()
            .filter(|p| *p != self.peer_id && self.askable(p))
            .collect();
        let actions = self.fetches.providers_found(qid, found, last);
        self.apply_fetch(actions);
    }

    /// A fetch request failed (closed stream, timeout).
    pub(super) fn on_outbound_failure(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        error: &request_response::OutboundFailure,
    ) {
        match self.pending.remove(&request_id) {
            Some(Pending::Fetch { fetch, .. }) => {
                let actions = self.fetches.failed(fetch);
                self.apply_fetch(actions);
            }
            Some(Pending::Probe { .. }) => self.probe_failed(peer, request_id, error),
            #[cfg(feature = "test-util")]
            Some(Pending::Raw(tx)) => {
                let _ = tx.send(None);
            }
            None => {}
        }
    }

    // ---- provider records ---------------------------------------------

    /// Queues a provider record for `rid` unless we publish one already.
    pub(super) fn hold(&mut self, rid: ResourceId) {
        if self.swarm.behaviour().kad.is_enabled() {
            let key = kad::RecordKey::new(&self.keys.provider_key(&rid));
            if self.provides.hold(key) {
                self.drain_provides();
            }
        }
    }

    /// Computes the provider keys of everything the store holds, off the
    /// event loop; the answer comes back as [`Internal::Held`].
    pub(super) fn refresh_held(&self) {
        if !self.config.kademlia {
            return;
        }
        let store = self.store.clone();
        let keys = self.keys.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let held = tokio::task::spawn_blocking(move || {
                store
                    .resource_ids()
                    .iter()
                    .map(|rid| kad::RecordKey::new(&keys.provider_key(rid)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let _ = tx.send(Internal::Held(held)).await;
        });
    }

    /// Republishes what the store holds and withdraws what it no longer
    /// holds (evicted entries).
    pub(super) fn on_held(&mut self, keys: Vec<kad::RecordKey>) {
        let gone = self.provides.held(keys);
        if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
            for key in &gone {
                k.stop_providing(key);
            }
        }
        self.drain_provides();
    }

    /// Starts queued publications. While the routing table is empty a
    /// publication would reach no one, so they wait.
    pub(super) fn drain_provides(&mut self) {
        let Some(k) = self.swarm.behaviour_mut().kad.as_mut() else {
            return;
        };
        if !k.kbuckets().any(|b| b.num_entries() > 0) {
            return;
        }
        while let Some(key) = self.provides.next_to_start() {
            match k.start_providing(key) {
                Ok(qid) => self.provides.started(qid),
                Err(e) => {
                    self.provides.not_started();
                    tracing::debug!(error = %e, "provider record not published");
                }
            }
        }
    }

    // ---- membership -----------------------------------------------------

    /// Sends the membership probe to `peer`, unless it has a verdict, a
    /// probe in flight, or used up its attempts. Called on every connection,
    /// not just the first: with simultaneous dials the first connection may
    /// be the one that is dropped, taking its probe with it.
    pub(super) fn probe(&mut self, peer: PeerId) {
        if !self
            .members
            .probe_due(&peer, |id| self.pending.contains_key(id))
        {
            return;
        }
        let resource = ResourceId::from_bytes(rand::random());
        let request = seal_message(
            self.keys.envelope_key(),
            FETCH_REQUEST_AAD,
            Some(&resource),
            None,
            &encode_request(&Partition::Anonymous),
        );
        self.traffic.bytes_out += request.len() as u64;
        let id = self
            .swarm
            .behaviour_mut()
            .fetch
            .send_request(&peer, Frame::Bytes(request));
        self.pending.insert(
            id,
            Pending::Probe {
                resource,
                sent_at: Instant::now(),
            },
        );
        self.members.probe_sent(peer, id);
    }

    /// A probe got no answer: ask again (on another connection if the one
    /// it used closed) while the peer is connected and attempts remain.
    fn probe_failed(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        error: &request_response::OutboundFailure,
    ) {
        let connected = self.swarm.is_connected(&peer);
        let unsupported = matches!(
            error,
            request_response::OutboundFailure::UnsupportedProtocols
        );
        if !self
            .members
            .probe_failed(peer, request_id, connected, unsupported)
        {
            return;
        }
        self.probe(peer);
        if self.members.probe_of(&peer) == Some(request_id) {
            tracing::debug!(%peer, "membership probe got no answer after {MAX_PROBE_ATTEMPTS} attempts");
        }
    }

    /// The peer answered with an empty frame: it could not open our request,
    /// so it does not hold our cluster key.
    fn refused(&mut self, peer: PeerId, message: &'static str) {
        self.members.stranger(peer);
        self.penalties.refused_by(peer, message);
    }

    // ---- answers, requests, announcements -----------------------------

    pub(super) fn on_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        frame: Frame,
    ) {
        if let Frame::Bytes(b) = &frame {
            self.traffic.bytes_in += b.len() as u64;
        }
        let refused = matches!(&frame, Frame::Bytes(b) if b.is_empty());
        match self.pending.remove(&request_id) {
            None => {}
            Some(Pending::Probe { .. }) if refused => self.refused(peer, "membership probe"),
            Some(Pending::Fetch { fetch, .. }) if refused => {
                self.refused(peer, "fetch request");
                let actions = self.fetches.failed(fetch);
                self.apply_fetch(actions);
            }
            #[cfg(feature = "test-util")]
            Some(Pending::Raw(tx)) => {
                let _ = tx.send(match frame {
                    Frame::Bytes(b) => Some(b),
                    _ => None,
                });
            }
            Some(Pending::Probe { resource, sent_at }) => {
                match verify_response(self.keys.envelope_key(), &resource, frame) {
                    Ok(_) => {
                        self.rtt.record(sent_at.elapsed());
                        self.members.probe_answered(peer, Some(true));
                    }
                    Err(r) => {
                        let verdict = (r == Reject::Decrypt).then_some(false);
                        self.members.probe_answered(peer, verdict);
                        self.reject(peer, r, "membership probe answer");
                    }
                }
            }
            Some(Pending::Fetch {
                fetch,
                via_provider,
                sent_at,
            }) => {
                if let Some(sent) = sent_at {
                    self.rtt.record(sent.elapsed());
                }
                self.on_fetch_response(peer, fetch, via_provider, frame)
            }
        }
    }

    fn on_fetch_response(
        &mut self,
        peer: PeerId,
        fetch: FetchId,
        via_provider: bool,
        frame: Frame,
    ) {
        let Some(wanted) = self.fetches.wanted(fetch) else {
            return;
        };
        let key = self.keys.envelope_key();
        let answer = match wanted {
            Wanted::Entry(rid) => verify_entry(key, &rid, frame).map(|o| {
                o.map(|a| match a {
                    EntryAnswer::Copy(copy) => Answer::Entry(*copy),
                    EntryAnswer::InFlight(claim) => Answer::InFlight(peer, claim),
                })
            }),
            Wanted::Blob(cid) => {
                verify_blob_response(key, &cid, frame).map(|o| o.map(Answer::Blob))
            }
        };
        let answer = match answer {
            Err(r) => {
                self.reject(peer, r, "fetch response");
                None
            }
            Ok(None) => None,
            Ok(Some(found)) => {
                self.members.member(peer);
                Some(found)
            }
        };
        let actions = self.fetches.answered(fetch, answer, via_provider);
        self.apply_fetch(actions);
    }

    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        frame: Frame,
        channel: ResponseChannel<Frame>,
    ) {
        let bytes = match frame.into_bytes() {
            Ok(b) => b,
            Err(r) => return self.reject(peer, r, "fetch request"),
        };
        self.traffic.bytes_in += bytes.len() as u64;
        let request = match self.server.open(&bytes) {
            Ok(r) => r,
            Err(r) => {
                if r == Reject::Decrypt {
                    self.members.stranger(peer);
                    // Say so with an empty frame (never a valid envelope):
                    // the peer then knows at once that we are not of its
                    // cluster, even if our own probe to it was lost.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_response(channel, Frame::Bytes(Vec::new()));
                }
                return self.reject(peer, r, "fetch request");
            }
        };
        let tx = self.internal_tx.clone();
        match request {
            Request::Entry {
                resource,
                partition,
                claim,
            } => self
                .server
                .spawn(Wanted::Entry(resource), partition, claim, channel, tx),
            Request::Blob(cid) => self
                .server
                .spawn(Wanted::Blob(cid), None, None, channel, tx),
            Request::Unknown { resource, cid } => {
                tracing::debug!(%peer, "fetch request of an unknown kind: answering not found");
                let frame = self.server.not_found(resource.as_ref(), cid.as_ref());
                self.respond(channel, frame, false);
            }
        }
    }

    /// Sends an answer built for a peer's request.
    pub(super) fn respond(&mut self, channel: ResponseChannel<Frame>, frame: Frame, found: bool) {
        let len = match &frame {
            Frame::Bytes(b) => b.len() as u64,
            _ => 0,
        };
        if self
            .swarm
            .behaviour_mut()
            .fetch
            .send_response(channel, frame)
            .is_ok()
        {
            self.traffic.bytes_out += len;
            if found {
                self.traffic.fetches_served += 1;
            } else {
                self.traffic.fetches_not_found += 1;
            }
        }
    }

    pub(super) fn on_gossip(
        &mut self,
        source: PeerId,
        author: Option<PeerId>,
        id: gossipsub::MessageId,
        data: &[u8],
    ) {
        self.traffic.bytes_in += data.len() as u64;
        let verdict = self.announcements.check(data);
        let acceptance = if verdict.is_ok() {
            gossipsub::MessageAcceptance::Accept
        } else {
            gossipsub::MessageAcceptance::Reject
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        match verdict {
            // An honest relay may forward a replay it had not seen itself:
            // count it, but only strike the peer that authored it.
            Err(Reject::Replayed) if author != Some(source) => {
                self.penalties
                    .count(source, Reject::Replayed, "announcement")
            }
            Err(r) => self.reject(source, r, "announcement"),
            Ok(ann) => self.announcements.apply(ann, author),
        }
    }

    /// Counts, logs and strikes a refused message; past the threshold, the
    /// peer is blocked and disconnected.
    pub(super) fn reject(&mut self, peer: PeerId, reason: Reject, message: &'static str) {
        if self.penalties.reject(peer, reason, message, Instant::now()) == Verdict::Ban {
            let b = self.swarm.behaviour_mut();
            b.blocked.block_peer(peer);
            if let Some(k) = b.kad.as_mut() {
                k.remove_peer(&peer);
            }
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}
