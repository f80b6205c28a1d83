//! ghcache's one configuration model.
//!
//! Every setting is resolved from four layers, highest first: command-line
//! flags, environment, YAML file, defaults. Each resolved value remembers
//! where it came from ([`Origin`]) so `ghcache config show` can say so, and
//! every bad value is reported with its source and what is allowed.
//!
//! This crate only reads and validates; it starts nothing, opens no sockets
//! and never prints a secret (they are [`Secret`]s, redacted everywhere).

mod file;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use file::LoadedFile;
pub use values::{
    ByteSize, Count, Flag, ListenAddr, LogFormat, PeerAddr, PeerTrust, Port, Seconds, Secret,
    Upstream, parse_peer_list,
};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: String, line: Option<usize> },
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File {
                path,
                line: Some(l),
            } => write!(f, "file {path}:{l}"),
            Origin::File { path, line: None } => write!(f, "file {path}"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// A configuration problem. All of them are usage errors (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `CACHE_LISTEN_PORT=70000 (environment): port must be 1-65535`
    #[error("{at}: {problem}")]
    Invalid { at: String, problem: String },
    #[error("{0}")]
    UnknownKey(Box<UnknownKey>),
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    File {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A YAML key that is not part of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub section: Option<String>,
    pub suggestion: Option<String>,
    pub allowed: Vec<String>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: unknown key \"{}\"",
            self.file, self.line, self.key
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean \"{s}\"?)")?;
        }
        f.write_str(&describe_allowed(&self.section, &self.allowed))
    }
}

fn describe_allowed(section: &Option<String>, allowed: &[String]) -> String {
    let place = section
        .as_ref()
        .map(|s| format!(" in `{s}`"))
        .unwrap_or_else(|| " at the top level".to_owned());
    if allowed.is_empty() {
        return place;
    }
    format!("{place}; allowed: {}", allowed.join(", "))
}

/// Values given on the command line (already validated by clap with the
/// same parsers).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub proxy_addr: Option<ListenAddr>,
    pub upstream: Option<Upstream>,
    pub listen_port: Option<Port>,
    pub bootstrap_peers: Vec<PeerAddr>,
    pub no_p2p: bool,
    pub default_ttl: Option<Seconds>,
}

/// The environment variables we read, collected through `envy`. Values are
/// parsed one by one afterwards so that each error names its variable.
#[derive(Debug, Default, Deserialize)]
struct RawEnv {
    ghcache_config: Option<String>,
    ghcache_state_dir: Option<String>,
    cache_dir: Option<String>,
    ipfs_accelerate_cache_dir: Option<String>,
    ghcache_log_format: Option<String>,
    ghcache_proxy_addr: Option<String>,
    ghcache_upstream: Option<String>,
    ghcache_cache_enabled: Option<String>,
    ghcache_max_size: Option<String>,
    ghcache_max_entries: Option<String>,
    cache_default_ttl: Option<String>,
    ghcache_persistence: Option<String>,
    ghcache_fleet_trust: Option<String>,
    ghcache_fleet_trust_non_loopback: Option<String>,
    ghcache_peer_trust: Option<String>,
    ghcache_private_network: Option<String>,
    cache_enable_p2p: Option<String>,
    cache_listen_port: Option<String>,
    ghcache_p2p_listen_ip: Option<String>,
    cache_bootstrap_peers: Option<String>,
    ghcache_peer_discovery: Option<String>,
    ghcache_registry_dir: Option<String>,
    ghcache_external_addr: Option<String>,
    external_ip: Option<String>,
    ghcache_peer_deadline_ms: Option<String>,
    ghcache_network_id: Option<String>,
    ghcache_mdns: Option<String>,
    ghcache_dht: Option<String>,
    ghcache_cluster_secret: Option<String>,
    ghcache_cluster_secret_file: Option<String>,
    github_token: Option<String>,
    github_workspace: Option<String>,
    xdg_state_home: Option<String>,
    home: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: Setting<PathBuf>,
    pub log_format: Setting<LogFormat>,
    pub proxy_addr: Setting<ListenAddr>,
    pub upstream: Setting<Upstream>,
    pub cache_enabled: Setting<bool>,
    pub max_size: Setting<ByteSize>,
    pub max_entries: Setting<Count>,
    pub default_ttl: Setting<Seconds>,
    pub persistence: Setting<bool>,
    pub fleet_trust: Setting<bool>,
    /// Acknowledges fleet trust on a proxy address other hosts can reach.
    pub fleet_trust_non_loopback: Setting<bool>,
    pub peer_trust: Setting<PeerTrust>,
    /// Mesh connections over TCP with a pre-shared key derived from the
    /// cluster secret (libp2p pnet): non-members cannot even connect. No QUIC.
    pub private_network: Setting<bool>,
    pub operation_ttls: Setting<BTreeMap<String, Seconds>>,
    pub p2p_enabled: Setting<bool>,
    pub listen_port: Setting<Port>,
    pub listen_ip: Setting<std::net::IpAddr>,
    pub bootstrap_peers: Setting<Vec<PeerAddr>>,
    pub peer_discovery: Setting<bool>,
    pub registry_dir: Setting<PathBuf>,
    pub external_addr: Setting<Option<PeerAddr>>,
    pub peer_deadline: Setting<Duration>,
    pub network_id: Setting<String>,
    pub protocol_version: Setting<String>,
    pub mdns: Setting<bool>,
    pub dht: Setting<bool>,
    pub registry_discovery: Setting<bool>,
    pub bootstrap_discovery: Setting<bool>,
    pub encryption_algorithm: Setting<String>,
    pub cluster_secret: Setting<Option<Secret>>,
    /// Files that were read, as shown in origins.
    pub files: Vec<String>,
    /// Things worth a loud warning (e.g. a cluster secret taken from GITHUB_TOKEN).
    pub warnings: Vec<String>,
}

