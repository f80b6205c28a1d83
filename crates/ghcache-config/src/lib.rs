//! ghcache's one configuration model.
//!
//! Every setting is resolved from four layers, highest first: command-line
//! flags, environment, YAML file, defaults. Each resolved value remembers
//! where it came from ([`Origin`]) so `ghcache config show` can say so, and
//! every bad value is reported with its source and what is allowed.
//!
//! Each setting is declared once, in `settings.rs`; [`SETTINGS`] lists
//! them for documentation and the YAML schema.
//!
//! It is also the one owner of the YAML crate ([`parse_yaml`]), so that
//! crate can be swapped in one place.
//!
//! This crate only reads and validates; it starts nothing, opens no sockets
//! and never prints a secret (they are [`Secret`]s, redacted everywhere).

#[macro_use]
mod schema;
mod file;
mod resolve;
mod settings;
mod show;
mod special;
mod values;

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use file::LoadedFile;
use resolve::{Env, Resolver};
pub use schema::{DEPRECATED, SettingInfo};
pub use settings::{Config, SETTINGS};
pub use show::ShownSetting;
pub use values::{
    ByteSize, Count, Flag, FromText, ListenAddr, LogFormat, NetworkId, PeerAddr, PeerTrust, Port,
    Seconds, Secret, Upstream, parse_peer_list, validate_network_id,
};

/// YAML that is not ghcache's own configuration (a CodeQL configuration
/// file), parsed into `T`.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, YamlError> {
    serde_yaml::from_slice(bytes).map_err(YamlError)
}

/// Why [`parse_yaml`] refused a document: the parser's message, with line
/// and column when it has them.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct YamlError(serde_yaml::Error);

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

/// Names the one YAML file to read instead of discovering them.
const CONFIG_ENV: &str = "GHCACHE_CONFIG";

const CONFIG_FILE_NAMES: [&str; 2] = ["cache-config.yml", "p2p-config.yml"];

/// Resolves the configuration from all layers.
pub fn load(overrides: &Overrides, sources: &Sources) -> Result<Config, ConfigError> {
    let env = Env::new(&sources.env)?;
    let files = read_files(overrides, &env, sources)?;
    let resolver = Resolver {
        overrides,
        env: &env,
        files: &files,
        warnings: RefCell::new(Vec::new()),
    };
    let mut config = Config::resolve_fields(&resolver)?;
    special::check_exposure(&mut config)?;
    Ok(config)
}

fn read_files(
    overrides: &Overrides,
    env: &Env,
    sources: &Sources,
) -> Result<Vec<LoadedFile>, ConfigError> {
    let explicit = overrides
        .config_file
        .clone()
        .or_else(|| env.get(CONFIG_ENV).map(PathBuf::from));
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
        .get("GITHUB_WORKSPACE")
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
