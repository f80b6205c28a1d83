//! Every setting, declared once. The `settings!` macro (see `schema.rs`)
//! generates the `Config` field, the layered resolution, the `config show`
//! row and the [`SETTINGS`] entry (YAML schema, README check) from each.
//! Order: the order of `config show`, and of resolution, so a default or
//! resolver may use any setting above it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::special;
use crate::values::{
    Algorithm, AlwaysEncrypted, ByteSize, Count, ListenAddr, LogFormat, NetworkId, PeerAddr,
    PeerTrust, Port, Seconds, Secret, Upstream,
};
use crate::{SettingInfo, schema};

settings! {
    cx;

    /// store, vault, registry record, peer identity
    state_dir: PathBuf {
        label: "state directory",
        key: "cache.dir",
        shown: "state_dir",
        env: ["GHCACHE_STATE_DIR", "CACHE_DIR", "IPFS_ACCELERATE_CACHE_DIR"],
        flag: "--state-dir" => cx.overrides.state_dir.clone(),
        default: "$XDG_STATE_HOME/ghcache or ~/.local/state/ghcache"
            => special::default_state_dir(cx.env),
    }
    /// the credential vault's master key (mode 0600): used when it exists or
    /// is set, else `GHCACHE_MASTER_KEY`, else `GHCACHE_VAULT_PASSPHRASE`,
    /// else created here
    vault_key_file: PathBuf {
        label: "vault key file",
        key: "vault.key_file",
        env: ["GHCACHE_VAULT_KEY_FILE"],
        default: "<state>/vault.key" => state_dir.value.join("vault.key"),
    }
    /// `text` or `json` (stderr)
    log_format: LogFormat {
        label: "log format",
        key: "logging.format",
        env: ["GHCACHE_LOG_FORMAT"],
        flag: "--log-format" => cx.overrides.log_format,
        default: "text",
    }
    /// where the caching proxy listens
    proxy_addr: ListenAddr {
        label: "proxy address",
        key: "proxy.addr",
        env: ["GHCACHE_PROXY_ADDR"],
        flag: "--proxy-addr" => cx.overrides.proxy_addr,
        default: "127.0.0.1:8787",
    }
    /// GitHub API base (GHES: `https://HOST/api/v3`)
    upstream: Upstream {
        label: "upstream",
        key: "proxy.upstream",
        env: ["GHCACHE_UPSTREAM"],
        flag: "--upstream" => cx.overrides.upstream.clone(),
        default: "https://api.github.com",
    }
    /// `false`: pass everything through
    cache_enabled: bool {
        label: "cache on/off",
        key: "cache.enabled",
        env: ["GHCACHE_CACHE_ENABLED"],
        default: "true",
    }
    /// bound on stored body bytes
    max_size: ByteSize {
        label: "cache size",
        key: "cache.max_size",
        env: ["GHCACHE_MAX_SIZE"],
        default: "1GiB",
    }
    /// bound on stored entries
    max_entries: Count {
        label: "cache entries",
        key: "cache.max_entries",
        env: ["GHCACHE_MAX_ENTRIES"],
        default: "100000",
    }
    /// freshness for responses GitHub gave none (no `max-age`/`Expires`) that carry a validator
    default_ttl: Seconds {
        label: "default TTL",
        key: "cache.default_ttl",
        env: ["CACHE_DEFAULT_TTL"],
        flag: "--default-ttl" => cx.overrides.default_ttl,
        default: "300",
    }
    /// keep the store on disk across restarts
    persistence: bool {
        label: "persistence",
        key: "cache.persistence",
        env: ["GHCACHE_PERSISTENCE"],
        default: "true",
    }
    /// serve fresh entries across tokens without revalidation (one trust domain only)
    fleet_trust: bool {
        label: "fleet trust",
        key: "cache.fleet_trust",
        env: ["GHCACHE_FLEET_TRUST"],
        default: "false",
    }
    /// Acknowledges fleet trust on a proxy address other hosts can reach.
    fleet_trust_non_loopback: bool {
        label: "fleet trust off loopback",
        key: "cache.fleet_trust_non_loopback",
        env: ["GHCACHE_FLEET_TRUST_NON_LOOPBACK"],
        default: "false",
    }
    /// longest a request waits for another token's fetch of the same resource (here or a member's) before fetching itself
    in_flight_wait: Duration {
        label: "in-flight wait",
        key: "cache.in_flight_wait_ms" as Count => |ms: Count| Duration::from_millis(ms.0),
        env: ["GHCACHE_IN_FLIGHT_WAIT_MS"],
        default: "5000",
    }
    /// whether a mesh member's copy is served before GitHub confirms it
    peer_trust: PeerTrust {
        label: "peer trust",
        key: "p2p.peer_trust",
        env: ["GHCACHE_PEER_TRUST"],
        default: "verify",
    }
    /// `{path pattern: duration}` overriding freshness per endpoint
    operation_ttls: BTreeMap<String, Seconds> {
        label: "operation TTLs",
        key: "operation_ttls",
        env: [],
        default: "none" => BTreeMap::new(),
    }
    /// share entries with other daemons
    p2p_enabled: bool {
        label: "mesh on/off",
        key: "p2p.enabled",
        env: ["CACHE_ENABLE_P2P"],
        flag: "--no-p2p" => cx.overrides.no_p2p.then_some(false),
        default: "true",
    }
    /// TCP and QUIC listen port
    listen_port: Port {
        label: "libp2p port",
        key: "p2p.listen_port",
        env: ["CACHE_LISTEN_PORT"],
        flag: "--listen-port" => cx.overrides.listen_port,
        default: "9100",
    }
    /// interface the mesh listens on
    listen_ip: IpAddr {
        label: "libp2p listen IP",
        key: "p2p.listen_ip",
        env: ["GHCACHE_P2P_LISTEN_IP"],
        default: "0.0.0.0",
    }
    /// multiaddrs dialled at start and redialled with backoff
    bootstrap_peers: Vec<PeerAddr> {
        label: "bootstrap peers",
        key: "p2p.bootstrap_peers",
        env: ["CACHE_BOOTSTRAP_PEERS"],
        flag: "--bootstrap-peer" => {
            let peers = &cx.overrides.bootstrap_peers;
            (!peers.is_empty()).then(|| peers.clone())
        },
        default: "none" => Vec::new(),
    }
    /// master switch for all discovery sources
    peer_discovery: bool {
        label: "discovery",
        key: "p2p.peer_discovery",
        env: ["GHCACHE_PEER_DISCOVERY"],
        default: "true",
    }
    /// file peer registry (share it between runners or hosts)
    registry_dir: PathBuf {
        label: "registry directory",
        key: "p2p.registry_dir",
        env: ["GHCACHE_REGISTRY_DIR"],
        default: "<state>/peers" => state_dir.value.join("peers"),
    }
    /// the address other hosts reach this daemon at
    external_addr: Option<PeerAddr> {
        label: "external address",
        key: "p2p.external_addr" as PeerAddr,
        env: ["GHCACHE_EXTERNAL_ADDR", "EXTERNAL_IP"],
        default: "none",
        resolve: |info| special::external_addr(cx, info),
    }
    /// longest a peer may delay a request
    peer_deadline: Duration {
        label: "peer deadline",
        key: "p2p.peer_deadline_ms" as Count => |ms: Count| Duration::from_millis(ms.0),
        env: ["GHCACHE_PEER_DEADLINE_MS"],
        default: "50",
    }
    /// how far the peer deadline stretches when members answer slower (never below the peer deadline)
    peer_deadline_max: Duration {
        label: "peer deadline cap",
        key: "p2p.peer_deadline_max_ms" as Count => |ms: Count| Duration::from_millis(ms.0),
        env: ["GHCACHE_PEER_DEADLINE_MAX_MS"],
        default: "1000",
    }
    /// separates fleets (gossip topic, registry records)
    network_id: String {
        label: "network id",
        key: "network.network_id" as NetworkId => |id: NetworkId| id.0,
        env: ["GHCACHE_NETWORK_ID"],
        default: "ghcache",
    }
    /// LAN discovery
    mdns: bool {
        label: "mDNS",
        key: "discovery.methods.mdns",
        env: ["GHCACHE_MDNS"],
        default: "true",
    }
    /// DHT discovery and provider records
    dht: bool {
        label: "Kademlia",
        key: "discovery.methods.dht",
        env: ["GHCACHE_DHT"],
        default: "true",
    }
    /// use the file peer registry
    registry_discovery: bool {
        label: "registry discovery",
        key: "discovery.methods.registry",
        env: [],
        default: "true",
    }
    /// use the bootstrap list
    bootstrap_discovery: bool {
        label: "bootstrap discovery",
        key: "discovery.methods.bootstrap",
        env: [],
        default: "true",
    }
    /// the only algorithm is AES-256-GCM
    encryption_algorithm: String {
        label: "encryption algorithm",
        key: "security.encryption.algorithm" as Algorithm => |a: Algorithm| a.0,
        env: [],
        default: "aes-256-gcm",
    }
    /// Mesh connections over TCP with a pre-shared key derived from the
    /// cluster secret (libp2p pnet): non-members cannot even connect. No QUIC.
    private_network: bool {
        label: "private network",
        key: "security.private_network",
        env: ["GHCACHE_PRIVATE_NETWORK"],
        default: "false",
    }
    /// shared by the fleet; at least 16 bytes. `GITHUB_TOKEN` is a fallback, with a warning
    cluster_secret: Option<Secret> {
        label: "cluster secret",
        key: "security.cluster_secret_file" as PathBuf,
        shown: "security.cluster_secret",
        env: ["GHCACHE_CLUSTER_SECRET", "GHCACHE_CLUSTER_SECRET_FILE"],
        default: "none",
        resolve: |info| special::cluster_secret(cx, info, p2p_enabled.value),
    }

    @extra [
        SettingInfo {
            label: "config file",
            key: "",
            shown: "",
            env: &[crate::CONFIG_ENV],
            flag: "--config",
            default: "discovered",
            doc: "read only this YAML file",
            check: None,
        },
        SettingInfo {
            label: "encryption",
            key: "security.encryption.enabled",
            shown: "",
            env: &[],
            flag: "",
            default: "true",
            doc: "always on: `false` is refused",
            check: Some(schema::check::<AlwaysEncrypted>),
        },
    ]
}
