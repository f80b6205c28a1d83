//! The fetch state machine, free of I/O: the event loop feeds it events
//! (answers, failures, provider records found) and carries out the
//! [`Action`]s it returns (send a request, look for providers, stop a query).
//!
//! A fetch first asks connected members: the peer that last announced the
//! resource plus up to `fanout` others, in parallel. When none has it, and
//! some members were left out, it asks Kademlia for providers and asks them
//! too. The first valid answer goes to the caller (a streaming reply gets
//! every valid answer until all asked peers answered); a fetch with nobody
//! left to ask is a miss.

mod verify;

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use libp2p::PeerId;

use crate::command::{Answer, Reply, Wanted};

pub(crate) use verify::{EntryAnswer, verify_blob_response, verify_entry, verify_response};

/// Names one fetch while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FetchId(u64);

/// What the loop must do for the machine.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action<Q> {
    /// Send `request` to `peer`, then report its outcome with
    /// [`Fetcher::answered`] or [`Fetcher::failed`].
    Ask {
        fetch: FetchId,
        peer: PeerId,
        request: Vec<u8>,
        /// The peer came from a provider record.
        via_provider: bool,
    },
    /// Start a provider query for `resource`'s entry, then report its id
    /// with [`Fetcher::providers_started`].
    FindProviders {
        fetch: FetchId,
        resource: ghcache_core::ResourceId,
    },
    /// Stop this provider query early (its last event still arrives).
    FinishQuery(Q),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderStep<Q> {
    NotStarted,
    /// Asked the loop for a query; its id comes next.
    Requested,
    Running(Q),
    Done,
}

struct Fetch<Q> {
    wanted: Wanted,
    /// The sealed request, resent to providers found later.
    request: Vec<u8>,
    /// `None` once answered (a streaming reply stays until the end).
    reply: Option<Reply>,
    /// An answer was handed on.
    delivered: bool,
    outstanding: usize,
    asked: HashSet<PeerId>,
    providers: ProviderStep<Q>,
}

/// Counters of our own fetches, for the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FetchCounters {
    pub(crate) peer_hits: u64,
    pub(crate) peer_misses: u64,
    pub(crate) provider_lookups: u64,
    pub(crate) provider_hits: u64,
}

/// Every fetch under way. `Q` is the provider query id (Kademlia's in the
/// loop, a plain number in tests).
pub(crate) struct Fetcher<Q> {
    fanout: usize,
    /// Whether provider records can be looked up (Kademlia on).
    providers: bool,
    next: u64,
    fetches: HashMap<FetchId, Fetch<Q>>,
    queries: HashMap<Q, FetchId>,
    counters: FetchCounters,
}

impl<Q: Copy + Eq + Hash> Fetcher<Q> {
    pub(crate) fn new(fanout: usize, providers: bool) -> Self {
        Fetcher {
            fanout,
            providers,
            next: 0,
            fetches: HashMap::new(),
            queries: HashMap::new(),
            counters: FetchCounters::default(),
        }
    }

    pub(crate) fn counters(&self) -> FetchCounters {
        self.counters
    }

    /// What fetch `fetch` asks for, while it runs.
    pub(crate) fn wanted(&self, fetch: FetchId) -> Option<Wanted> {
        self.fetches.get(&fetch).map(|f| f.wanted)
    }

