//! `ghcache doctor`: prints the report of `ghcache_doctor::diagnose`;
//! exit 1 when anything failed, so a workflow step can gate on it.

use ghcache_config::Config;

/// Runs every check; returns whether none failed.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<bool> {
    // The token the jobs use, for the upstream quota check only.
    let token = ["GITHUB_TOKEN", "GH_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(|t| ghcache_doctor::SecretString::from(t.trim().to_owned()));
    let mut findings = ghcache_doctor::diagnose(config, token.as_ref()).await;
    findings.extend(ghcache_doctor::vault(
        &crate::vault::key_source(config),
        &crate::vault::socket_path(config),
    ));
    let report = ghcache_doctor::Report::new(findings);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(report.healthy)
}
