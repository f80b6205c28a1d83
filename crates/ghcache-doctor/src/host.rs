//! Whether doctor runs in a container and, if so, in which network mode.
//!
//! In Docker's default bridge mode the container has its own network
//! namespace: the daemon's addresses are bridge addresses (172.17.x) no other
//! host can dial, so the mesh stays empty. Every function takes the root of
//! the file system it reads, so tests feed a fake `/proc` tree.

use std::net::Ipv4Addr;
use std::path::Path;

use ghcache_config::Config;

use crate::{Finding, Level, finding};

/// A container runtime and what gave it away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub runtime: &'static str,
    pub evidence: String,
}

/// `/.dockerenv` (Docker), `/run/.containerenv` (Podman), else the cgroup
/// path of PID 1 (`/proc/1/cgroup`, cgroup v1 or a non-root v2 path).
pub fn detect_container(root: &Path) -> Option<Container> {
    if root.join(".dockerenv").exists() {
        return Some(Container {
            runtime: "docker",
            evidence: "/.dockerenv exists".into(),
        });
    }
    if root.join("run/.containerenv").exists() {
        return Some(Container {
            runtime: "podman",
            evidence: "/run/.containerenv exists".into(),
        });
    }
    let cgroup = std::fs::read_to_string(root.join("proc/1/cgroup")).ok()?;
    for (needle, runtime) in [
        ("kubepods", "kubernetes"),
        ("docker", "docker"),
        ("libpod", "podman"),
        ("containerd", "containerd"),
        ("lxc", "lxc"),
    ] {
        if let Some(line) = cgroup.lines().find(|l| l.contains(needle)) {
            return Some(Container {
                runtime,
                evidence: format!("/proc/1/cgroup: {}", line.trim()),
            });
        }
    }
    None
}

/// The container's view of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's interfaces are visible (`--network host`).
    Host,
    /// Its own namespace: one interface besides loopback, default route
    /// through a bridge gateway.
    Bridge {
        interface: String,
        gateway: Ipv4Addr,
    },
    /// Could not tell (no `/proc/net`).
    Unknown,
}

/// Interfaces every network namespace has (or the kernel adds to each).
fn namespace_dummy(name: &str) -> bool {
    name == "lo"
        || [
            "tunl", "sit", "ip6tnl", "ip6_vti", "ip_vti", "gre", "gretap", "erspan", "ip6gre",
        ]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(|rest| rest == "0"))
}

/// Host bridges: seen only from the host's namespace.
fn host_bridge(name: &str) -> bool {
    name == "docker0"
        || name == "podman0"
        || name == "cni0"
        || name.starts_with("br-")
        || name.starts_with("veth")
        || name.starts_with("virbr")
}

/// Gateways of container runtimes' default pools: Docker's 172.17-31.x and
/// 192.168.x, Podman's 10.88.x. A single-NIC VM on the host network (AWS
/// `ens5` via 172.31.0.1, Azure `eth0` via 10.0.0.1) is not a bridge.
fn runtime_gateway(gw: Ipv4Addr) -> bool {
    let [a, b, ..] = gw.octets();
    (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168) || (a == 10 && b == 88)
}

/// From `/proc/net/dev` (interfaces) and `/proc/net/route` (default route).
pub fn network_mode(root: &Path) -> NetworkMode {
    let Ok(dev) = std::fs::read_to_string(root.join("proc/net/dev")) else {
        return NetworkMode::Unknown;
    };
    let interfaces: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .collect();
    if interfaces.iter().any(|i| host_bridge(i)) {
        return NetworkMode::Host;
    }
    let real: Vec<&str> = interfaces
        .iter()
        .copied()
        .filter(|i| !namespace_dummy(i))
        .collect();
    let route = std::fs::read_to_string(root.join("proc/net/route")).unwrap_or_default();
    // Iface Destination Gateway … (hex, little-endian); destination 0 = default.
    let default = route.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.get(1) == Some(&"00000000"))
            .then(|| {
                let gw = u32::from_str_radix(cols.get(2)?, 16).ok()?;
                Some((cols[0].to_owned(), Ipv4Addr::from(gw.swap_bytes())))
            })
            .flatten()
    });
    match default {
        Some((interface, gateway))
            if real.len() == 1
                && real[0] == interface
                && interface.starts_with("eth")
                && runtime_gateway(gateway) =>
        {
            NetworkMode::Bridge { interface, gateway }
        }
        _ if real.is_empty() => NetworkMode::Unknown,
        _ => NetworkMode::Host,
    }
}

