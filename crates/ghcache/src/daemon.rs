//! `ghcache daemon`, `ghcache stats` and `ghcache fakehub`: wiring of the
//! library crates, nothing more.

use std::sync::Arc;

use anyhow::Context;
use ghcache_config::Config;
use ghcache_core::{PartitionSecret, private_file};
use ghcache_mesh::{Mesh, MeshConfig};
use ghcache_proxy::{OperationTtls, PeerTrust, Proxy, ProxyConfig, StatsReport};
use ghcache_store::{Store, StoreConfig, StoreError};

#[cfg(feature = "fakehub")]
use crate::cli::FakehubArgs;
use crate::cli::{DaemonArgs, StatsArgs};

/// A configuration problem found while starting (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn proxy_config(config: &Config) -> ProxyConfig {
    let mut proxy = ProxyConfig::new(config.proxy_addr.value.0, config.upstream.value.as_str());
    proxy.default_ttl = config.default_ttl.value.0;
    proxy.operation_ttls = OperationTtls::new(
        config
            .operation_ttls
            .value
            .iter()
            .map(|(pattern, ttl)| (pattern.as_str(), ttl.0)),
    );
    proxy.cache_enabled = config.cache_enabled.value;
    proxy.fleet_trust = config.fleet_trust.value;
    proxy.peer_deadline = config.peer_deadline.value;
    proxy.in_flight_wait = config.in_flight_wait.value;
    proxy.peer_trust = match config.peer_trust.value {
        ghcache_config::PeerTrust::Verify => PeerTrust::Verify,
        ghcache_config::PeerTrust::Members => PeerTrust::Members,
    };
    proxy.state_dir = Some(config.state_dir.value.display().to_string());
    proxy
}

pub async fn run_daemon(config: &Config, args: &DaemonArgs) -> anyhow::Result<()> {
    let state_dir = &config.state_dir.value;
    private_file::create_private_dir(state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    // An existing directory is the operator's: say how to fix it, do not
    // chmod it behind their back (the store file itself is narrowed).
    if let Ok(Some(mode)) = private_file::wider_than_private(state_dir) {
        tracing::warn!(
            path = %state_dir.display(),
            mode = format!("{mode:o}"),
            "the state directory is accessible by other users of this host, who could read what it holds; run `chmod 700 {}`",
            state_dir.display()
        );
    }
    let store_config = StoreConfig {
        max_bytes: config.max_size.value.0,
        max_entries: config.max_entries.value.0,
        persistence: config.persistence.value,
    };
    let store_dir = state_dir.join("cache");
    let store = if args.recover_store {
        Store::open_recovering(&store_dir, store_config)
    } else {
        Store::open(&store_dir, store_config)
    };
    let store = match store {
        Ok(store) => Arc::new(store),
        Err(err @ StoreError::Corrupt { .. }) => {
            return Err(UsageError(format!(
                "{err}\nTo keep the file for inspection and start with an empty cache, run `ghcache daemon --recover-store`."
            ))
            .into());
        }
        Err(err) => return Err(err).context("cannot open the store"),
    };
    let mesh = start_mesh(config, &store).await?;
    // With a mesh, partitions come from the cluster secret so that every
    // daemon of the fleet computes the same partition for the same token.
    let secret = match &mesh {
        Some(mesh) => PartitionSecret::from_key(*mesh.cluster_keys().partition_key()),
        None => PartitionSecret::load_or_create(&state_dir.join("partition.key"))
            .context("cannot load the partition key")?,
    };
    let codeql = codeql_service(&store, &secret, mesh.as_ref());
    let mut proxy_settings = proxy_config(config);
    proxy_settings.max_connections = connection_limit(raise_fd_limit());
    let mut proxy =
        Proxy::new(proxy_settings, store.clone(), secret).map_err(|e| UsageError(e.to_string()))?;
    proxy = proxy
        .with_control(codeql)
        .map_err(|e| UsageError(e.to_string()))?;
    if let Some(mesh) = &mesh {
        proxy = proxy
            .with_peers(Arc::new(mesh.clone()))
            .map_err(|e| UsageError(e.to_string()))?;
        proxy.report_registry(mesh.metrics_registry());
        proxy.follow_invalidations(mesh.invalidations());
    }
    let vault = crate::vault::serve(config, &proxy);
    let running = proxy.serve().await?;
    let url = client_url(running.addr());
    tracing::info!(
        proxy = %url,
        listen = %running.addr(),
        upstream = config.upstream.value.as_str(),
        state_dir = %state_dir.display(),
        "ghcache daemon ready; point clients on this host at it with GITHUB_API_URL={url}"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    if let Some(vault) = vault {
        vault.shutdown().await;
    }
    if let Some(mesh) = mesh {
        mesh.shutdown().await;
    }
    store.flush();
    Ok(())
}

/// The CodeQL result cache, in the store, found through the mesh when
/// there is one (record ids keyed with the partition secret, which the
/// mesh derives from the cluster secret).
fn codeql_service(
    store: &Arc<Store>,
    secret: &PartitionSecret,
    mesh: Option<&Mesh>,
) -> Arc<crate::codeql_daemon::CodeqlRoutes> {
    use crate::codeql_daemon::{CodeqlRoutes, FLEET_LOOKUP_DEADLINE, MeshFleet};
    let mut service = ghcache_codeql::CodeqlService::new(store.clone(), secret.clone());
    if let Some(mesh) = mesh {
        service = service.with_fleet(Arc::new(MeshFleet(mesh.clone())), FLEET_LOOKUP_DEADLINE);
    }
    Arc::new(CodeqlRoutes(Arc::new(service)))
}

/// The URL a client on this host uses: a wildcard bind is reached on
/// loopback (`http://0.0.0.0:…` is not an address to connect to).
fn client_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// Raises the soft open-file limit to the hard one (the common soft default
/// of 1,024 runs out under load); returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open-file limit");
            limit
        }
        Err(e) => {
            let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
            tracing::warn!(error = %e, soft, "cannot raise the open-file limit");
            soft
        }
    }
}

