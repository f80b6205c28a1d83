//! `ghcache config show`: each value as JSON (numbers and booleans as
//! such, everything else as its display text) with its origin.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::Config;
use crate::values::{
    ByteSize, Count, ListenAddr, LogFormat, PeerAddr, PeerTrust, Port, Seconds, Secret, Upstream,
};

/// One row of `ghcache config show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownSetting {
    pub key: &'static str,
    pub value: serde_json::Value,
    pub origin: String,
}

/// How a setting's value appears in `config show`.
pub(crate) trait ShowValue {
    fn show(&self) -> Value;
}

fn text(v: &dyn Display) -> Value {
    Value::String(v.to_string())
}

macro_rules! show_as_text {
    ($($ty:ty),*) => {$(
        impl ShowValue for $ty {
            fn show(&self) -> Value {
                text(self)
            }
        }
    )*};
}
show_as_text!(
    LogFormat, ListenAddr, Upstream, ByteSize, Seconds, PeerTrust, IpAddr, PeerAddr, String, Secret
);

impl ShowValue for bool {
    fn show(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ShowValue for Count {
    fn show(&self) -> Value {
        self.0.into()
    }
}

impl ShowValue for Port {
    fn show(&self) -> Value {
        self.0.into()
    }
}

impl ShowValue for PathBuf {
    fn show(&self) -> Value {
        text(&self.display())
    }
}

/// Durations are declared in milliseconds (`p2p.peer_deadline_ms`).
impl ShowValue for Duration {
    fn show(&self) -> Value {
        (self.as_millis() as u64).into()
    }
}

impl<T: ShowValue> ShowValue for Option<T> {
    fn show(&self) -> Value {
        self.as_ref().map_or(Value::Null, ShowValue::show)
    }
}

impl<T: ShowValue> ShowValue for Vec<T> {
    fn show(&self) -> Value {
        Value::Array(self.iter().map(ShowValue::show).collect())
    }
}

impl<T: ShowValue> ShowValue for BTreeMap<String, T> {
    fn show(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.show())).collect())
    }
}

impl Config {
    /// `git config --show-origin`-style text: origin, then `key = value`.
    pub fn render_text(&self) -> String {
        let rows = self.shown();
        let width = rows.iter().map(|r| r.origin.len()).max().unwrap_or(0);
        let mut out = String::new();
        for row in rows {
            let value = match &row.value {
                Value::String(s) => s.clone(),
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
    pub fn render_json(&self) -> Value {
        let settings: serde_json::Map<String, Value> = self
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