    /// Starts a fetch. `candidates` are the connected members we may ask,
    /// `holder` the peer that last announced the resource.
    pub(crate) fn start(
        &mut self,
        wanted: Wanted,
        request: Vec<u8>,
        reply: Reply,
        mut candidates: Vec<PeerId>,
        holder: Option<PeerId>,
    ) -> Vec<Action<Q>> {
        let mut chosen = Vec::new();
        if let Some(holder) = holder
            && let Some(i) = candidates.iter().position(|p| *p == holder)
        {
            chosen.push(candidates.swap_remove(i));
        }
        let fanout = self.fanout.min(candidates.len());
        // When every connected member is asked, a provider record could only
        // name a peer we are not connected to: in a small, fully connected
        // cluster that is a dead one, and the query would hold a true miss
        // until the deadline. Ask Kademlia only when some were left out.
        let everyone_asked = fanout == candidates.len();
        if !everyone_asked {
            use rand::seq::SliceRandom;
            candidates.shuffle(&mut rand::thread_rng());
        }
        chosen.extend(candidates.into_iter().take(fanout));

        let id = FetchId(self.next);
        self.next += 1;
        self.fetches.insert(
            id,
            Fetch {
                wanted,
                request,
                reply: Some(reply),
                delivered: false,
                outstanding: 0,
                asked: HashSet::new(),
                providers: if everyone_asked {
                    ProviderStep::Done
                } else {
                    ProviderStep::NotStarted
                },
            },
        );
        let mut actions = Vec::new();
        for peer in chosen {
            self.ask(id, peer, false, &mut actions);
        }
        if self.fetches.get(&id).is_some_and(|f| f.outstanding == 0) {
            self.next_step(id, &mut actions);
        }
        actions
    }

    /// The loop started the provider query asked for.
    pub(crate) fn providers_started(&mut self, fetch: FetchId, query: Q) {
        if let Some(f) = self.fetches.get_mut(&fetch) {
            f.providers = ProviderStep::Running(query);
            self.queries.insert(query, fetch);
            self.counters.provider_lookups += 1;
        }
    }

    /// The loop could not start the provider query: nobody left to ask.
    pub(crate) fn providers_unavailable(&mut self, fetch: FetchId) -> Vec<Action<Q>> {
        let mut actions = Vec::new();
        self.end(fetch, &mut actions);
        actions
    }

    /// A peer answered. `answer` is `Some` for a valid entry; the first one
    /// goes to the caller.
    pub(crate) fn answered(
        &mut self,
        fetch: FetchId,
        answer: Option<Answer>,
        via_provider: bool,
    ) -> Vec<Action<Q>> {
        if let Some(Answer::InFlight(peer, claim)) = answer {
            // No copy from this peer; its caller may wait for its fetch.
            if let Some(reply) = self.fetches.get(&fetch).and_then(|f| f.reply.as_ref()) {
                reply.note(peer, claim);
            }
            return self.failed(fetch);
        }
        if let Some(answer) = answer
            && let Some(f) = self.fetches.get_mut(&fetch)
        {
            let handed = match f.reply.take() {
                Some(reply) if reply.streams() => {
                    let handed = reply.pass(answer);
                    f.reply = Some(reply);
                    handed
                }
                Some(reply) => reply.answer(answer),
                None => false,
            };
            if handed && !f.delivered {
                f.delivered = true;
                self.counters.peer_hits += 1;
                if via_provider {
                    self.counters.provider_hits += 1;
                }
            }
        }
        self.failed(fetch)
    }

    /// A peer could not answer (no entry, refused, a closed stream).
    pub(crate) fn failed(&mut self, fetch: FetchId) -> Vec<Action<Q>> {
        let mut actions = Vec::new();
        let Some(f) = self.fetches.get_mut(&fetch) else {
            return actions;
        };
        f.outstanding = f.outstanding.saturating_sub(1);
        if f.outstanding > 0 {
            return actions;
        }
        if f.reply.is_none() || f.delivered {
            // Answered already: only the bookkeeping is left.
            self.end(fetch, &mut actions);
        } else {
            self.next_step(fetch, &mut actions);
        }
        actions
    }

