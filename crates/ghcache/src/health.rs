//! `ghcache health`: asks the daemon's control API whether it is ready.
//! The image's `HEALTHCHECK` and the actions' readiness wait use it (a
//! `scratch` image has no curl). Prints `key=value` lines a shell step can
//! copy into `GITHUB_OUTPUT`; exit 1 when the daemon does not answer.

use ghcache_config::Config;
use ghcache_proxy::{HealthReport, PeerStatus};

use crate::cli::StatsArgs;

pub async fn run(config: &Config, args: &StatsArgs) -> anyhow::Result<()> {
    let addr = config.proxy_addr.value.0;
    let health: HealthReport = ghcache_proxy::control_get_as(addr, "/_ghcache/health").await?;
    anyhow::ensure!(
        health.status == "ok",
        "{addr} answers /_ghcache/health, but not as a ghcache daemon (no \"status\": \"ok\"); is another process on the proxy port?"
    );
    let peers: PeerStatus = ghcache_proxy::control_get_as(addr, "/_ghcache/peers").await?;
    let mesh = peers.mesh.filter(|_| peers.enabled);
    if args.json {
        let summary = serde_json::json!({
            "health": health,
            "peer_id": mesh.as_ref().map(|m| m.peer_id.clone()),
            "connected_peers": mesh.as_ref().map_or(0, |m| m.connected_peers.len()),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("status={}", health.status);
    println!("version={}", health.version);
    println!("upstream={}", health.upstream);
    println!(
        "peer-id={}",
        mesh.as_ref().map_or("", |m| m.peer_id.as_str())
    );
    println!(
        "connected-peers={}",
        mesh.as_ref().map_or(0, |m| m.connected_peers.len())
    );
    Ok(())
}
