//! The YAML files: `.github/cache-config.yml` and `.github/p2p-config.yml`
//! (the seed's shapes), or one file given with `--config`. Both files share
//! one schema; unknown keys are errors with a suggestion.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ConfigError;
use crate::values::{
    ByteSize, Count, ListenAddr, LogFormat, PeerAddr, PeerTrust, Port, Seconds, Upstream,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub cache: Option<CacheSection>,
    pub p2p: Option<P2pSection>,
    pub operation_ttls: Option<BTreeMap<String, Seconds>>,
    pub network: Option<NetworkSection>,
    pub discovery: Option<DiscoverySection>,
    pub security: Option<SecuritySection>,
    pub proxy: Option<ProxySection>,
    pub logging: Option<LoggingSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheSection {
    pub enabled: Option<bool>,
    pub max_size: Option<ByteSize>,
    pub max_entries: Option<Count>,
    pub default_ttl: Option<Seconds>,
    pub persistence: Option<bool>,
    pub dir: Option<PathBuf>,
    pub fleet_trust: Option<bool>,
    pub fleet_trust_non_loopback: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct P2pSection {
    pub enabled: Option<bool>,
    pub listen_port: Option<Port>,
    pub listen_ip: Option<std::net::IpAddr>,
    pub peer_discovery: Option<bool>,
    pub bootstrap_peers: Option<Vec<PeerAddr>>,
    pub registry_dir: Option<PathBuf>,
    pub external_addr: Option<PeerAddr>,
    pub peer_deadline_ms: Option<Count>,
    pub peer_trust: Option<PeerTrust>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    pub protocol_version: Option<String>,
    pub network_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscoverySection {
    pub methods: Option<MethodsSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MethodsSection {
    pub mdns: Option<bool>,
    pub dht: Option<bool>,
    pub registry: Option<bool>,
    pub bootstrap: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecuritySection {
    pub encryption: Option<EncryptionSection>,
    pub cluster_secret_file: Option<PathBuf>,
    pub private_network: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptionSection {
    pub enabled: Option<bool>,
    pub algorithm: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySection {
    pub addr: Option<ListenAddr>,
    pub upstream: Option<Upstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoggingSection {
    pub format: Option<LogFormat>,
}

/// A parsed file with its text kept for locating keys.
#[derive(Debug)]
pub(crate) struct LoadedFile {
    pub shown_path: String,
    pub text: String,
    pub config: FileConfig,
}

impl LoadedFile {
    pub fn parse(shown_path: String, text: String) -> Result<Self, ConfigError> {
        let is_empty = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
        let config = if is_empty {
            FileConfig::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| yaml_error(&shown_path, &text, &e))?
        };
        Ok(LoadedFile {
            shown_path,
            text,
            config,
        })
    }

    /// The 1-based line of a key path such as `["cache", "default_ttl"]`.
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        locate_key(&self.text, path)
    }
}

fn yaml_error(file: &str, text: &str, err: &serde_yaml::Error) -> ConfigError {
    let line = err.location().map(|l| l.line());
    let mut message = err.to_string();
    if let Some(at) = message.find(" at line ") {
        message.truncate(at);
    }
    if let Some(unknown) = parse_unknown_field(&message) {
        let line = line.or_else(|| {
            text.lines()
                .position(|l| l.contains(&unknown.key))
                .map(|i| i + 1)
        });
        let suggestion = unknown
            .allowed
            .iter()
            .map(|candidate| (strsim::jaro_winkler(&unknown.key, candidate), candidate))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c.clone());
        return ConfigError::UnknownKey(Box::new(crate::UnknownKey {
            file: file.to_owned(),
            line: line.unwrap_or(0),
            key: unknown.key,
            section: unknown.section,
            suggestion,
            allowed: unknown.allowed,
        }));
    }
    ConfigError::File {
        file: file.to_owned(),
        line,
        message,
    }
}

struct UnknownField {
    key: String,
    section: Option<String>,
    allowed: Vec<String>,
}

/// Reads serde's "`sec: unknown field `x`, expected one of `a`, `b`" message.
fn parse_unknown_field(message: &str) -> Option<UnknownField> {
    let at = message.find("unknown field `")?;
    let section = message[..at]
        .trim_end()
        .strip_suffix(':')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let rest = &message[at + "unknown field `".len()..];
    let end = rest.find('`')?;
    let key = rest[..end].to_owned();
    let allowed = rest[end + 1..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some(UnknownField {
        key,
        section,
        allowed,
    })
}

/// Finds a block-style key path by indentation; good enough for config
/// files written by hand, and only used to show origins.
pub(crate) fn locate_key(text: &str, path: &[&str]) -> Option<usize> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let Some(colon) = content.find(':') else {
            continue;
        };
        let key = content[..colon].trim().trim_matches(['"', '\'']).to_owned();
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        if stack.len() == path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p) {
            return Some(index + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys() {
        let text = "# c\ncache:\n  enabled: true\n  default_ttl: 60\np2p:\n  listen_port: 9\n";
        assert_eq!(locate_key(text, &["cache", "default_ttl"]), Some(4));
        assert_eq!(locate_key(text, &["p2p", "listen_port"]), Some(6));
        assert_eq!(locate_key(text, &["p2p", "enabled"]), None);
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        let text = "cache:\n  defualt_ttl: 60\n";
        let err = LoadedFile::parse("x.yml".into(), text.into()).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "x.yml:2: unknown key \"defualt_ttl\" (did you mean \"default_ttl\"?)"
            ),
            "{shown}"
        );
    }

    #[test]
    fn empty_and_comment_only_files_are_fine() {
        assert!(LoadedFile::parse("x".into(), "# nothing\n---\n".into()).is_ok());
    }
}
