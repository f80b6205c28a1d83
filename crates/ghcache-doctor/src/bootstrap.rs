//! Each configured bootstrap address: resolved (`/dns*` through the system
//! resolver, as the daemon does), dialled over plain TCP with a timeout
//! (this proves TCP reachability, not a libp2p handshake), and matched
//! against the daemon's connections to say whether the peer there is a
//! member or holds another cluster secret.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ghcache_config::Config;
use ghcache_peer::ConnectedPeer;
use multiaddr::{Multiaddr, Protocol};

use crate::{DaemonView, Finding, Level, finding};

/// Where to dial: a host (IP or name) and TCP port, from a multiaddr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Tcp {
        host: String,
        ip: Option<IpAddr>,
        port: u16,
        peer_id: Option<String>,
    },
    /// QUIC-only (UDP): nothing to dial over TCP.
    Udp,
    Unsupported,
}

pub(crate) fn target(addr: &Multiaddr) -> Target {
    let (mut host, mut ip, mut port, mut udp, mut peer_id) = (None, None, None, false, None);
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => (host, ip) = (Some(a.to_string()), Some(IpAddr::V4(a))),
            Protocol::Ip6(a) => (host, ip) = (Some(a.to_string()), Some(IpAddr::V6(a))),
            Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => host = Some(h.to_string()),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::Udp(_) => udp = true,
            Protocol::P2p(id) => peer_id = Some(id.to_string()),
            _ => {}
        }
    }
    match (host, port) {
        (Some(host), Some(port)) => Target::Tcp {
            host,
            ip,
            port,
            peer_id,
        },
        _ if udp => Target::Udp,
        _ => Target::Unsupported,
    }
}

const UNREACHABLE_FIX: &str = "check that a ghcache daemon runs there and listens on a reachable address (GHCACHE_P2P_LISTEN_IP=0.0.0.0), that the port is open in firewalls, and, in a container, that it runs with `--network host`";

pub(crate) async fn findings(
    config: &Config,
    daemon: &DaemonView,
    timeout: Duration,
) -> Vec<Finding> {
    if !crate::mesh_wanted(config)
        || !config.peer_discovery.value
        || !config.bootstrap_discovery.value
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for addr in &config.bootstrap_peers.value {
        out.push(check(&addr.0, daemon, timeout).await);
    }
    out
}

async fn check(addr: &Multiaddr, daemon: &DaemonView, timeout: Duration) -> Finding {
    let Target::Tcp {
        host,
        ip,
        port,
        peer_id,
    } = target(addr)
    else {
        return finding(
            Level::Info,
            "bootstrap",
            format!("{addr}: not a TCP address, reachability not checked"),
            "",
        );
    };
    let started = Instant::now();
    let candidates: Vec<SocketAddr> = match ip {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
            .await
        {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => {
                return finding(
                    Level::Fail,
                    "bootstrap",
                    format!("{addr}: cannot resolve {host}: {e}"),
                    "check the name (DNS, /etc/hosts, the container's --add-host) or list the peer by IP (/ip4/…/tcp/9100)",
                );
            }
            Err(_) => {
                return finding(
                    Level::Fail,
                    "bootstrap",
                    format!(
                        "{addr}: resolving {host} took over {} ms",
                        timeout.as_millis()
                    ),
                    "check the resolver (/etc/resolv.conf) or list the peer by IP",
                );
            }
        },
    };
    let mut last_error = String::from("no address");
    for sa in candidates {
        let dial = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(sa)).await;
        let elapsed = started.elapsed().as_millis();
        match dial {
            Ok(Ok(_)) => return reached(addr, sa, elapsed, peer_id.as_deref(), daemon),
            Ok(Err(e)) => last_error = format!("{sa}: {e} after {elapsed} ms"),
            Err(_) => last_error = format!("{sa}: no answer within {} ms", timeout.as_millis()),
        }
    }
    finding(
        Level::Fail,
        "bootstrap",
        format!("{addr}: not reachable over TCP ({last_error})"),
        UNREACHABLE_FIX,
    )
}

/// The daemon's connection to the peer at `sa` (or pinned as `peer_id`).
fn connection<'a>(
    daemon: &'a DaemonView,
    sa: SocketAddr,
    peer_id: Option<&str>,
) -> Option<Option<&'a ConnectedPeer>> {
    let m = daemon.peers.as_ref()?.mesh.as_ref()?;
    let ip = match sa.ip() {
        IpAddr::V4(a) => format!("/ip4/{a}/tcp/{}", sa.port()),
        IpAddr::V6(a) => format!("/ip6/{a}/tcp/{}", sa.port()),
    };
    Some(m.connected_peers.iter().find(|p| {
        Some(p.peer_id.as_str()) == peer_id
            || p.addrs
                .iter()
                .any(|a| a == &ip || a.starts_with(&format!("{ip}/")))
    }))
}

fn reached(
    addr: &Multiaddr,
    sa: SocketAddr,
    elapsed: u128,
    peer_id: Option<&str>,
    daemon: &DaemonView,
) -> Finding {
    let tcp = format!("{addr}: TCP reachable at {sa} in {elapsed} ms");
    match connection(daemon, sa, peer_id) {
        None => finding(
            Level::Ok,
            "bootstrap",
            format!("{tcp} (no daemon answering here to say whether libp2p connected)"),
            "",
        ),
        Some(Some(p)) if p.member == Some(true) => finding(
            Level::Ok,
            "bootstrap",
            format!("{tcp}; the daemon is connected to {} (a member)", p.peer_id),
            "",
        ),
        Some(Some(p)) if p.member == Some(false) => finding(
            Level::Fail,
            "bootstrap",
            format!(
                "{tcp}, but the peer there ({}) holds a different cluster secret or network id",
                p.peer_id
            ),
            "give every daemon the same GHCACHE_CLUSTER_SECRET and GHCACHE_NETWORK_ID; compare the key fingerprints shown by `ghcache peers` on both hosts",
        ),
        Some(Some(p)) => finding(
            Level::Warn,
            "bootstrap",
            format!(
                "{tcp}; the daemon is connected to {}, membership not confirmed yet",
                p.peer_id
            ),
            "run doctor again in a few seconds; if it persists, the peer may run an older ghcache",
        ),
        Some(None) => finding(
            Level::Warn,
            "bootstrap",
            format!("{tcp}, but the daemon has no libp2p connection to it"),
            "check that ghcache (not another service) listens there, with the same GHCACHE_PRIVATE_NETWORK setting; the daemon redials with backoff, so run doctor again shortly",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_multiaddrs() {
        let t = |s: &str| target(&s.parse().expect("multiaddr"));
        assert_eq!(
            t("/ip4/10.0.0.5/tcp/9100"),
            Target::Tcp {
                host: "10.0.0.5".into(),
                ip: Some("10.0.0.5".parse().expect("ip")),
                port: 9100,
                peer_id: None
            }
        );
        assert!(matches!(
            t("/dns4/cache-a/tcp/9100"),
            Target::Tcp {
                ip: None,
                port: 9100,
                ..
            }
        ));
        assert_eq!(t("/ip4/10.0.0.5/udp/9100/quic-v1"), Target::Udp);
    }
}