/// Client connections allowed: what the descriptor limit leaves after the
/// mesh, the upstream pool and the store (256), within [32, 16,384].
fn connection_limit(fd_limit: u64) -> usize {
    fd_limit.saturating_sub(256).clamp(32, 16_384) as usize
}

/// Joins the fleet when sharing is on and a cluster secret is set.
async fn start_mesh(config: &Config, store: &Arc<Store>) -> anyhow::Result<Option<Mesh>> {
    if !config.p2p_enabled.value {
        return Ok(None);
    }
    let Some(secret) = &config.cluster_secret.value else {
        tracing::warn!(
            "peer-to-peer sharing is on but no cluster secret is set: running as a standalone cache. Set GHCACHE_CLUSTER_SECRET (the same random value on every host) or CACHE_ENABLE_P2P=false"
        );
        return Ok(None);
    };
    let discovery = config.peer_discovery.value;
    let mut mesh = MeshConfig::new(
        config.network_id.value.clone(),
        secret.expose().as_bytes().to_vec(),
        config.state_dir.value.join("identity.key"),
    );
    mesh.listen_ip = config.listen_ip.value;
    mesh.listen_port = config.listen_port.value.0;
    // One multiaddr crate in the tree: the validated values are libp2p's type.
    let addrs = |list: Vec<&ghcache_config::PeerAddr>| -> Vec<ghcache_mesh::Multiaddr> {
        list.into_iter().map(|a| a.0.clone()).collect()
    };
    mesh.external_addrs = addrs(config.external_addr.value.iter().collect());
    mesh.bootstrap = if config.bootstrap_discovery.value {
        addrs(config.bootstrap_peers.value.iter().collect())
    } else {
        Vec::new()
    };
    mesh.registry_dir =
        (discovery && config.registry_discovery.value).then(|| config.registry_dir.value.clone());
    // The default registry is inside the state directory, so private; one
    // the operator points elsewhere is usually shared on purpose and is left
    // to the mesh (records are readable, the directory mode is theirs).
    if let Some(dir) = &mesh.registry_dir
        && dir.starts_with(&config.state_dir.value)
    {
        private_file::create_private_dir(dir).with_context(|| {
            format!(
                "cannot create the peer registry directory {}",
                dir.display()
            )
        })?;
    }
    mesh.mdns = discovery && config.mdns.value;
    mesh.kademlia = discovery && config.dht.value;
    mesh.private_network = config.private_network.value;
    mesh.fetch_deadline = config.peer_deadline.value;
    mesh.fetch_deadline_max = config.peer_deadline_max.value;
    let mesh = Mesh::start(mesh, store.clone())
        .await
        .context("cannot join the peer-to-peer mesh")?;
    tracing::info!(peer_id = %mesh.peer_id(), "joined the mesh");
    Ok(Some(mesh))
}

