//! Whether each connected peer holds our cluster key, and the membership
//! probe that finds out. No I/O: the loop sends the probes this asks for.

use std::collections::HashMap;
use std::hash::Hash;

use libp2p::PeerId;

/// Membership probes sent to one peer per connection spell before we stop
/// asking (each lost to a closed connection, a timeout or a stream error).
pub(crate) const MAX_PROBE_ATTEMPTS: u32 = 4;

/// What we know of a connected peer. `R` is the probe's request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership<R> {
    /// No verdict yet: the latest probe (if any) and how many were sent.
    Unknown { probe: Option<R>, attempts: u32 },
    /// It opened our request or answered under the cluster key.
    Member,
    /// It holds another cluster key (or network id).
    Stranger,
}

/// The verdict on every peer we were connected to since its last
/// disconnection.
#[derive(Debug)]
pub(crate) struct Members<R> {
    peers: HashMap<PeerId, Membership<R>>,
}

impl<R: Copy + Eq + Hash> Members<R> {
    pub(crate) fn new() -> Self {
        Members {
            peers: HashMap::new(),
        }
    }

    /// `Some(true)` for a member, `Some(false)` for a stranger, `None`
    /// without a verdict.
    pub(crate) fn verdict(&self, peer: &PeerId) -> Option<bool> {
        match self.peers.get(peer) {
            Some(Membership::Member) => Some(true),
            Some(Membership::Stranger) => Some(false),
            Some(Membership::Unknown { .. }) | None => None,
        }
    }

    pub(crate) fn is_stranger(&self, peer: &PeerId) -> bool {
        self.verdict(peer) == Some(false)
    }

    pub(crate) fn member(&mut self, peer: PeerId) {
        self.peers.insert(peer, Membership::Member);
    }

    pub(crate) fn stranger(&mut self, peer: PeerId) {
        self.peers.insert(peer, Membership::Stranger);
    }

    /// Disconnected: probe again on reconnection (the peer may have
    /// restarted with another secret).
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Whether to send a probe: no verdict, no probe in flight
    /// (`in_flight`), attempts left.
    pub(crate) fn probe_due(&self, peer: &PeerId, in_flight: impl Fn(&R) -> bool) -> bool {
        match self.peers.get(peer) {
            None => true,
            Some(Membership::Unknown { probe, attempts }) => {
                !probe.as_ref().is_some_and(in_flight) && *attempts < MAX_PROBE_ATTEMPTS
            }
            Some(Membership::Member | Membership::Stranger) => false,
        }
    }

    /// The loop sent probe `request` to `peer`.
    pub(crate) fn probe_sent(&mut self, peer: PeerId, request: R) {
        let attempts = match self.peers.get(&peer) {
            Some(Membership::Unknown { attempts, .. }) => *attempts,
            _ => 0,
        };
        self.peers.insert(
            peer,
            Membership::Unknown {
                probe: Some(request),
                attempts: attempts + 1,
            },
        );
    }

    /// The latest probe to `peer`, while it has no verdict.
    pub(crate) fn probe_of(&self, peer: &PeerId) -> Option<R> {
        match self.peers.get(peer) {
            Some(Membership::Unknown { probe, .. }) => *probe,
            _ => None,
        }
    }

    /// A probe was answered; `verdict` is `None` when the answer said
    /// neither (a malformed one): attempts start over on reconnection.
    pub(crate) fn probe_answered(&mut self, peer: PeerId, verdict: Option<bool>) {
        match verdict {
            Some(true) => self.member(peer),
            Some(false) => self.stranger(peer),
            None => {
                if matches!(self.peers.get(&peer), Some(Membership::Unknown { .. })) {
                    self.peers.remove(&peer);
                }
            }
        }
    }

    /// Probe `request` got no answer. True when another should be sent;
    /// only the latest probe counts (an older one may fail after a
    /// reconnection already sent a new one).
    pub(crate) fn probe_failed(
        &mut self,
        peer: PeerId,
        request: R,
        connected: bool,
        unsupported: bool,
    ) -> bool {
        if self.probe_of(&peer) != Some(request) {
            return false;
        }
        if !connected {
            self.peers.remove(&peer);
            return false;
        }
        if unsupported {
            // Not a ghcache daemon; it will never answer.
            self.peers.insert(
                peer,
                Membership::Unknown {
                    probe: Some(request),
                    attempts: MAX_PROBE_ATTEMPTS,
                },
            );
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_until_a_verdict_or_out_of_attempts() {
        let mut m = Members::<u32>::new();
        let p = PeerId::random();
        assert!(m.probe_due(&p, |_| false));
        m.probe_sent(p, 1);
        assert!(!m.probe_due(&p, |_| true), "one in flight");
        for id in 2..=MAX_PROBE_ATTEMPTS {
            assert!(m.probe_failed(p, id - 1, true, false));
            assert!(m.probe_due(&p, |_| false));
            m.probe_sent(p, id);
        }
        assert!(m.probe_failed(p, MAX_PROBE_ATTEMPTS, true, false));
        assert!(!m.probe_due(&p, |_| false), "attempts used up");
        assert_eq!(m.verdict(&p), None);
        m.forget(&p);
        assert!(m.probe_due(&p, |_| false), "a new connection spell");
    }

    #[test]
    fn verdicts() {
        let mut m = Members::<u32>::new();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        m.probe_sent(a, 1);
        m.probe_answered(a, Some(true));
        m.stranger(b);
        m.probe_sent(c, 3);
        m.probe_answered(c, None);
        assert_eq!(
            (m.verdict(&a), m.verdict(&b), m.verdict(&c)),
            (Some(true), Some(false), None)
        );
        assert!(m.is_stranger(&b) && !m.is_stranger(&a));
        assert!(!m.probe_due(&a, |_| false) && !m.probe_due(&b, |_| false));
        // A stale failure of an older probe changes nothing.
        assert!(!m.probe_failed(a, 1, true, false));
        assert_eq!(m.verdict(&a), Some(true));
    }

    #[test]
    fn a_peer_without_the_protocol_is_not_asked_again() {
        let mut m = Members::<u32>::new();
        let p = PeerId::random();
        m.probe_sent(p, 1);
        assert!(!m.probe_failed(p, 1, true, true));
        assert!(!m.probe_due(&p, |_| false));
        // Disconnected before an answer: start over next time.
        let q = PeerId::random();
        m.probe_sent(q, 2);
        assert!(!m.probe_failed(q, 2, false, false));
        assert!(m.probe_due(&q, |_| false));
    }
}
