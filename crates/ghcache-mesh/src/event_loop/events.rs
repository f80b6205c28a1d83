//! The loop's side of the swarm: connection and listener events, behaviour
//! events dispatched to their owners, and dials of discovered peers.

use std::time::{Duration, Instant};

use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, identify, kad, mdns, request_response};

use super::{Conn, ConnectWaiter, EventLoop};
use crate::command::Source;
use crate::discovery::{Attempt, bootstrap};
use crate::error::MeshError;
use crate::swarm::{BehaviourEvent, advertisable};

impl EventLoop {
    pub(super) fn discovered(&mut self, source: Source, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == self.peer_id || self.penalties.is_banned(&peer) || addrs.is_empty() {
            return;
        }
        self.discovery.found(source, peer);
        if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
            for a in &addrs {
                k.add_address(&peer, a.clone());
            }
        }
        if !self.swarm.is_connected(&peer) {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let id = opts.connection_id();
            if self.swarm.dial(opts).is_ok() {
                self.discovery.dialing(id, source, None);
            }
        }
    }

    pub(super) fn bootstrap_tick(&mut self, now: Instant) {
        let swarm = &self.swarm;
        let due = self
            .discovery
            .bootstrap
            .due(now, self.peer_id, |p| swarm.is_connected(p));
        for attempt in due {
            match attempt {
                Attempt::Dial { index, addr } => self.dial_bootstrap(index, addr),
                Attempt::Resolve { index, addr } => {
                    bootstrap::spawn_resolve(index, addr, self.internal_tx.clone())
                }
            }
        }
    }

    pub(super) fn dial_bootstrap(&mut self, index: usize, addr: Multiaddr) {
        let Some(opts) = self.discovery.bootstrap.dial_opts(index, addr) else {
            return;
        };
        let id = opts.connection_id();
        if self.swarm.dial(opts).is_ok() {
            self.discovery.dialing(id, Source::Bootstrap, Some(index));
        }
    }

    pub(super) fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        self.record_metrics(&ev);
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "mesh listening");
                if advertisable(&address, self.config.listen_ip) {
                    self.swarm.add_external_address(address);
                }
                self.discovery.registry_now(Instant::now());
            }
            SwarmEvent::ExpiredListenAddr { address, .. }
                if !self.config.external_addrs.contains(&address) =>
            {
                self.swarm.remove_external_address(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some(ConnectWaiter { reply: tx, .. }) =
                    self.connect_waiters.remove(&connection_id)
                {
                    let _ = tx.send(Ok(peer_id));
                }
                if self.penalties.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                self.conns.entry(peer_id).or_default().push(Conn {
                    id: connection_id,
                    remote: endpoint.get_remote_address().clone(),
                });
                self.probe(peer_id);
                self.discovery
                    .connected(connection_id, peer_id, Instant::now());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                if let Some(v) = self.conns.get_mut(&peer_id) {
                    v.retain(|c| c.id != connection_id);
                    if v.is_empty() {
                        self.conns.remove(&peer_id);
                        self.members.forget(&peer_id);
                        tracing::debug!(peer = %peer_id, "disconnected");
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
                let wrong_peer = matches!(error, libp2p::swarm::DialError::WrongPeerId { .. });
                self.discovery.dial_failed(connection_id, wrong_peer);
                if let Some(ConnectWaiter { addr, reply: tx }) =
                    self.connect_waiters.remove(&connection_id)
                {
                    let _ = tx.send(Err(MeshError::Dial {
                        addr,
                        source: Box::new(error),
                    }));
                }
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            _ => {}
        }
    }

    /// Feeds libp2p-metrics (connections, identify, Kademlia, gossipsub,
    /// ping): counters and histograms updated in place, nothing formatted.
    fn record_metrics(&self, ev: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        self.metrics.record(ev);
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.metrics.record(e),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Fetch(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_request(peer, request, channel),
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => self.on_response(peer, request_id, response),
                }
            }
            BehaviourEvent::Fetch(request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            }) => {
                tracing::debug!(%peer, %error, "fetch request failed");
                self.on_outbound_failure(peer, request_id, &error);
            }
            BehaviourEvent::Fetch(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::debug!(%peer, %error, "inbound fetch failed");
            }
            BehaviourEvent::Gossipsub(libp2p::gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(
                propagation_source,
                message.source,
                message_id,
                &message.data,
            ),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in info.listen_addrs {
                        k.add_address(&peer_id, a);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                is_new_peer,
                addresses,
                ..
            }) if peer != self.peer_id => {
                if is_new_peer {
                    // A new member: look for its neighbours soon (at most
                    // every 10 s, so a fleet starting at once is not a storm).
                    let soon = Instant::now() + Duration::from_millis(500);
                    let earliest = self.kad_last + Duration::from_secs(10);
                    self.kad_next = self.kad_next.min(soon.max(earliest));
                }
                // Members stay connected: dial what Kademlia found.
                self.discovered(Source::Kademlia, peer, addresses.into_vec());
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            }) => match result {
                kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                    providers,
                    ..
                })) => self.on_providers(id, providers.into_iter().collect(), step.last),
                kad::QueryResult::GetProviders(_) => self.on_providers(id, Vec::new(), step.last),
                kad::QueryResult::StartProviding(result) if step.last => {
                    let key = match result {
                        Ok(kad::AddProviderOk { key }) => key,
                        Err(kad::AddProviderError::Timeout { key }) => key,
                    };
                    if self
                        .provides
                        .finished(id, key, stats.num_successes() as usize)
                    {
                        self.drain_provides();
                    }
                }
                _ => {}
            },
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (p, addrs) in crate::discovery::by_peer(list) {
                    self.discovered(Source::Mdns, p, addrs);
                }
            }
            _ => {}
        }
    }
}