pub async fn run_peers(config: &Config, args: &StatsArgs) -> anyhow::Result<()> {
    let addr = config.proxy_addr.value.0;
    if args.json {
        let peers = ghcache_proxy::control_get(addr, "/_ghcache/peers").await?;
        println!("{}", serde_json::to_string_pretty(&peers)?);
        return Ok(());
    }
    let status: ghcache_proxy::PeerStatus =
        ghcache_proxy::control_get_as(addr, "/_ghcache/peers").await?;
    let Some(m) = status.mesh.filter(|_| status.enabled) else {
        println!(
            "peer-to-peer sharing is off on this daemon (CACHE_ENABLE_P2P, GHCACHE_CLUSTER_SECRET)"
        );
        return Ok(());
    };
    let d = &m.discovered;
    let r = &m.rejected;
    println!("peer id          {}", m.peer_id);
    println!(
        "network          {} (key fingerprint {})",
        m.network_id, m.key_fingerprint
    );
    println!("listening on     {}", m.listen_addrs.join(" "));
    println!("advertised       {}", m.external_addrs.join(" "));
    println!(
        "discovered       registry {}, bootstrap {}, mDNS {}, Kademlia {}, manual {}",
        d.registry.len(),
        d.bootstrap.len(),
        d.mdns.len(),
        d.kademlia.len(),
        d.manual.len()
    );
    println!(
        "fetches          served {}, peer hits {}, peer misses {}",
        m.fetches_served, m.peer_hits, m.peer_misses
    );
    println!(
        "providers        lookups {}, hits {}, records we publish {}",
        m.provider_lookups, m.provider_hits, m.provided_keys
    );
    println!("bytes            in {}, out {}", m.bytes_in, m.bytes_out);
    println!(
        "announcements    sent {}, received {}, last lag {}",
        m.announcements_sent,
        m.announcements_received,
        m.last_announcement_lag_ms
            .map_or("-".to_owned(), |ms| format!("{ms} ms"))
    );
    println!("banned           {}", m.banned_peers.len());
    println!(
        "rejected         {} (decrypt {}, CID mismatch {}, oversized {}, malformed {}, replayed {})",
        r.total(),
        r.decrypt,
        r.cid_mismatch,
        r.oversized,
        r.malformed,
        r.replayed
    );
    if let Some(last) = &m.last_rejection {
        println!(
            "last rejection   {} from {}: {}",
            last.reason, last.peer_id, last.hint
        );
    }
    println!();
    println!("{:<54} {:<8} ADDRESS", "CONNECTED PEER", "MEMBER");
    for peer in &m.connected_peers {
        // A non-member holds another cluster secret (or network id).
        let member = match peer.member {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "?",
        };
        let addr = peer.addrs.first().map_or("", String::as_str);
        println!("{:<54} {member:<8} {addr}", peer.peer_id);
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run_stats(config: &Config, args: &StatsArgs) -> anyhow::Result<()> {
    let addr = config.proxy_addr.value.0;
    if args.json {
        let stats = ghcache_proxy::control_get(addr, "/_ghcache/stats").await?;
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let stats: StatsReport = ghcache_proxy::control_get_as(addr, "/_ghcache/stats").await?;
    let hits = &stats.hits;
    println!("requests            {}", stats.requests);
    println!(
        "hits                {} (fresh {}, revalidated {}, synthesized {}, coalesced {}, stale {})",
        hits.total, hits.hit, hits.revalidated, hits.synthesized, hits.coalesced, hits.stale
    );
    println!("misses              {}", stats.misses);
    println!("passed through      {}", stats.bypass);
    println!("hit rate            {:.1}%", stats.hit_rate * 100.0);
    println!("upstream requests   {}", stats.upstream.requests);
    let by_status: Vec<String> = stats
        .upstream
        .by_status
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    println!("upstream by status  {}", by_status.join(", "));
    println!(
        "time saved          {:.1} s (each hit counts the mean upstream latency, {:.0} ms)",
        stats.time_saved_us as f64 / 1e6,
        stats.upstream.latency_us_total as f64 / stats.upstream.answered.max(1) as f64 / 1000.0
    );
    println!("rate-limit spent    {}", stats.rate_limit.units_spent);
    println!("rate-limit saved    {}", stats.rate_limit.units_saved);
    println!(
        "store               {} entries, {} bytes, {} evictions{}",
        stats.store.entries,
        stats.store.bytes + stats.store.meta_bytes,
        stats.store.evictions,
        if stats.store.degraded {
            " (DEGRADED: memory only)"
        } else {
            ""
        }
    );
    if let Some(codeql) = stats.extensions.get("codeql")
        && let Ok(codeql) = serde_json::from_value(codeql.clone())
    {
        crate::codeql::print_stats(&codeql);
    }
    for p in &stats.rate_limit.partitions {
        println!(
            "quota {} {:<8} {}/{} remaining, resets at {}",
            p.partition, p.resource, p.remaining, p.limit, p.reset
        );
    }
    if stats.rate_limit.partitions_tracked > stats.rate_limit.partitions.len() as u64 {
        println!(
            "quota ({} partitions tracked in all, the lowest shown)",
            stats.rate_limit.partitions_tracked
        );
    }
    Ok(())
}

#[cfg(feature = "fakehub")]
pub async fn run_fakehub(args: &FakehubArgs) -> anyhow::Result<()> {
    let mut config = if args.realistic {
        ghcache_fakehub::FakeHubConfig::realistic()
    } else {
        ghcache_fakehub::FakeHubConfig::default()
    };
    config.seed = args.seed;
    let hub = ghcache_fakehub::FakeHub::start_on(args.addr.0, config)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    println!("fake GitHub API at {}", hub.base_url());
    println!("tokens of the seeded world (fake, valid only here):");
    for token in hub.world().tokens() {
        println!(
            "  {:<14} {:<28} {}",
            format!("{:?}", token.kind),
            token.identity,
            token.token
        );
    }
    shutdown_signal().await;
    hub.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ghcache_config::{Overrides, Sources, load};
    use std::time::Duration;

    #[test]
    fn the_coalescing_settings_reach_the_proxy() {
        let dir = tempfile::tempdir().unwrap();
        let sources = |env: &[(&str, &str)]| Sources {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("HOME".to_owned(), dir.path().display().to_string())])
                .collect(),
            cwd: dir.path().to_owned(),
        };
        let default = load(&Overrides::default(), &sources(&[])).unwrap();
        assert_eq!(
            proxy_config(&default).in_flight_wait,
            Duration::from_secs(5)
        );
        assert_eq!(default.peer_deadline_max.value, Duration::from_secs(1));
        let set = load(
            &Overrides::default(),
            &sources(&[
                ("GHCACHE_IN_FLIGHT_WAIT_MS", "1234"),
                ("GHCACHE_PEER_DEADLINE_MAX_MS", "300"),
            ]),
        )
        .unwrap();
        assert_eq!(
            proxy_config(&set).in_flight_wait,
            Duration::from_millis(1234)
        );
        assert_eq!(set.peer_deadline_max.value, Duration::from_millis(300));
    }
}
