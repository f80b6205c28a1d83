//! Validated value types. Each parses from text (environment, flags) and
//! deserialises from YAML with the same rule and the same message, so an
//! error reads the same wherever the value came from.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// Implements `Deserialize` for a type from its `FromStr`, accepting YAML
/// strings and (where `$ints`) integers.
macro_rules! deserialize_via_from_str {
    ($ty:ty, $expecting:literal, ints) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    };
}

/// A TCP/UDP port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u64>() {
            Ok(n @ 1..=65535) => Ok(Port(n as u16)),
            _ => Err("port must be 1-65535".to_owned()),
        }
    }
}
deserialize_via_from_str!(Port, "a port number 1-65535", ints);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A size in bytes, written as a number of bytes or with a unit
/// (`500MB`, `1GiB`, `2g`). At least 1 MiB: anything smaller is a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let allowed = "a size such as 1073741824, 500MB, 1GiB or 2G (units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB)";
        let number: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size: expected {allowed}"))?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => return Err(format!("unknown size unit {other:?}: expected {allowed}")),
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!("{text:?} is too large"));
        }
        let bytes = bytes as u64;
        if bytes < 1 << 20 {
            return Err(format!(
                "{text:?} is {bytes} bytes, below the 1 MiB minimum; write the unit, e.g. \"{text}MB\""
            ));
        }
        Ok(ByteSize(bytes))
    }
}
deserialize_via_from_str!(ByteSize, "a size such as 500MB or 1GiB", ints);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A duration in whole seconds: `300`, `300s`, `5m`, `1h`, `1d`, `1w`
/// (`ghcache_core`'s syntax). Zero allowed; at most 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Seconds {
    pub const LIMITS: ghcache_core::DurationLimits = ghcache_core::DurationLimits {
        max: Duration::from_secs(30 * 86_400),
        max_name: "30-day",
        allow_zero: true,
    };
}

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ghcache_core::parse_duration(s, Self::LIMITS)
            .map(Seconds)
            .map_err(|e| e.to_string())
    }
}
deserialize_via_from_str!(Seconds, "a duration such as 300 or 5m", ints);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

/// A count with a lower bound of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Count(n)),
            _ => Err(format!(
                "{:?} is not a whole number of at least 1",
                s.trim()
            )),
        }
    }
}
deserialize_via_from_str!(Count, "a whole number", ints);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A boolean in the spellings people put in environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Flag(true)),
            "false" | "0" | "no" | "off" => Ok(Flag(false)),
            other => Err(format!(
                "{other:?} is not a boolean: expected true/false (also 1/0, yes/no, on/off)"
            )),
        }
    }
}

/// The address the proxy listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim().parse().map(ListenAddr).map_err(|_| {
            format!(
                "{:?} is not a socket address: expected IP:PORT, e.g. 127.0.0.1:8787",
                s.trim()
            )
        })
    }
}
deserialize_via_from_str!(ListenAddr, "an address such as 127.0.0.1:8787");

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The GitHub API base: `https://api.github.com` or a GHES `…/api/v3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream(String);

impl Upstream {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Replaces the `user:password@` part of a URL, so that an error about a
/// URL never repeats a credential.
pub fn redact_userinfo(text: &str) -> String {
    if let Some(scheme_end) = text.find("://") {
        let rest = &text[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{}***@{}", &text[..scheme_end + 3], &rest[at + 1..]);
        }
    }
    text.to_owned()
}

impl FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let raw = s.trim().trim_end_matches('/');
        let shown = redact_userinfo(raw);
        let text = shown.as_str();
        let allowed =
            "an http(s) base URL such as https://api.github.com or https://ghe.example.com/api/v3";
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or_else(|| format!("{text:?} is not {allowed}"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || rest.contains(['?', '#', ' ']) || host.contains('@') {
            return Err(format!("{text:?} is not {allowed}"));
        }
        Ok(Upstream(raw.to_owned()))
    }
}
deserialize_via_from_str!(Upstream, "a base URL such as https://api.github.com");

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "{other:?} is not a log format: expected text or json"
            )),
        }
    }
}
deserialize_via_from_str!(LogFormat, "text or json");

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Whether a mesh member's copy may be served before GitHub confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTrust {
    /// Only after a free `304` for the requester's own token (the default).
    Verify,
    /// On the member's word: peer-hit latency, trusting every member.
    Members,
}

impl FromStr for PeerTrust {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "verify" => Ok(PeerTrust::Verify),
            "members" => Ok(PeerTrust::Members),
            other => Err(format!(
                "{other:?} is not a peer trust policy: expected verify (GitHub confirms every peer copy with a free 304) or members (serve members' copies on their word)"
            )),
        }
    }
}
deserialize_via_from_str!(PeerTrust, "verify or members");

impl fmt::Display for PeerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerTrust::Verify => "verify",
            PeerTrust::Members => "members",
        })
    }
}

/// A libp2p multiaddr, validated by the `multiaddr` crate libp2p uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr(pub multiaddr::Multiaddr);

impl FromStr for PeerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        text.parse().map(PeerAddr).map_err(|e| {
            format!(
                "{text:?} is not a multiaddr ({e}): expected e.g. /ip4/10.0.0.5/tcp/9100/p2p/12D3KooW…"
            )
        })
    }
}
deserialize_via_from_str!(PeerAddr, "a multiaddr such as /ip4/10.0.0.5/tcp/9100");

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parses a comma-separated multiaddr list, naming the offending item.
pub fn parse_peer_list(text: &str) -> Result<Vec<PeerAddr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .enumerate()
        .map(|(i, item)| item.parse().map_err(|e| format!("item {} {e}", i + 1)))
        .collect()
}

/// Parses a value written as text (environment variables, declared
/// defaults) with the same rule its YAML form uses.
pub trait FromText: Sized {
    /// Whether an error may repeat the text: lists name their bad item
    /// instead, and secrets never print.
    const ECHO: bool = true;
    fn from_text(text: &str) -> Result<Self, String>;
}

macro_rules! from_text_via_from_str {
    ($($ty:ty),*) => {$(
        impl FromText for $ty {
            fn from_text(text: &str) -> Result<Self, String> {
                text.parse()
            }
        }
    )*};
}
from_text_via_from_str!(
    Port, ByteSize, Seconds, Count, ListenAddr, Upstream, LogFormat, PeerTrust, PeerAddr,
    NetworkId, Algorithm
);

impl FromText for bool {
    fn from_text(text: &str) -> Result<Self, String> {
        text.parse::<Flag>().map(|f| f.0)
    }
}

impl FromText for std::path::PathBuf {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.into())
    }
}

impl FromText for std::net::IpAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "expected an IP address such as 0.0.0.0 or 127.0.0.1".to_owned())
    }
}

impl FromText for Vec<PeerAddr> {
    const ECHO: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        parse_peer_list(text)
    }
}

/// The one rule for network ids. They name the gossip topic, registry
/// records and key derivation salt, so they stay short and path-safe.
pub use ghcache_core::validate_network_id;

/// A network id that passed [`validate_network_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkId(pub String);