/// One row of `ghcache config show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownSetting {
    pub key: &'static str,
    pub value: serde_json::Value,
    pub origin: String,
}

/// Where a resolution looks: the environment and the directory to search
/// for `.github/*.yml` from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

impl Sources {
    pub fn from_process() -> Self {
        Sources {
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }
}

const CONFIG_FILE_NAMES: [&str; 2] = ["cache-config.yml", "p2p-config.yml"];

/// Resolves the configuration from all layers.
pub fn load(overrides: &Overrides, sources: &Sources) -> Result<Config, ConfigError> {
    let env: RawEnv = envy::from_iter(
        sources
            .env
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.clone())),
    )
    .map_err(|e| ConfigError::Invalid {
        at: "environment".into(),
        problem: e.to_string(),
    })?;
    let files = read_files(overrides, &env, sources)?;
    Resolver {
        overrides,
        env: &env,
        files: &files,
    }
    .resolve()
}

fn read_files(
    overrides: &Overrides,
    env: &RawEnv,
    sources: &Sources,
) -> Result<Vec<LoadedFile>, ConfigError> {
    let explicit = overrides
        .config_file
        .clone()
        .or_else(|| env.ghcache_config.as_ref().map(PathBuf::from));
    let read = |path: &Path, shown: String| {
        std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })
            .and_then(|text| LoadedFile::parse(shown, text))
    };
    if let Some(path) = explicit {
        let path = if path.is_relative() {
            sources.cwd.join(path)
        } else {
            path
        };
        return Ok(vec![read(&path, path.display().to_string())?]);
    }
    let base = env
        .github_workspace
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| sources.cwd.clone());
    let mut dir = Some(base.as_path());
    while let Some(current) = dir {
        let found: Vec<PathBuf> = CONFIG_FILE_NAMES
            .iter()
            .map(|name| current.join(".github").join(name))
            .filter(|p| p.is_file())
            .collect();
        if !found.is_empty() {
            return found
                .iter()
                .map(|path| {
                    let shown = path
                        .strip_prefix(&base)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| path.display().to_string());
                    read(path, shown)
                })
                .collect();
        }
        if current.join(".git").exists() {
            break;
        }
        dir = current.parent();
    }
    Ok(Vec::new())
}

struct Resolver<'a> {
    overrides: &'a Overrides,
    env: &'a RawEnv,
    files: &'a [LoadedFile],
}

