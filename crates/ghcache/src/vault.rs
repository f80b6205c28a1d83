//! Wiring of the credential vault: where it lives, which master key opens
//! it, the daemon's socket, and the clients' one call.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use ghcache_config::{Config, Origin};
use ghcache_vault::client::{self, Via};
use ghcache_vault::server::VaultServer;
use ghcache_vault::wire::{Envelope, Request, Response};
use ghcache_vault::{Claims, KeySource, Service};

use crate::daemon::UsageError;

pub fn vault_dir(config: &Config) -> PathBuf {
    config.state_dir.value.join("vault")
}

/// Pinned: `<state_dir>/vault.sock`.
pub fn socket_path(config: &Config) -> PathBuf {
    config.state_dir.value.join("vault.sock")
}

/// The master key source in use (see `KeySource::resolve` for the order).
pub fn key_source(config: &Config) -> KeySource {
    KeySource::resolve(
        &config.vault_key_file.value,
        !matches!(config.vault_key_file.origin, Origin::Default),
        |name| std::env::var(name).ok(),
    )
}

/// The caller's claims: the one place they are resolved (today from the
/// job's environment, unverified).
pub fn claims(labels: &[String]) -> Claims {
    Claims::from_env(|name| std::env::var(name).ok(), labels)
}

/// The daemon's vault: opened, locked and served on its socket. A vault
/// that cannot be served is logged and left to the CLI (the proxy runs on).
pub fn serve(config: &Config, proxy: &ghcache_proxy::Proxy) -> Option<VaultServer> {
    let key = key_source(config);
    let started = Service::open(&vault_dir(config), &key, Duration::from_secs(2))
        .map_err(|e| e.to_string())
        .and_then(|service| {
            VaultServer::start(service, &socket_path(config)).map_err(|e| e.to_string())
        });
    match started {
        Ok(server) => {
            tracing::info!(master_key = %key.describe(), "credential vault open");
            let counters = server.counters();
            proxy.report_vault(move || {
                let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                ghcache_proxy::VaultReport {
                    served: true,
                    requests: count(&counters.requests),
                    refused_callers: count(&counters.refused_peers),
                    credentials_injected: count(&counters.credentials_injected),
                }
            });
            Some(server)
        }
        Err(error) => {
            tracing::error!(%error, "the credential vault is not served; `ghcache creds` and `inject-credentials` will open it themselves");
            None
        }
    }
}

/// Sends one request (to the daemon, or to the vault opened here) and
/// turns a refusal into an error with the right exit code.
pub fn call(config: &Config, claims: Claims, request: Request) -> anyhow::Result<Response> {
    let envelope = Envelope { claims, request };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (response, via) = runtime.block_on(client::call(
        &socket_path(config),
        &vault_dir(config),
        || Ok(key_source(config)),
        envelope,
    ))?;
    tracing::debug!(
        via = if via == Via::Daemon {
            "daemon"
        } else {
            "local"
        },
        "vault answered"
    );
    match response {
        Response::Error {
            message,
            usage: true,
        } => Err(UsageError(message).into()),
        Response::Error { message, .. } => Err(anyhow::anyhow!(message)),
        other => Ok(other),
    }
}

/// Reads a value from `file`, else from stdin (never from argv).
pub fn read_value(file: Option<&PathBuf>) -> anyhow::Result<ghcache_vault::wire::WireSecret> {
    use std::io::{IsTerminal, Read};
    let bytes = match file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("cannot read the value file {}", path.display()))?,
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(UsageError(
                    "the value comes from stdin or --value-file, never from the command line: pipe it in (`printf %s \"$VALUE\" | ghcache creds set …`)".into(),
                )
                .into());
            }
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .context("cannot read the value from stdin")?;
            bytes
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        UsageError("the value is not UTF-8 text (it becomes an environment variable)".into())
    })?;
    Ok(ghcache_vault::wire::WireSecret(text.into()))
}
