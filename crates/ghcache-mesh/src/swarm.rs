//! Building the libp2p swarm: transports (TCP with Noise and Yamux, QUIC,
//! or pnet-wrapped TCP), the behaviours, and the addresses we listen on and
//! advertise.

use std::net::IpAddr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, StreamProtocol, Swarm, SwarmBuilder, allow_block_list, gossipsub, identify, kad,
    mdns, noise, ping, tcp, yamux,
};

use crate::announce::MAX_ANNOUNCE_BYTES;
use crate::config::MeshConfig;
use crate::error::MeshError;
use crate::keys::ClusterKeys;
use crate::provide::MAX_PROVIDED_KEYS;
use crate::wire::{FETCH_PROTOCOL, FetchCodec, KAD_PROTOCOL};

/// Members keep idle connections this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Provider records live this long on other members (we republish ours
/// well before, see `provide`).
const PROVIDER_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) fetch: request_response::Behaviour<FetchCodec>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}

type BehaviourResult = Result<Behaviour, Box<dyn std::error::Error + Send + Sync>>;

pub(crate) fn build(
    config: &MeshConfig,
    keys: &ClusterKeys,
    keypair: libp2p::identity::Keypair,
    topic: &str,
) -> Result<Swarm<Behaviour>, MeshError> {
    fn transport<E: std::error::Error + Send + Sync + 'static>(e: E) -> MeshError {
        MeshError::Transport {
            source: Box::new(e),
        }
    }
    let behaviour = |key: &libp2p::identity::Keypair| make_behaviour(config, key, topic);
    let tcp_config = tcp::Config::default().nodelay(true);
    let builder = SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let swarm = if config.private_network {
        // pnet wraps the raw TCP stream before Noise; QUIC has its own
        // handshake and cannot carry it.
        let psk = libp2p::pnet::PreSharedKey::new(*keys.pnet_key());
        builder
            .with_other_transport(
                |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    use libp2p::Transport;
                    Ok(tcp::tokio::Transport::new(tcp_config)
                        .and_then(move |socket, _| {
                            libp2p::pnet::PnetConfig::new(psk).handshake(socket)
                        })
                        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default())
                        .timeout(Duration::from_secs(20)))
                },
            )
            .map_err(transport)?
            .with_behaviour(behaviour)
            .map_err(transport)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build()
    } else {
        builder
            .with_tcp(tcp_config, noise::Config::new, yamux::Config::default)
            .map_err(transport)?
            .with_quic()
            .with_behaviour(behaviour)
            .map_err(transport)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build()
    };
    Ok(swarm)
}

fn make_behaviour(
    config: &MeshConfig,
    key: &libp2p::identity::Keypair,
    topic: &str,
) -> BehaviourResult {
    let max = config.max_message_bytes;
    let mdns_on = config.mdns;
    let kad_on = config.kademlia;
    let topic = gossipsub::IdentTopic::new(topic);
    let peer_id = key.public().to_peer_id();
    let identify = identify::Behaviour::new(
        identify::Config::new("/ghcache/id/1.0.0".into(), key.public())
            .with_agent_version(format!("ghcache/{}", env!("CARGO_PKG_VERSION")))
            // Only addresses we chose to advertise (external ones).
            .with_hide_listen_addrs(true),
    );
    let fetch = request_response::Behaviour::with_codec(
        FetchCodec { max_bytes: max },
        [(
            StreamProtocol::new(FETCH_PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(256),
    );
    let gs_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_secs(1))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_ANNOUNCE_BYTES + 4096)
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gs_config,
    )
    .map_err(|e| format!("gossipsub: {e}"))?;
    gossipsub
        .subscribe(&topic)
        .map_err(|e| format!("gossipsub subscribe: {e}"))?;
    let kad = kad_on.then(|| {
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_provided_keys: MAX_PROVIDED_KEYS,
                ..Default::default()
            },
        );
        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_config
            .set_provider_record_ttl(Some(PROVIDER_TTL))
            .set_provider_publication_interval(None);
        let mut k = kad::Behaviour::with_config(peer_id, store, kad_config);
        k.set_mode(Some(kad::Mode::Server));
        k
    });
    let mdns = if mdns_on {
        match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "mDNS unavailable; continuing without it");
                None
            }
        }
    } else {
        None
    };
    Ok(Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        identify,
        ping: ping::Behaviour::new(ping::Config::new()),
        fetch,
        gossipsub,
        kad: Toggle::from(kad),
        mdns: Toggle::from(mdns),
    })
}

/// Listens on TCP (and QUIC unless in private network mode) and adds the
/// operator's external addresses.
pub(crate) fn listen(swarm: &mut Swarm<Behaviour>, config: &MeshConfig) -> Result<(), MeshError> {
    let mut listen =
        vec![Multiaddr::from(config.listen_ip).with(Protocol::Tcp(config.listen_port))];
    if config.quic && !config.private_network {
        listen.push(
            Multiaddr::from(config.listen_ip)
                .with(Protocol::Udp(config.listen_port))
                .with(Protocol::QuicV1),
        );
    }
    for addr in listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| MeshError::Listen {
                addr: addr.to_string(),
                source: Box::new(e),
            })?;
    }
    for addr in &config.external_addrs {
        swarm.add_external_address(addr.clone());
    }
    Ok(())
}

/// Whether `addr` is worth advertising to remote peers: not loopback,
/// unspecified, link-local or the default docker bridge — unless we listen on
/// loopback ourselves (tests, single-host setups).
pub(crate) fn advertisable(addr: &Multiaddr, listen_ip: IpAddr) -> bool {
    if listen_ip.is_loopback() {
        return true;
    }
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => {
            let o = ip.octets();
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_link_local()
                || (o[0] == 172 && o[1] == 17))
        }
        Some(Protocol::Ip6(ip)) => {
            !(ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xffc0) == 0xfe80)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses() {
        let any: IpAddr = "0.0.0.0"
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let lo: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let ma = |s: &str| {
            s.parse::<Multiaddr>()
                .unwrap_or_else(|_| Multiaddr::empty())
        };
        assert!(!advertisable(&ma("/ip4/127.0.0.1/tcp/1"), any));
        assert!(!advertisable(&ma("/ip4/172.17.0.1/tcp/1"), any));
        assert!(advertisable(&ma("/ip4/172.18.0.1/tcp/1"), any));
        assert!(advertisable(&ma("/ip4/10.1.2.3/tcp/1"), any));
        assert!(!advertisable(&ma("/ip6/::1/tcp/1"), any));
        assert!(advertisable(&ma("/ip4/127.0.0.1/tcp/1"), lo));
    }
}
