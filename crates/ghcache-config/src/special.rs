//! The settings that do not fit default < file < environment < flag, and
//! the checks that span several settings. Their metadata is declared with
//! the others in `settings.rs`.

use std::path::PathBuf;

use crate::resolve::{Env, Resolver};
use crate::values::{PeerAddr, Secret};
use crate::{Config, ConfigError, Origin, Setting, SettingInfo};

pub(crate) fn default_state_dir(env: &Env) -> PathBuf {
    if let Some(xdg) = env.get("XDG_STATE_HOME") {
        return PathBuf::from(xdg).join("ghcache");
    }
    match env.get("HOME") {
        Some(home) if home != "/" => PathBuf::from(home).join(".local/state/ghcache"),
        _ => PathBuf::from("/var/lib/ghcache"),
    }
}

/// The declared environment names of a hand-resolved setting, which its
/// code reads by position.
fn env_names<const N: usize>(info: &SettingInfo) -> Result<[&'static str; N], ConfigError> {
    info.env.try_into().map_err(|_| ConfigError::Invalid {
        at: info.key.into(),
        problem: format!(
            "declared with {} environment names, not {N}",
            info.env.len()
        ),
    })
}

/// An explicit multiaddr wins over the seed's `EXTERNAL_IP` (a bare IP is
/// turned into `/ip4/…`), which wins over the file.
pub(crate) fn external_addr(
    cx: &Resolver<'_>,
    info: &SettingInfo,
) -> Result<Setting<Option<PeerAddr>>, ConfigError> {
    let [addr_var, ip_var] = env_names(info)?;
    let explicit = cx.env_value::<PeerAddr>(&[addr_var])?;
    let from_ip = match cx.env.get(ip_var) {
        Some(ip) => Some((ip_to_multiaddr(ip_var, ip)?, Origin::Env(ip_var))),
        None => None,
    };
    let chosen = explicit.or(from_ip).or(cx.file(info.key)?);
    Ok(match chosen {
        Some((addr, origin)) => Setting {
            value: Some(addr),
            origin,
        },
        None => Setting {
            value: None,
            origin: Origin::Default,
        },
    })
}

fn ip_to_multiaddr(var: &str, text: &str) -> Result<PeerAddr, ConfigError> {
    let text = text.trim();
    let addr = match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("/ip4/{ip}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("/ip6/{ip}"),
        Err(_) => text.to_owned(),
    };
    addr.parse().map_err(|problem| ConfigError::Invalid {
        at: format!("{var}={text} (environment)"),
        problem: format!("expected an IP address or a multiaddr: {problem}"),
    })
}

/// The secret itself, else a file holding it (environment, then YAML),
/// else the seed's `GITHUB_TOKEN` with a loud warning (only when sharing).
pub(crate) fn cluster_secret(
    cx: &Resolver<'_>,
    info: &SettingInfo,
    p2p_enabled: bool,
) -> Result<Setting<Option<Secret>>, ConfigError> {
    let [secret_var, file_var] = env_names(info)?;
    let invalid = |at: String| move |problem| ConfigError::Invalid { at, problem };
    if let Some(value) = cx.env.get(secret_var) {
        let secret = Secret::new(value)
            .map_err(invalid(format!("{secret_var}=<redacted> (environment)")))?;
        return Ok(Setting {
            value: Some(secret),
            origin: Origin::Env(secret_var),
        });
    }
    let file_path = match cx.env.get(file_var) {
        Some(p) => Some((PathBuf::from(p), Origin::Env(file_var))),
        None => cx.file::<PathBuf>(info.key)?,
    };
    if let Some((path, origin)) = file_path {
        let at = format!("{} ({origin})", path.display());
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
            at: at.clone(),
            problem: format!("cannot read the cluster secret file: {e}"),
        })?;
        let secret = Secret::new(&text).map_err(invalid(at))?;
        return Ok(Setting {
            value: Some(secret),
            origin,
        });
    }
    if let Some(token) = cx.env.get("GITHUB_TOKEN").filter(|_| p2p_enabled)
        && let Ok(secret) = Secret::new(token)
    {
        cx.warn(format!(
            "using GITHUB_TOKEN as the cluster secret (seed compatibility): per-job tokens differ between jobs and rotate, so daemons will stop sharing with each other. Set {secret_var} to one random value for the whole fleet"
        ));
        return Ok(Setting {
            value: Some(secret),
            origin: Origin::Env("GITHUB_TOKEN"),
        });
    }
    Ok(Setting {
        value: None,
        origin: Origin::Default,
    })
}

/// A proxy other hosts can reach serves whatever it caches to anyone who
/// reaches it: say so, and refuse fleet trust there (it would hand private
/// bodies to requests with any token) unless the operator acknowledged it.
pub(crate) fn check_exposure(config: &mut Config) -> Result<(), ConfigError> {
    let addr = config.proxy_addr.value.0;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if config.fleet_trust.value && !config.fleet_trust_non_loopback.value {
        return Err(ConfigError::Invalid {
            at: format!(
                "cache.fleet_trust=true ({}) with proxy.addr={addr} ({})",
                config.fleet_trust.origin, config.proxy_addr.origin
            ),
            problem: "fleet trust serves cached private bodies to any token, and this address is reachable from other hosts: bind the proxy to 127.0.0.1, turn fleet trust off, or acknowledge with GHCACHE_FLEET_TRUST_NON_LOOPBACK=true (cache.fleet_trust_non_loopback)".into(),
        });
    }
    config.warnings.push(format!(
        "the proxy listens on {addr} ({}), reachable from other hosts: anyone who reaches it gets answers from this cache (each still needs GitHub's consent for private data unless fleet trust is on). Bind it to 127.0.0.1 unless other hosts must use it, and firewall the port",
        config.proxy_addr.origin
    ));
    Ok(())
}