impl Resolver<'_> {
    /// The last file defining a key wins (cache-config, then p2p-config).
    fn file<T: Clone>(
        &self,
        path: &[&str],
        get: impl Fn(&file::FileConfig) -> Option<T>,
    ) -> Option<(T, Origin)> {
        self.files.iter().rev().find_map(|f| {
            get(&f.config).map(|value| {
                (
                    value,
                    Origin::File {
                        path: f.shown_path.clone(),
                        line: f.line_of(path),
                    },
                )
            })
        })
    }

    fn resolve(self) -> Result<Config, ConfigError> {
        let ov = self.overrides;
        let env = self.env;
        let mut warnings = Vec::new();

        let state_dir = layer(
            default_state_dir(env),
            self.file(&["cache", "dir"], |c| c.cache.as_ref()?.dir.clone()),
            first_env_path(&[
                ("GHCACHE_STATE_DIR", &env.ghcache_state_dir),
                ("CACHE_DIR", &env.cache_dir),
                ("IPFS_ACCELERATE_CACHE_DIR", &env.ipfs_accelerate_cache_dir),
            ]),
            flag(&ov.state_dir, "--state-dir"),
        );
        let registry_default = state_dir.value.join("peers");

        let p2p_enabled = layer(
            true,
            self.file(&["p2p", "enabled"], |c| c.p2p.as_ref()?.enabled),
            env_val::<Flag>("CACHE_ENABLE_P2P", &env.cache_enable_p2p)?.map(|(f, o)| (f.0, o)),
            ov.no_p2p.then_some((false, Origin::Flag("--no-p2p"))),
        );

        let encryption_enabled = self.file(&["security", "encryption", "enabled"], |c| {
            c.security.as_ref()?.encryption.as_ref()?.enabled
        });
        if let Some((false, origin)) = encryption_enabled {
            return Err(ConfigError::Invalid {
                at: origin.to_string().trim_start_matches("file ").to_owned(),
                problem: "security.encryption.enabled: false is not supported: ghcache always encrypts what it shares with peers (AES-256-GCM); remove the key, or disable sharing with p2p.enabled: false".into(),
            });
        }
        let encryption_algorithm = layer(
            "aes-256-gcm".to_owned(),
            self.file(&["security", "encryption", "algorithm"], |c| {
                c.security.as_ref()?.encryption.as_ref()?.algorithm.clone()
            }),
            None,
            None,
        );
        if !matches!(
            encryption_algorithm
                .value
                .to_ascii_lowercase()
                .replace(['-', '_'], "")
                .as_str(),
            "aes256gcm"
        ) {
            return Err(ConfigError::Invalid {
                at: encryption_algorithm
                    .origin
                    .to_string()
                    .trim_start_matches("file ")
                    .to_owned(),
                problem: format!(
                    "security.encryption.algorithm {:?} is not supported: the only algorithm is aes-256-gcm",
                    encryption_algorithm.value
                ),
            });
        }

        let cluster_secret = self.cluster_secret(p2p_enabled.value, &mut warnings)?;

        let external_addr = {
            let explicit =
                env_val::<PeerAddr>("GHCACHE_EXTERNAL_ADDR", &env.ghcache_external_addr)?;
            let from_ip = match &env.external_ip {
                Some(ip) => Some((ip_to_multiaddr(ip)?, Origin::Env("EXTERNAL_IP"))),
                None => None,
            };
            let file = self.file(&["p2p", "external_addr"], |c| {
                c.p2p.as_ref()?.external_addr.clone()
            });
            let chosen = explicit.or(from_ip).or(file);
            match chosen {
                Some((addr, origin)) => Setting {
                    value: Some(addr),
                    origin,
                },
                None => Setting {
                    value: None,
                    origin: Origin::Default,
                },
            }
        };

        let bootstrap_peers = {
            let env_peers = match &env.cache_bootstrap_peers {
                Some(text) => Some((
                    parse_peer_list(text).map_err(|problem| ConfigError::Invalid {
                        at: "CACHE_BOOTSTRAP_PEERS (environment)".into(),
                        problem,
                    })?,
                    Origin::Env("CACHE_BOOTSTRAP_PEERS"),
                )),
                None => None,
            };
            let flag_peers = (!ov.bootstrap_peers.is_empty())
                .then(|| (ov.bootstrap_peers.clone(), Origin::Flag("--bootstrap-peer")));
            layer(
                Vec::new(),
                self.file(&["p2p", "bootstrap_peers"], |c| {
                    c.p2p.as_ref()?.bootstrap_peers.clone()
                }),
                env_peers,
                flag_peers,
            )
        };

        let peer_deadline = layer(
            Count(50),
            self.file(&["p2p", "peer_deadline_ms"], |c| {
                c.p2p.as_ref()?.peer_deadline_ms
            }),
            env_val("GHCACHE_PEER_DEADLINE_MS", &env.ghcache_peer_deadline_ms)?,
            None,
        );
        let peer_deadline = Setting {
            value: Duration::from_millis(peer_deadline.value.0),
            origin: peer_deadline.origin,
        };

        let config = Config {
            log_format: layer(
                LogFormat::Text,
                self.file(&["logging", "format"], |c| c.logging.as_ref()?.format),
                env_val("GHCACHE_LOG_FORMAT", &env.ghcache_log_format)?,
                flag(&ov.log_format, "--log-format"),
            ),
            proxy_addr: layer(
                ListenAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 8787))),
                self.file(&["proxy", "addr"], |c| c.proxy.as_ref()?.addr),
                env_val("GHCACHE_PROXY_ADDR", &env.ghcache_proxy_addr)?,
                flag(&ov.proxy_addr, "--proxy-addr"),
            ),
            upstream: layer(
                "https://api.github.com"
                    .parse()
                    .map_err(|problem| ConfigError::Invalid {
                        at: "default upstream".into(),
                        problem,
                    })?,
                self.file(&["proxy", "upstream"], |c| {
                    c.proxy.as_ref()?.upstream.clone()
                }),
                env_val("GHCACHE_UPSTREAM", &env.ghcache_upstream)?,
                flag(&ov.upstream, "--upstream"),
            ),
            cache_enabled: layer(
                true,
                self.file(&["cache", "enabled"], |c| c.cache.as_ref()?.enabled),
                bool_env("GHCACHE_CACHE_ENABLED", &env.ghcache_cache_enabled)?,
                None,
            ),
            max_size: layer(
                ByteSize(1 << 30),
                self.file(&["cache", "max_size"], |c| c.cache.as_ref()?.max_size),
                env_val("GHCACHE_MAX_SIZE", &env.ghcache_max_size)?,
                None,
            ),
            max_entries: layer(
                Count(100_000),
                self.file(&["cache", "max_entries"], |c| c.cache.as_ref()?.max_entries),
                env_val("GHCACHE_MAX_ENTRIES", &env.ghcache_max_entries)?,
                None,
            ),
            default_ttl: layer(
                Seconds(Duration::from_secs(300)),
                self.file(&["cache", "default_ttl"], |c| c.cache.as_ref()?.default_ttl),
                env_val("CACHE_DEFAULT_TTL", &env.cache_default_ttl)?,
                flag(&ov.default_ttl, "--default-ttl"),
            ),
            persistence: layer(
                true,
                self.file(&["cache", "persistence"], |c| c.cache.as_ref()?.persistence),
                bool_env("GHCACHE_PERSISTENCE", &env.ghcache_persistence)?,
                None,
            ),
            fleet_trust: layer(
                false,
                self.file(&["cache", "fleet_trust"], |c| c.cache.as_ref()?.fleet_trust),
                bool_env("GHCACHE_FLEET_TRUST", &env.ghcache_fleet_trust)?,
                None,
            ),
            fleet_trust_non_loopback: layer(
                false,
                self.file(&["cache", "fleet_trust_non_loopback"], |c| {
                    c.cache.as_ref()?.fleet_trust_non_loopback
                }),
                bool_env(
                    "GHCACHE_FLEET_TRUST_NON_LOOPBACK",
                    &env.ghcache_fleet_trust_non_loopback,
                )?,
                None,
            ),
            peer_trust: layer(
                PeerTrust::Verify,
                self.file(&["p2p", "peer_trust"], |c| c.p2p.as_ref()?.peer_trust),
                env_val("GHCACHE_PEER_TRUST", &env.ghcache_peer_trust)?,
                None,
            ),
            private_network: layer(
                false,
                self.file(&["security", "private_network"], |c| {
                    c.security.as_ref()?.private_network
                }),
                bool_env("GHCACHE_PRIVATE_NETWORK", &env.ghcache_private_network)?,
                None,
            ),
            operation_ttls: layer(
                BTreeMap::new(),
                self.file(&["operation_ttls"], |c| c.operation_ttls.clone()),
                None,
                None,
            ),
            listen_port: layer(
                Port(9100),
                self.file(&["p2p", "listen_port"], |c| c.p2p.as_ref()?.listen_port),
                env_val("CACHE_LISTEN_PORT", &env.cache_listen_port)?,
                flag(&ov.listen_port, "--listen-port"),
            ),
            listen_ip: layer(
                std::net::IpAddr::from([0, 0, 0, 0]),
                self.file(&["p2p", "listen_ip"], |c| c.p2p.as_ref()?.listen_ip),
                match &env.ghcache_p2p_listen_ip {
                    Some(text) => Some((
                        text.trim().parse().map_err(|_| ConfigError::Invalid {
                            at: format!("GHCACHE_P2P_LISTEN_IP={} (environment)", text.trim()),
                            problem: "expected an IP address such as 0.0.0.0 or 127.0.0.1".into(),
                        })?,
                        Origin::Env("GHCACHE_P2P_LISTEN_IP"),
                    )),
                    None => None,
                },
                None,
            ),
            peer_discovery: layer(
                true,
                self.file(&["p2p", "peer_discovery"], |c| {
                    c.p2p.as_ref()?.peer_discovery
                }),
                bool_env("GHCACHE_PEER_DISCOVERY", &env.ghcache_peer_discovery)?,
                None,
            ),
            registry_dir: layer(
                registry_default,
                self.file(&["p2p", "registry_dir"], |c| {
                    c.p2p.as_ref()?.registry_dir.clone()
                }),
                first_env_path(&[("GHCACHE_REGISTRY_DIR", &env.ghcache_registry_dir)]),
                None,
            ),
            network_id: layer(
                "ghcache".to_owned(),
                self.file(&["network", "network_id"], |c| {
                    c.network.as_ref()?.network_id.clone()
                }),
                env.ghcache_network_id
                    .clone()
                    .map(|v| (v, Origin::Env("GHCACHE_NETWORK_ID"))),
                None,
            ),
            protocol_version: layer(
                "1.0.0".to_owned(),
                self.file(&["network", "protocol_version"], |c| {
                    c.network.as_ref()?.protocol_version.clone()
                }),
                None,
                None,
            ),
            mdns: layer(
                true,
                self.file(&["discovery", "methods", "mdns"], |c| {
                    c.discovery.as_ref()?.methods.as_ref()?.mdns
                }),
                bool_env("GHCACHE_MDNS", &env.ghcache_mdns)?,
                None,
            ),
            dht: layer(
                true,
                self.file(&["discovery", "methods", "dht"], |c| {
                    c.discovery.as_ref()?.methods.as_ref()?.dht
                }),
                bool_env("GHCACHE_DHT", &env.ghcache_dht)?,
                None,
            ),
            registry_discovery: layer(
                true,
                self.file(&["discovery", "methods", "registry"], |c| {
                    c.discovery.as_ref()?.methods.as_ref()?.registry
                }),
                None,
                None,
            ),
            bootstrap_discovery: layer(
                true,
                self.file(&["discovery", "methods", "bootstrap"], |c| {
                    c.discovery.as_ref()?.methods.as_ref()?.bootstrap
                }),
                None,
                None,
            ),
            state_dir,
            p2p_enabled,
            bootstrap_peers,
            external_addr,
            peer_deadline,
            encryption_algorithm,
            cluster_secret,
            files: self.files.iter().map(|f| f.shown_path.clone()).collect(),
            warnings,
        };
        validate_network_id(&config.network_id)?;
        let mut config = config;
        check_exposure(&mut config)?;
        Ok(config)
    }

    fn cluster_secret(
        &self,
        p2p_enabled: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Setting<Option<Secret>>, ConfigError> {
        let env = self.env;
        let invalid = |at: String| move |problem| ConfigError::Invalid { at, problem };
        if let Some(value) = &env.ghcache_cluster_secret {
            let secret = Secret::new(value).map_err(invalid(
                "GHCACHE_CLUSTER_SECRET=<redacted> (environment)".into(),
            ))?;
            return Ok(Setting {
                value: Some(secret),
                origin: Origin::Env("GHCACHE_CLUSTER_SECRET"),
            });
        }
        let file_path = match &env.ghcache_cluster_secret_file {
            Some(p) => Some((PathBuf::from(p), Origin::Env("GHCACHE_CLUSTER_SECRET_FILE"))),
            None => self.file(&["security", "cluster_secret_file"], |c| {
                c.security.as_ref()?.cluster_secret_file.clone()
            }),
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
        if let Some(token) = env.github_token.as_deref().filter(|_| p2p_enabled)
            && let Ok(secret) = Secret::new(token)
        {
            warnings.push(
                "using GITHUB_TOKEN as the cluster secret (seed compatibility): per-job tokens differ between jobs and rotate, so daemons will stop sharing with each other. Set GHCACHE_CLUSTER_SECRET to one random value for the whole fleet".into(),
            );
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
}

/// A proxy other hosts can reach serves whatever it caches to anyone who
/// reaches it: say so, and refuse fleet trust there (it would hand private
/// bodies to requests with any token) unless the operator acknowledged it.
fn check_exposure(config: &mut Config) -> Result<(), ConfigError> {
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

fn layer<T>(
    default: T,
    file: Option<(T, Origin)>,
    env: Option<(T, Origin)>,
    flag: Option<(T, Origin)>,
) -> Setting<T> {
    let (value, origin) = flag.or(env).or(file).unwrap_or((default, Origin::Default));
    Setting { value, origin }
}

fn flag<T: Clone>(value: &Option<T>, name: &'static str) -> Option<(T, Origin)> {
    value.clone().map(|v| (v, Origin::Flag(name)))
}

fn env_val<T: std::str::FromStr<Err = String>>(
    name: &'static str,
    raw: &Option<String>,
) -> Result<Option<(T, Origin)>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(|v| Some((v, Origin::Env(name))))
            .map_err(|problem| ConfigError::Invalid {
                at: format!(
                    "{name}={} (environment)",
                    values::redact_userinfo(text.trim())
                ),
                problem,
            }),
    }
}

fn bool_env(
    name: &'static str,
    raw: &Option<String>,
) -> Result<Option<(bool, Origin)>, ConfigError> {
    Ok(env_val::<Flag>(name, raw)?.map(|(f, o)| (f.0, o)))
}

fn first_env_path(candidates: &[(&'static str, &Option<String>)]) -> Option<(PathBuf, Origin)> {
    candidates.iter().find_map(|(name, value)| {
        value
            .as_ref()
            .map(|v| (PathBuf::from(v), Origin::Env(name)))
    })
}

fn default_state_dir(env: &RawEnv) -> PathBuf {
    if let Some(xdg) = &env.xdg_state_home {
        return PathBuf::from(xdg).join("ghcache");
    }
    match &env.home {
        Some(home) if home != "/" => PathBuf::from(home).join(".local/state/ghcache"),
        _ => PathBuf::from("/var/lib/ghcache"),
    }
}

fn ip_to_multiaddr(text: &str) -> Result<PeerAddr, ConfigError> {
    let text = text.trim();
    let addr = match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("/ip4/{ip}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("/ip6/{ip}"),
        Err(_) => text.to_owned(),
    };
    addr.parse().map_err(|problem| ConfigError::Invalid {
        at: format!("EXTERNAL_IP={text} (environment)"),
        problem: format!("expected an IP address or a multiaddr: {problem}"),
    })
}

fn validate_network_id(id: &Setting<String>) -> Result<(), ConfigError> {
    let ok = !id.value.is_empty()
        && id.value.len() <= 64
        && id
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        at: format!("network_id {:?} ({})", id.value, id.origin),
        problem: "expected 1-64 characters from A-Z a-z 0-9 - _ .".into(),
    })
}

impl Config {
    /// Every setting with its value (secrets redacted) and origin, in a
    /// stable order.
    pub fn shown(&self) -> Vec<ShownSetting> {
        use serde_json::{Value, json};
        fn row<T>(key: &'static str, s: &Setting<T>, value: Value) -> ShownSetting {
            ShownSetting {
                key,
                value,
                origin: s.origin.to_string(),
            }
        }
        let text = |v: &dyn fmt::Display| Value::String(v.to_string());
        vec![
            row(
                "state_dir",
                &self.state_dir,
                text(&self.state_dir.value.display()),
            ),
            row(
                "logging.format",
                &self.log_format,
                text(&self.log_format.value),
            ),
            row("proxy.addr", &self.proxy_addr, text(&self.proxy_addr.value)),
            row("proxy.upstream", &self.upstream, text(&self.upstream.value)),
            row(
                "cache.enabled",
                &self.cache_enabled,
                json!(self.cache_enabled.value),
            ),
            row("cache.max_size", &self.max_size, text(&self.max_size.value)),
            row(
                "cache.max_entries",
                &self.max_entries,
                json!(self.max_entries.value.0),
            ),
            row(
                "cache.default_ttl",
                &self.default_ttl,
                text(&self.default_ttl.value),
            ),
            row(
                "cache.persistence",
                &self.persistence,
                json!(self.persistence.value),
            ),
            row(
                "cache.fleet_trust",
                &self.fleet_trust,
                json!(self.fleet_trust.value),
            ),
            row(
                "cache.fleet_trust_non_loopback",
                &self.fleet_trust_non_loopback,
                json!(self.fleet_trust_non_loopback.value),
            ),
            row(
                "p2p.peer_trust",
                &self.peer_trust,
                text(&self.peer_trust.value),
            ),
            row(
                "operation_ttls",
                &self.operation_ttls,
                Value::Object(
                    self.operation_ttls
                        .value
                        .iter()
                        .map(|(k, v)| (k.clone(), text(v)))
                        .collect(),
                ),
            ),
            row(
                "p2p.enabled",
                &self.p2p_enabled,
                json!(self.p2p_enabled.value),
            ),
            row(
                "p2p.listen_port",
                &self.listen_port,
                json!(self.listen_port.value.0),
            ),
            row(
                "p2p.listen_ip",
                &self.listen_ip,
                text(&self.listen_ip.value),
            ),
            row(
                "p2p.bootstrap_peers",
                &self.bootstrap_peers,
                Value::Array(self.bootstrap_peers.value.iter().map(|p| text(p)).collect()),
            ),
            row(
                "p2p.peer_discovery",
                &self.peer_discovery,
                json!(self.peer_discovery.value),
            ),
            row(
                "p2p.registry_dir",
                &self.registry_dir,
                text(&self.registry_dir.value.display()),
            ),
            row(
                "p2p.external_addr",
                &self.external_addr,
                self.external_addr
                    .value
                    .as_ref()
                    .map_or(Value::Null, |a| text(a)),
            ),
            row(
                "p2p.peer_deadline_ms",
                &self.peer_deadline,
                json!(self.peer_deadline.value.as_millis() as u64),
            ),
            row(
                "network.network_id",
                &self.network_id,
                text(&self.network_id.value),
            ),
            row(
                "network.protocol_version",
                &self.protocol_version,
                text(&self.protocol_version.value),
            ),
            row("discovery.methods.mdns", &self.mdns, json!(self.mdns.value)),
            row("discovery.methods.dht", &self.dht, json!(self.dht.value)),
            row(
                "discovery.methods.registry",
                &self.registry_discovery,
                json!(self.registry_discovery.value),
            ),
            row(
                "discovery.methods.bootstrap",
                &self.bootstrap_discovery,
                json!(self.bootstrap_discovery.value),
            ),
            row(
                "security.encryption.algorithm",
                &self.encryption_algorithm,
                text(&self.encryption_algorithm.value),
            ),
            row(
                "security.private_network",
                &self.private_network,
                json!(self.private_network.value),
            ),
            row(
                "security.cluster_secret",
                &self.cluster_secret,
                self.cluster_secret
                    .value
                    .as_ref()
                    .map_or(Value::Null, |s| text(s)),
            ),
        ]
    }

    /// `git config --show-origin`-style text: origin, then `key = value`.
    pub fn render_text(&self) -> String {
        let rows = self.shown();
        let width = rows.iter().map(|r| r.origin.len()).max().unwrap_or(0);
        let mut out = String::new();
        for row in rows {
            let value = match &row.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{:width$}  {} = {}\n", row.origin, row.key, value));
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        out
    }

    /// The same as JSON: `{"settings": {key: {value, origin}}, "files", "warnings"}`.
    pub fn render_json(&self) -> serde_json::Value {
        let settings: serde_json::Map<String, serde_json::Value> = self
            .shown()
            .into_iter()
            .map(|r| {
                (
                    r.key.to_owned(),
                    serde_json::json!({"value": r.value, "origin": r.origin}),
                )
            })
            .collect();
        serde_json::json!({"settings": settings, "files": self.files, "warnings": self.warnings})
    }
}
