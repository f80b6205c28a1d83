//! Refused messages: counted, logged, and struck against their sender, who
//! is banned past a threshold. Decides only; the event loop blocks and
//! disconnects a banned peer.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ghcache_peer::{LastRejection, RejectedCounts};
use libp2p::PeerId;

use crate::stats::bump;
use crate::wire::Reject;

/// Whether a strike put the peer over the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Verdict {
    /// Counted; the peer may stay.
    Struck,
    /// Newly banned: block and disconnect it.
    Ban,
}

#[derive(Debug)]
pub(crate) struct Penalties {
    threshold: u32,
    ban_duration: Duration,
    strikes: HashMap<PeerId, u32>,
    bans: HashMap<PeerId, Instant>,
    /// Peers we already warned about a decryption failure (once each).
    warned_decrypt: HashSet<PeerId>,
    rejected: RejectedCounts,
    last: Option<LastRejection>,
    /// For the decryption warning: what the operator compares across hosts.
    fingerprint: String,
    network_id: String,
}

impl Penalties {
    pub(crate) fn new(
        threshold: u32,
        ban_duration: Duration,
        fingerprint: String,
        network_id: String,
    ) -> Self {
        Penalties {
            threshold,
            ban_duration,
            strikes: HashMap::new(),
            bans: HashMap::new(),
            warned_decrypt: HashSet::new(),
            rejected: RejectedCounts::default(),
            last: None,
            fingerprint,
            network_id,
        }
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    pub(crate) fn banned(&self) -> impl Iterator<Item = &PeerId> {
        self.bans.keys()
    }

    pub(crate) fn rejected(&self) -> &RejectedCounts {
        &self.rejected
    }

    pub(crate) fn last_rejection(&self) -> Option<&LastRejection> {
        self.last.as_ref()
    }

    /// Counts and logs a refused message and strikes its sender.
    pub(crate) fn reject(
        &mut self,
        peer: PeerId,
        reason: Reject,
        message: &'static str,
        now: Instant,
    ) -> Verdict {
        self.count(peer, reason, message);
        self.strike(peer, reason, now)
    }

    /// Counts and logs a refused message without striking its sender.
    pub(crate) fn count(&mut self, peer: PeerId, reason: Reject, message: &'static str) {
        bump(&mut self.rejected, reason);
        let hint = hint(reason);
        self.last = Some(LastRejection {
            peer_id: peer.to_string(),
            reason: reason.as_str().into(),
            message: message.into(),
            hint: hint.into(),
            at_ms: crate::wire::now_ms(),
        });
        if reason == Reject::Decrypt {
            if self.warned_decrypt.insert(peer) {
                tracing::warn!(
                    "peer {peer} sent a {message} we cannot decrypt: different GHCACHE_CLUSTER_SECRET? \
                     (our key fingerprint is {}, network {:?}; compare with `ghcache stats` on that host)",
                    self.fingerprint,
                    self.network_id
                );
            }
        } else {
            tracing::warn!(%peer, reason = reason.as_str(), message, "rejected a message from a peer: {hint}");
        }
    }

    /// `peer` answered with an empty frame: it could not open our `message`.
    /// Warned about once per peer.
    pub(crate) fn refused_by(&mut self, peer: PeerId, message: &'static str) {
        if self.warned_decrypt.insert(peer) {
            tracing::warn!(
                "peer {peer} cannot decrypt our {message}: different GHCACHE_CLUSTER_SECRET? \
                 (our key fingerprint is {}, network {:?}; compare with `ghcache stats` on that host)",
                self.fingerprint,
                self.network_id
            );
        }
    }

    fn strike(&mut self, peer: PeerId, reason: Reject, now: Instant) -> Verdict {
        let strikes = self.strikes.entry(peer).or_insert(0);
        *strikes += 1;
        let strikes = *strikes;
        if strikes < self.threshold || self.bans.contains_key(&peer) {
            return Verdict::Struck;
        }
        tracing::warn!(
            %peer,
            strikes,
            "disconnecting peer for {:?} after {strikes} rejected messages (last: {})",
            self.ban_duration,
            reason.as_str()
        );
        self.bans.insert(peer, now + self.ban_duration);
        Verdict::Ban
    }

    /// Lifts the bans that expired by `now`; the loop unblocks these peers.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &expired {
            self.bans.remove(p);
            self.strikes.remove(p);
        }
        expired
    }
}

fn hint(reason: Reject) -> &'static str {
    match reason {
        Reject::Decrypt => {
            "cannot decrypt: the peer probably has a different GHCACHE_CLUSTER_SECRET or network id"
        }
        Reject::CidMismatch => "body does not match its content id",
        Reject::Oversized => "message larger than max_message_bytes",
        Reject::Malformed => "message cannot be decoded",
        Reject::Replayed => "announcement too old, from the future, or already seen",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banned_past_the_threshold_until_the_ban_expires() {
        let now = Instant::now();
        let mut p = Penalties::new(3, Duration::from_secs(10), "f".into(), "n".into());
        let bad = PeerId::random();
        assert_eq!(
            p.reject(bad, Reject::Malformed, "announcement", now),
            Verdict::Struck
        );
        assert_eq!(
            p.reject(bad, Reject::Oversized, "fetch request", now),
            Verdict::Struck
        );
        assert_eq!(
            p.reject(bad, Reject::Malformed, "announcement", now),
            Verdict::Ban
        );
        assert_eq!(
            p.reject(bad, Reject::Malformed, "announcement", now),
            Verdict::Struck
        );
        assert!(p.is_banned(&bad));
        assert_eq!(p.rejected().total(), 4);
        assert_eq!(p.rejected().malformed, 3);
        assert!(p.expire(now + Duration::from_secs(9)).is_empty());
        assert_eq!(p.expire(now + Duration::from_secs(10)), vec![bad]);
        assert!(!p.is_banned(&bad));
        // Strikes start over after a ban.
        assert_eq!(
            p.reject(bad, Reject::Malformed, "announcement", now),
            Verdict::Struck
        );
    }

    #[test]
    fn counted_without_a_strike() {
        let mut p = Penalties::new(1, Duration::from_secs(10), "f".into(), "n".into());
        let relay = PeerId::random();
        p.count(relay, Reject::Replayed, "announcement");
        assert!(!p.is_banned(&relay));
        let last = p.last_rejection().cloned();
        assert_eq!(
            last.map(|l| (l.reason, l.message)),
            Some(("replayed".into(), "announcement".into()))
        );
    }
}
