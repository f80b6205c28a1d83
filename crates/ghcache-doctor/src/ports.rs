//! The proxy port and the libp2p port: free, held by our daemon, or held by
//! another process (which keeps the daemon from starting).

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use ghcache_config::Config;

use crate::{DaemonView, Finding, Level, finding};

/// Whether a port can be bound right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortState {
    Free,
    Held,
    /// Cannot be bound for another reason (address not on this host…).
    Unusable(String),
}

pub(crate) fn tcp_state(addr: SocketAddr) -> PortState {
    match TcpListener::bind(addr) {
        Ok(_) => PortState::Free,
        Err(e) if e.kind() == ErrorKind::AddrInUse => PortState::Held,
        Err(e) => PortState::Unusable(e.to_string()),
    }
}

fn udp_state(addr: SocketAddr) -> PortState {
    match UdpSocket::bind(addr) {
        Ok(_) => PortState::Free,
        Err(e) if e.kind() == ErrorKind::AddrInUse => PortState::Held,
        Err(e) => PortState::Unusable(e.to_string()),
    }
}

fn who_holds_fix(port: u16, setting: &str) -> String {
    format!(
        "find the process with `ss -ltnup 'sport = :{port}'` and stop it, or give ghcache another port ({setting})"
    )
}

/// No daemon answered at the proxy address: free port (start it) or a
/// stranger on it.
pub(crate) fn no_daemon(addr: SocketAddr, error: &str) -> Finding {
    match tcp_state(addr) {
        PortState::Held => finding(
            Level::Fail,
            "ports",
            format!(
                "proxy port {addr} is held by another process, not a ghcache daemon (its health endpoint does not answer: {error})"
            ),
            &who_holds_fix(addr.port(), "--proxy-addr or GHCACHE_PROXY_ADDR"),
        ),
        PortState::Free => finding(
            Level::Fail,
            "daemon",
            format!("no daemon answers at {addr} (the port is free): {error}"),
            "start it with `ghcache daemon`, or point --proxy-addr / GHCACHE_PROXY_ADDR at it",
        ),
        PortState::Unusable(why) => finding(
            Level::Fail,
            "daemon",
            format!("no daemon answers at {addr}, and the address cannot be bound here ({why})"),
            "set GHCACHE_PROXY_ADDR / --proxy-addr to an address of this host (127.0.0.1:8787)",
        ),
    }
}

/// The libp2p listen port (TCP, and UDP for QUIC unless the private network
/// makes the mesh TCP only), when this environment asks for a mesh.
pub(crate) fn p2p(config: &Config, daemon: &DaemonView) -> Vec<Finding> {
    if !crate::mesh_wanted(config) {
        return Vec::new();
    }
    let port = config.listen_port.value.0;
    let addr = SocketAddr::new(config.listen_ip.value, port);
    match daemon.mesh_listens_on(port) {
        Some(true) => {
            return vec![finding(
                Level::Ok,
                "ports",
                format!("libp2p port {port} is held by our daemon"),
                "",
            )];
        }
        Some(false) => {
            let listens = daemon
                .peers
                .as_ref()
                .and_then(|p| p.mesh.as_ref())
                .map(|m| m.listen_addrs.join(", "))
                .unwrap_or_default();
            return vec![finding(
                Level::Warn,
                "ports",
                format!(
                    "this environment says libp2p port {port}, but the daemon listens on {listens}"
                ),
                "run doctor with the daemon's environment (CACHE_LISTEN_PORT, GHCACHE_P2P_LISTEN_IP), e.g. `docker exec ghcache ghcache doctor`",
            )];
        }
        None => {}
    }
    let quic = !config.private_network.value;
    let states = [
        ("TCP", tcp_state(addr)),
        (
            "UDP",
            if quic {
                udp_state(addr)
            } else {
                PortState::Free
            },
        ),
    ];
    let mut out = Vec::new();
    for (proto, state) in states {
        match state {
            PortState::Held => out.push(finding(
                Level::Fail,
                "ports",
                format!(
                    "libp2p port {addr}/{proto} is held by another process (no ghcache daemon answering here uses it): the daemon cannot listen"
                ),
                &who_holds_fix(port, "CACHE_LISTEN_PORT or --listen-port"),
            )),
            PortState::Unusable(why) => out.push(finding(
                Level::Fail,
                "ports",
                format!("libp2p address {addr}/{proto} cannot be bound here: {why}"),
                "set GHCACHE_P2P_LISTEN_IP to an address of this host (0.0.0.0 listens on all)",
            )),
            PortState::Free => {}
        }
    }
    if out.is_empty() {
        out.push(finding(
            Level::Ok,
            "ports",
            format!("libp2p port {addr} is free for the daemon"),
            "",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_held_and_a_released_one_free() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        assert_eq!(tcp_state(addr), PortState::Held);
        let f = no_daemon(addr, "connection closed");
        assert_eq!((f.level, f.area), (Level::Fail, "ports"));
        assert!(f.fix.contains(&format!(":{}", addr.port())), "{}", f.fix);
        drop(held);
        assert_eq!(tcp_state(addr), PortState::Free);
        assert_eq!(no_daemon(addr, "refused").area, "daemon");
        let elsewhere: SocketAddr = "203.0.113.7:8787".parse().expect("addr");
        assert!(matches!(tcp_state(elsewhere), PortState::Unusable(_)));
    }
}