    /// Providers found by `query` (the ones we may ask); `last` on its final
    /// event.
    pub(crate) fn providers_found(
        &mut self,
        query: Q,
        found: Vec<PeerId>,
        last: bool,
    ) -> Vec<Action<Q>> {
        let mut actions = Vec::new();
        let Some(&id) = self.queries.get(&query) else {
            return actions;
        };
        if self.fetches.get(&id).is_none_or(|f| f.reply.is_none()) {
            // Answered (or abandoned) already: stop looking.
            self.queries.remove(&query);
            if let Some(f) = self.fetches.get_mut(&id) {
                f.providers = ProviderStep::Done;
            }
            actions.push(Action::FinishQuery(query));
            return actions;
        }
        for peer in found {
            self.ask(id, peer, true, &mut actions);
        }
        if last {
            self.queries.remove(&query);
            let Some(f) = self.fetches.get_mut(&id) else {
                return actions;
            };
            f.providers = ProviderStep::Done;
            if f.outstanding == 0 {
                self.end(id, &mut actions);
            }
        }
        actions
    }

    /// Forgets fetches whose caller is gone (deadline passed).
    pub(crate) fn drop_abandoned(&mut self) -> Vec<Action<Q>> {
        let abandoned: Vec<FetchId> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.reply.as_ref().is_some_and(Reply::is_closed))
            .map(|(id, _)| *id)
            .collect();
        let mut actions = Vec::new();
        for id in abandoned {
            self.end(id, &mut actions);
        }
        actions
    }

    /// Fetches under way.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.fetches.len()
    }

    fn ask(&mut self, id: FetchId, peer: PeerId, via_provider: bool, out: &mut Vec<Action<Q>>) {
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        if !f.asked.insert(peer) {
            return;
        }
        f.outstanding += 1;
        out.push(Action::Ask {
            fetch: id,
            peer,
            request: f.request.clone(),
            via_provider,
        });
    }

    /// Every peer asked so far answered without the entry: look for
    /// providers, or give up.
    fn next_step(&mut self, id: FetchId, out: &mut Vec<Action<Q>>) {
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        if f.reply.as_ref().is_none_or(Reply::is_closed) {
            self.end(id, out);
            return;
        }
        match (f.providers, f.wanted) {
            // Provider records are kept per resource, not per body.
            (ProviderStep::NotStarted, Wanted::Entry(resource)) if self.providers => {
                f.providers = ProviderStep::Requested;
                out.push(Action::FindProviders {
                    fetch: id,
                    resource,
                });
            }
            // The query's last event decides.
            (ProviderStep::Requested | ProviderStep::Running(_), _) => {}
            _ => self.end(id, out),
        }
    }

    /// Forgets a fetch; a caller still waiting gets `None` (a miss).
    fn end(&mut self, id: FetchId, out: &mut Vec<Action<Q>>) {
        let Some(f) = self.fetches.remove(&id) else {
            return;
        };
        if let ProviderStep::Running(query) = f.providers {
            self.queries.remove(&query);
            out.push(Action::FinishQuery(query));
        }
        if let Some(reply) = f.reply
            && !f.delivered
        {
            self.counters.peer_misses += 1;
            reply.miss();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ghcache_core::{ContentId, ResourceId};
    use tokio::sync::oneshot;

    use super::*;

    type Reader = oneshot::Receiver<Option<Bytes>>;

    fn blob(fetcher: &mut Fetcher<u32>, peers: &[PeerId]) -> (Vec<Action<u32>>, Reader) {
        let (tx, rx) = oneshot::channel();
        let wanted = Wanted::Blob(ContentId::of(b"x"));
        let actions = fetcher.start(wanted, vec![7], Reply::Blob(tx), peers.to_vec(), None);
        (actions, rx)
    }

    fn note_body(note: crate::command::EntryNote) -> Option<Bytes> {
        match note {
            crate::command::EntryNote::Copy(c) => Some(c.body),
            crate::command::EntryNote::InFlight(..) => None,
        }
    }

    fn entry(
        fetcher: &mut Fetcher<u32>,
        peers: &[PeerId],
        holder: Option<PeerId>,
    ) -> (
        Vec<Action<u32>>,
        tokio::sync::mpsc::UnboundedReceiver<crate::command::EntryNote>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let wanted = Wanted::Entry(ResourceId::from_bytes([1; 32]));
        let actions = fetcher.start(wanted, vec![7], Reply::Entries(tx), peers.to_vec(), holder);
        (actions, rx)
    }

    fn asked(actions: &[Action<u32>]) -> Vec<(FetchId, PeerId, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Ask {
                    fetch,
                    peer,
                    via_provider,
                    ..
                } => Some((*fetch, *peer, *via_provider)),
                _ => None,
            })
            .collect()
    }

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn nobody_to_ask_is_an_immediate_miss() {
        let mut f = Fetcher::<u32>::new(8, true);
        let (actions, mut rx) = blob(&mut f, &[]);
        assert!(actions.is_empty());
        assert_eq!(rx.try_recv(), Ok(None));
        assert_eq!(f.counters().peer_misses, 1);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn an_in_flight_answer_is_a_note_not_a_hit() {
        let mut f = Fetcher::<u32>::new(8, true);
        let ps = peers(2);
        let (actions, mut rx) = entry(&mut f, &ps, None);
        let id = asked(&actions)[0].0;
        assert!(
            f.answered(id, Some(Answer::InFlight(ps[0], 9)), false)
                .is_empty()
        );
        match rx.try_recv() {
            Ok(crate::command::EntryNote::InFlight(peer, 9)) => assert_eq!(peer, ps[0]),
            other => panic!("expected the note, got {other:?}"),
        }
        assert_eq!(f.len(), 1, "the other peer is still outstanding");
        assert!(f.failed(id).is_empty());
        assert_eq!(f.len(), 0);
        let c = f.counters();
        assert_eq!((c.peer_hits, c.peer_misses), (0, 1));
    }

    #[test]
    fn first_valid_answer_wins_and_the_rest_is_bookkeeping() {
        let mut f = Fetcher::<u32>::new(8, true);
        let ps = peers(3);
        let (actions, mut rx) = blob(&mut f, &ps);
        let asked = asked(&actions);
        assert_eq!(asked.len(), 3, "every member asked at once");
        let id = asked[0].0;
        assert!(f.failed(id).is_empty());
        let answer = Answer::Blob(Bytes::from_static(b"x"));
        assert!(f.answered(id, Some(answer), false).is_empty());
        assert_eq!(rx.try_recv(), Ok(Some(Bytes::from_static(b"x"))));
        assert_eq!(f.len(), 1, "one peer still outstanding");
        assert!(f.failed(id).is_empty());
        assert_eq!(f.len(), 0);
        let c = f.counters();
        assert_eq!((c.peer_hits, c.peer_misses, c.provider_hits), (1, 0, 0));
    }

    #[test]
    fn an_entry_fetch_hands_on_every_answer_and_closes_when_all_answered() {
        let mut f = Fetcher::<u32>::new(8, true);
        let ps = peers(3);
        let (actions, mut rx) = entry(&mut f, &ps, None);
        let id = asked(&actions)[0].0;
        let copy = |body: &'static [u8]| ghcache_peer::PeerCopy {
            partition: ghcache_core::Partition::Anonymous,
            meta: ghcache_store::EntryMeta::for_body(body),
            body: Bytes::from_static(body),
        };
        assert!(
            f.answered(id, Some(Answer::Entry(copy(b"a"))), false)
                .is_empty()
        );
        assert!(f.answered(id, None, false).is_empty());
        assert_eq!(
            rx.try_recv().ok().and_then(note_body),
            Some(Bytes::from_static(b"a"))
        );
        assert!(rx.try_recv().is_err(), "still open: one peer outstanding");
        f.answered(id, Some(Answer::Entry(copy(b"b"))), false);
        assert_eq!(
            rx.try_recv().ok().and_then(note_body),
            Some(Bytes::from_static(b"b"))
        );
        assert!(
            matches!(
                rx.try_recv(),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
            ),
            "every peer answered: the stream ends"
        );
        let c = f.counters();
        assert_eq!((c.peer_hits, c.peer_misses), (1, 0));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn the_announcing_holder_is_asked_first_and_fanout_limits_the_rest() {
        let mut f = Fetcher::<u32>::new(2, true);
        let ps = peers(5);
        let (actions, _rx) = entry(&mut f, &ps, Some(ps[3]));
        let asked = asked(&actions);
        assert_eq!(asked.len(), 3, "holder plus a fanout of 2");
        assert_eq!(asked[0].1, ps[3]);
    }

    #[test]
    fn members_left_out_are_reached_through_providers() {
        let mut f = Fetcher::<u32>::new(1, true);
        let ps = peers(3);
        let (actions, mut rx) = entry(&mut f, &ps, None);
        let [(id, first, false)] = asked(&actions)[..] else {
            panic!("one peer asked: {actions:?}");
        };
        // It has nothing: on to the providers.
        let actions = f.answered(id, None, false);
        assert!(matches!(actions[..], [Action::FindProviders { fetch, .. }] if fetch == id));
        f.providers_started(id, 9);
        assert_eq!(f.counters().provider_lookups, 1);
        // A provider we asked already is not asked again.
        let other = ps.iter().copied().find(|p| *p != first).unwrap_or(first);
        let actions = f.providers_found(9, vec![first, other], false);
        assert_eq!(asked(&actions), vec![(id, other, true)]);
        let copy = ghcache_peer::PeerCopy {
            partition: ghcache_core::Partition::Anonymous,
            meta: ghcache_store::EntryMeta::for_body(b"b"),
            body: Bytes::from_static(b"b"),
        };
        // Answered, nobody outstanding: the fetch ends and stops its query.
        assert_eq!(
            f.answered(id, Some(Answer::Entry(copy)), true),
            vec![Action::FinishQuery(9)]
        );
        assert!(rx.try_recv().is_ok());
        assert!(f.providers_found(9, vec![], true).is_empty());
        assert_eq!(f.len(), 0);
        let c = f.counters();
        assert_eq!((c.peer_hits, c.provider_hits, c.peer_misses), (1, 1, 0));
    }

    #[test]
    fn a_query_that_ends_with_nobody_outstanding_is_a_miss() {
        let mut f = Fetcher::<u32>::new(1, true);
        let (actions, mut rx) = entry(&mut f, &peers(2), None);
        let id = asked(&actions)[0].0;
        f.failed(id);
        f.providers_started(id, 4);
        assert!(f.providers_found(4, vec![], true).is_empty());
        assert!(matches!(
            rx.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        ));
        assert_eq!(f.counters().peer_misses, 1);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn without_kademlia_or_for_a_blob_there_is_no_provider_step() {
        let mut f = Fetcher::<u32>::new(1, false);
        let (actions, mut rx) = entry(&mut f, &peers(2), None);
        let id = asked(&actions)[0].0;
        assert!(f.failed(id).is_empty());
        assert!(matches!(
            rx.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        ));

        let mut f = Fetcher::<u32>::new(1, true);
        let (actions, mut rx) = blob(&mut f, &peers(2));
        let id = asked(&actions)[0].0;
        assert!(f.failed(id).is_empty());
        assert_eq!(rx.try_recv(), Ok(None));
    }

    #[test]
    fn an_abandoned_fetch_stops_its_query() {
        let mut f = Fetcher::<u32>::new(1, true);
        let (actions, rx) = entry(&mut f, &peers(3), None);
        let id = asked(&actions)[0].0;
        f.failed(id);
        f.providers_started(id, 5);
        drop(rx);
        assert_eq!(f.drop_abandoned(), vec![Action::FinishQuery(5)]);
        assert_eq!(f.len(), 0);
        assert_eq!(f.counters().peer_misses, 1);
    }

    #[test]
    fn unavailable_providers_end_the_fetch() {
        let mut f = Fetcher::<u32>::new(1, true);
        let (actions, mut rx) = entry(&mut f, &peers(2), None);
        let id = asked(&actions)[0].0;
        assert!(matches!(f.failed(id)[..], [Action::FindProviders { .. }]));
        assert!(f.providers_unavailable(id).is_empty());
        assert!(matches!(
            rx.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
