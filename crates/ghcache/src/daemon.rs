//! `ghcache daemon`, `ghcache stats` and `ghcache fakehub`: wiring of the
//! library crates, nothing more.

use std::sync::Arc;

use anyhow::Context;
use ghcache_config::Config;
use ghcache_core::PartitionSecret;
use ghcache_proxy::{OperationTtls, Proxy, ProxyConfig};
use ghcache_store::{Store, StoreConfig, StoreError};

use crate::cli::{DaemonArgs, FakehubArgs, StatsArgs};

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
    proxy.state_dir = Some(config.state_dir.value.display().to_string());
    proxy
}

pub async fn run_daemon(config: &Config, args: &DaemonArgs) -> anyhow::Result<()> {
    let state_dir = &config.state_dir.value;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
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
    let secret = PartitionSecret::load_or_create(&state_dir.join("partition.key"))
        .context("cannot load the partition key")?;
    let proxy = Proxy::new(proxy_config(config), store.clone(), secret)
        .map_err(|e| UsageError(e.to_string()))?;
    let running = proxy.serve().await?;
    tracing::info!(
        proxy = %running.base_url(),
        upstream = config.upstream.value.as_str(),
        state_dir = %state_dir.display(),
        "ghcache daemon ready; point clients at it with GITHUB_API_URL={}",
        running.base_url()
    );
    if config.p2p_enabled.value {
        tracing::info!("peer-to-peer sharing is not built yet; running as a standalone cache");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    store.flush();
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
    let stats = ghcache_proxy::control_get(config.proxy_addr.value.0, "/_ghcache/stats").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let hits = &stats["hits"];
    println!("requests            {}", n(&stats["requests"]));
    println!(
        "hits                {} (fresh {}, revalidated {}, synthesized {}, coalesced {}, stale {})",
        n(&hits["total"]),
        n(&hits["hit"]),
        n(&hits["revalidated"]),
        n(&hits["synthesized"]),
        n(&hits["coalesced"]),
        n(&hits["stale"])
    );
    println!("misses              {}", n(&stats["misses"]));
    println!("passed through      {}", n(&stats["bypass"]));
    println!(
        "hit rate            {:.1}%",
        stats["hit_rate"].as_f64().unwrap_or(0.0) * 100.0
    );
    println!("upstream requests   {}", n(&stats["upstream"]["requests"]));
    println!(
        "rate-limit spent    {}",
        n(&stats["rate_limit"]["units_spent"])
    );
    println!(
        "rate-limit saved    {}",
        n(&stats["rate_limit"]["units_saved"])
    );
    println!(
        "store               {} entries, {} bytes, {} evictions{}",
        n(&stats["store"]["entries"]),
        n(&stats["store"]["bytes"]),
        n(&stats["store"]["evictions"]),
        if stats["store"]["degraded"].as_bool() == Some(true) {
            " (DEGRADED: memory only)"
        } else {
            ""
        }
    );
    if let Some(partitions) = stats["rate_limit"]["partitions"].as_array() {
        for p in partitions {
            println!(
                "quota {} {:<8} {}/{} remaining, resets at {}",
                p["partition"].as_str().unwrap_or("?"),
                p["resource"].as_str().unwrap_or("?"),
                n(&p["remaining"]),
                n(&p["limit"]),
                n(&p["reset"])
            );
        }
    }
    Ok(())
}

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