/// The `host` findings for doctor run under `root`.
pub(crate) fn findings(root: &Path, config: &Config) -> Vec<Finding> {
    let Some(container) = detect_container(root) else {
        return vec![finding(
            Level::Ok,
            "host",
            "not in a container: the daemon uses the host's network".into(),
            "",
        )];
    };
    let inside = format!(
        "in a {} container ({})",
        container.runtime, container.evidence
    );
    match network_mode(root) {
        NetworkMode::Host => vec![finding(
            Level::Ok,
            "host",
            format!("{inside}, on the host's network"),
            "",
        )],
        NetworkMode::Unknown => vec![finding(
            Level::Info,
            "host",
            format!("{inside}; its network mode cannot be read from /proc/net"),
            "",
        )],
        NetworkMode::Bridge { interface, gateway } => {
            let message = format!(
                "{inside}, in bridge network mode (own network namespace: {interface} with default gateway {gateway}): other hosts cannot dial the bridge address this daemon has"
            );
            let fix = "run the container with `--network host` (as actions/setup-github-cache does); or publish the libp2p port (-p 9100:9100/tcp -p 9100:9100/udp) and set GHCACHE_EXTERNAL_ADDR to the host's address";
            let level = if !crate::mesh_wanted(config) {
                Level::Info
            } else if config.external_addr.value.is_some() {
                // Published and announced on purpose: it can work.
                Level::Warn
            } else {
                Level::Fail
            };
            vec![finding(level, "host", message, fix)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::config_with;

    /// A fake root with the given files.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("dir");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    const DEV_BRIDGE: &str = "Inter-|   Receive |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  tunl0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:   12345      67    0    0    0     0          0         0     4567      45    0    0    0     0       0          0
";
    const ROUTE_BRIDGE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
";
    const DEV_HOST: &str = "Inter-|   Receive |  Transmit
 face |bytes
    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
  ens5: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0
 docker0: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";
    const ROUTE_HOST: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
ens5\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
";

    #[test]
    fn a_container_is_detected_by_its_marker_files_or_cgroup() {
        assert_eq!(detect_container(tree(&[]).path()), None);
        let docker = tree(&[(".dockerenv", "")]);
        assert_eq!(
            detect_container(docker.path()).map(|c| c.runtime),
            Some("docker")
        );
        let podman = tree(&[("run/.containerenv", "")]);
        assert_eq!(
            detect_container(podman.path()).map(|c| c.runtime),
            Some("podman")
        );
        let k8s = tree(&[(
            "proc/1/cgroup",
            "12:memory:/kubepods/burstable/pod1234/abcdef\n",
        )]);
        let found = detect_container(k8s.path()).expect("found");
        assert_eq!(found.runtime, "kubernetes");
        assert!(found.evidence.contains("kubepods"));
        // cgroup v2 at the root of its namespace says nothing.
        assert_eq!(
            detect_container(tree(&[("proc/1/cgroup", "0::/\n")]).path()),
            None
        );
    }

    #[test]
    fn bridge_mode_is_told_from_host_mode() {
        let bridge = tree(&[
            ("proc/net/dev", DEV_BRIDGE),
            ("proc/net/route", ROUTE_BRIDGE),
        ]);
        assert_eq!(
            network_mode(bridge.path()),
            NetworkMode::Bridge {
                interface: "eth0".into(),
                gateway: Ipv4Addr::new(172, 17, 0, 1)
            }
        );
        let host = tree(&[("proc/net/dev", DEV_HOST), ("proc/net/route", ROUTE_HOST)]);
        assert_eq!(network_mode(host.path()), NetworkMode::Host);
        // One NIC, no bridge in sight, but a VM's own: not a container bridge.
        let vm_dev = "Inter-|\n face |\n    lo: 0 0\n  ens5: 1 1\n";
        let vm_route = "Iface\tDestination\tGateway\nens5\t00000000\t01001FAC\n";
        let vm = tree(&[("proc/net/dev", vm_dev), ("proc/net/route", vm_route)]);
        assert_eq!(network_mode(vm.path()), NetworkMode::Host);
        let azure_dev = "Inter-|\n face |\n    lo: 0 0\n  eth0: 1 1\n";
        let azure_route = "Iface\tDestination\tGateway\neth0\t00000000\t0100000A\n";
        let azure = tree(&[("proc/net/dev", azure_dev), ("proc/net/route", azure_route)]);
        assert_eq!(network_mode(azure.path()), NetworkMode::Host);
        assert_eq!(network_mode(tree(&[]).path()), NetworkMode::Unknown);
    }

    #[test]
    fn a_bridged_container_with_a_mesh_fails_with_the_network_host_fix() {
        let secret = [("GHCACHE_CLUSTER_SECRET", "0123456789abcdef0123")];
        let bridged = tree(&[
            (".dockerenv", ""),
            ("proc/net/dev", DEV_BRIDGE),
            ("proc/net/route", ROUTE_BRIDGE),
        ]);
        let f = findings(bridged.path(), &config_with(&secret));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Fail);
        assert!(f[0].message.contains("bridge") && f[0].message.contains("172.17.0.1"));
        assert!(f[0].fix.contains("--network host"));
        // Without a mesh nothing needs dialling in: not a failure.
        assert_eq!(
            findings(bridged.path(), &config_with(&[]))[0].level,
            Level::Info
        );
        // Published and announced on purpose: a warning.
        let published = [
            secret[0],
            ("GHCACHE_EXTERNAL_ADDR", "/ip4/10.0.0.5/tcp/9100"),
        ];
        assert_eq!(
            findings(bridged.path(), &config_with(&published))[0].level,
            Level::Warn
        );
        let host_mode = tree(&[
            (".dockerenv", ""),
            ("proc/net/dev", DEV_HOST),
            ("proc/net/route", ROUTE_HOST),
        ]);
        let f = findings(host_mode.path(), &config_with(&secret));
        assert_eq!(f[0].level, Level::Ok);
        assert!(f[0].message.contains("host's network"));
        assert_eq!(
            findings(tree(&[]).path(), &config_with(&secret))[0].level,
            Level::Ok
        );
    }
}
