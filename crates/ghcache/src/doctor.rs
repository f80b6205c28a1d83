//! `ghcache doctor`: prints the findings of `ghcache_doctor::diagnose`;
//! exit 1 when anything failed, so a workflow step can gate on it.

use ghcache_config::Config;
use ghcache_doctor::Level;

/// Runs every check; returns whether none failed.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<bool> {
    let mut findings = ghcache_doctor::diagnose(config).await;
    findings.extend(ghcache_doctor::vault(
        &crate::vault::key_source(config),
        &crate::vault::socket_path(config),
    ));
    let healthy = findings.iter().all(|f| f.level != Level::Fail);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "healthy": healthy,
                "findings": findings,
            }))?
        );
    } else {
        for f in &findings {
            let mark = match f.level {
                Level::Ok => "ok  ",
                Level::Info => "info",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{mark} {:<13} {}", f.area, f.message);
            if !f.fix.is_empty() {
                println!("     {:<13} fix: {}", "", f.fix);
            }
        }
    }
    Ok(healthy)
}
