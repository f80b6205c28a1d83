//! Operator-listed bootstrap addresses: dialled until connected, redialled
//! with backoff when not, `/dns*` names resolved again on every attempt.

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::command::Internal;

#[derive(Debug)]
struct Entry {
    addr: Multiaddr,
    /// Who answered there last (or who the operator pinned with `/p2p`).
    peer: Option<PeerId>,
    attempts: u32,
    next: Instant,
}

/// A due attempt at bootstrap address `index`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    Dial {
        index: usize,
        addr: Multiaddr,
    },
    /// Resolve the name first (then dial what it resolves to).
    Resolve {
        index: usize,
        addr: Multiaddr,
    },
}

#[derive(Debug)]
pub(crate) struct Bootstrap {
    entries: Vec<Entry>,
    refresh: Duration,
}

impl Bootstrap {
    pub(crate) fn new(addrs: &[Multiaddr], refresh: Duration, now: Instant) -> Self {
        let entries = addrs
            .iter()
            .map(|a| Entry {
                addr: a.clone(),
                peer: peer_of_addr(a),
                attempts: 0,
                next: now,
            })
            .collect();
        Bootstrap { entries, refresh }
    }

    /// The attempts due at `now`: addresses whose peer is neither connected
    /// nor us, each then waiting an exponential backoff (capped at the
    /// refresh interval).
    pub(crate) fn due(
        &mut self,
        now: Instant,
        me: PeerId,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<Attempt> {
        let mut out = Vec::new();
        for (index, st) in self.entries.iter_mut().enumerate() {
            if now < st.next {
                continue;
            }
            if st.peer.is_some_and(|p| connected(&p)) || st.peer == Some(me) {
                st.next = now + self.refresh;
                continue;
            }
            st.attempts = st.attempts.saturating_add(1);
            let backoff = Duration::from_secs(1u64 << st.attempts.min(16)).min(self.refresh);
            st.next = now + backoff;
            let addr = st.addr.clone();
            out.push(if is_dns(&addr) {
                Attempt::Resolve { index, addr }
            } else {
                Attempt::Dial { index, addr }
            });
        }
        out
    }

    /// How to dial `addr` for bootstrap address `index`.
    pub(crate) fn dial_opts(&self, index: usize, addr: Multiaddr) -> Option<DialOpts> {
        let st = self.entries.get(index)?;
        Some(match st.peer {
            Some(p) => DialOpts::peer_id(p)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr).build(),
        })
    }

    /// Address `index` reached `peer`.
    pub(crate) fn connected(&mut self, index: usize, peer: PeerId, now: Instant) {
        if let Some(st) = self.entries.get_mut(index) {
            st.peer = Some(peer);
            st.attempts = 0;
            st.next = now + self.refresh;
        }
    }

    /// Address `index` answered with another identity: a host that came
    /// back with a new one. Forgotten, unless the operator pinned it.
    pub(crate) fn wrong_peer(&mut self, index: usize) {
        if let Some(st) = self.entries.get_mut(index)
            && peer_of_addr(&st.addr).is_none()
        {
            st.peer = None;
        }
    }
}

/// Resolves a `/dns*` bootstrap address off the loop; the result comes back
/// as [`Internal::Resolved`]. The system resolver (/etc/hosts, the container
/// runtime's DNS) is asked on every attempt, so a peer that comes back with
/// another address is found again.
pub(crate) fn spawn_resolve(index: usize, addr: Multiaddr, tx: mpsc::Sender<Internal>) {
    tokio::spawn(async move {
        let addrs = resolve(&addr).await;
        if !addrs.is_empty() {
            let _ = tx.send(Internal::Resolved { index, addrs }).await;
        }
    });
}

fn is_dns(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_))
    )
}

/// `/dns4/host/tcp/9100[/p2p/…]` → `/ip4/<each address>/tcp/9100[/p2p/…]`.
/// Empty (with a warning) when the name does not resolve.
async fn resolve(addr: &Multiaddr) -> Vec<Multiaddr> {
    let mut parts = addr.iter();
    let (host, want_v4, want_v6) = match parts.next() {
        Some(Protocol::Dns(h)) => (h.to_string(), true, true),
        Some(Protocol::Dns4(h)) => (h.to_string(), true, false),
        Some(Protocol::Dns6(h)) => (h.to_string(), false, true),
        _ => return Vec::new(),
    };
    let rest: Vec<Protocol<'_>> = parts.collect();
    let port = rest
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) | Protocol::Udp(port) => Some(*port),
            _ => None,
        })
        .unwrap_or(0);
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(found) => {
            let mut out: Vec<Multiaddr> = Vec::new();
            for sa in found {
                let ip = sa.ip();
                if (ip.is_ipv4() && !want_v4) || (ip.is_ipv6() && !want_v6) {
                    continue;
                }
                let mut m = Multiaddr::from(ip);
                for p in &rest {
                    m.push(p.clone());
                }
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            if out.is_empty() {
                tracing::warn!(%addr, "bootstrap name has no address of the requested family");
            }
            out
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot resolve bootstrap address; will retry");
            Vec::new()
        }
    }
}

pub(crate) fn peer_of_addr(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}