impl FromStr for NetworkId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        validate_network_id(s).map(|()| NetworkId(s.to_owned()))
    }
}
deserialize_via_from_str!(NetworkId, "a network id such as ghcache");

/// The sharing cipher, as written; AES-256-GCM is the only one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Algorithm(pub String);

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let normalised = s.to_ascii_lowercase().replace(['-', '_'], "");
        if normalised == "aes256gcm" {
            return Ok(Algorithm(s.to_owned()));
        }
        Err(format!(
            "{s:?} is not supported: the only algorithm is aes-256-gcm"
        ))
    }
}
deserialize_via_from_str!(Algorithm, "aes-256-gcm");

/// `security.encryption.enabled`: accepted for the seed's files, but only
/// as `true`, because sharing is always encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlwaysEncrypted;

impl<'de> Deserialize<'de> for AlwaysEncrypted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            return Ok(AlwaysEncrypted);
        }
        Err(de::Error::custom(
            "false is not supported: ghcache always encrypts what it shares with peers (AES-256-GCM); remove the key, or disable sharing with p2p.enabled: false",
        ))
    }
}

/// A secret that never prints, zeroed when dropped (`secrecy`).
pub struct Secret(secrecy::SecretString);

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret(self.expose().to_owned().into())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl Secret {
    pub const MIN_LEN: usize = 16;

    pub fn new(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.len() < Self::MIN_LEN {
            return Err(format!(
                "the cluster secret is {} bytes; use at least {} (e.g. `openssl rand -hex 32`)",
                value.len(),
                Self::MIN_LEN
            ));
        }
        Ok(Secret(value.to_owned().into()))
    }

    /// The secret itself; call only where it is used, never to print.
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!("9100".parse::<Port>(), Ok(Port(9100)));
        assert_eq!("70000".parse::<Port>().unwrap_err(), "port must be 1-65535");
        assert!("0".parse::<Port>().is_err());
        assert!("abc".parse::<Port>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!("1GiB".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("500MB".parse::<ByteSize>(), Ok(ByteSize(500_000_000)));
        assert_eq!("2g".parse::<ByteSize>(), Ok(ByteSize(2_000_000_000)));
        assert!(
            "1000"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("1 MiB minimum")
        );
        assert!(
            "5 parsecs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
    }

    #[test]
    fn durations() {
        assert_eq!(
            "300".parse::<Seconds>(),
            Ok(Seconds(Duration::from_secs(300)))
        );
        assert_eq!(
            "5m".parse::<Seconds>(),
            Ok(Seconds(Duration::from_secs(300)))
        );
        assert!("5 minutes".parse::<Seconds>().is_err());
        assert!("90d".parse::<Seconds>().unwrap_err().contains("30-day"));
    }

    #[test]
    fn peer_lists_name_the_bad_item() {
        let err = parse_peer_list("/ip4/10.0.0.1/tcp/9100, /ip4/999.1.1.1/tcp/1").unwrap_err();
        assert!(err.starts_with("item 2 \"/ip4/999.1.1.1/tcp/1\""), "{err}");
        assert_eq!(parse_peer_list(" , ").unwrap(), vec![]);
    }

    #[test]
    fn upstreams() {
        assert!(
            "https://ghe.example.com/api/v3/"
                .parse::<Upstream>()
                .is_ok()
        );
        assert!("ftp://x".parse::<Upstream>().is_err());
        let err = "https://user:hunter2@x".parse::<Upstream>().unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("0123456789abcdef0123").unwrap();
        assert!(!format!("{s:?} {s}").contains("0123"));
        assert!(Secret::new("short").unwrap_err().contains("at least 16"));
    }
}
