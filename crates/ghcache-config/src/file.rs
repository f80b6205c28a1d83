//! The YAML files: `.github/cache-config.yml` and `.github/p2p-config.yml`
//! (the seed's shapes), or one file given with `--config`. Both files share
//! one schema, the declared keys of [`crate::SETTINGS`]: unknown keys are
//! errors with a suggestion, and every value is checked with its setting's
//! type when the file is read.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::schema::{DEPRECATED, setting};
use crate::{ConfigError, SETTINGS};

/// A deprecated key found in a file.
#[derive(Debug)]
pub(crate) struct Deprecated {
    pub key: &'static str,
    pub reason: &'static str,
    pub line: Option<usize>,
}

/// A parsed file with its text kept for locating keys.
#[derive(Debug)]
pub(crate) struct LoadedFile {
    pub shown_path: String,
    pub text: String,
    pub value: Value,
    pub deprecated: Vec<Deprecated>,
}

impl LoadedFile {
    pub fn parse(shown_path: String, text: String) -> Result<Self, ConfigError> {
        let is_empty = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
        let value = if is_empty {
            Value::Null
        } else {
            serde_yaml::from_str(&text).map_err(|e| yaml_error(&shown_path, &e))?
        };
        let mut file = LoadedFile {
            shown_path,
            text,
            value: Value::Null,
            deprecated: Vec::new(),
        };
        match &value {
            Value::Null => {}
            Value::Mapping(map) => file.check_section(map, &[])?,
            _ => return Err(file.error(&[], "expected a mapping of sections and keys".into())),
        }
        file.value = value;
        Ok(file)
    }

    /// The value at a dotted key, unless absent or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        key.split('.')
            .try_fold(&self.value, |v, part| v.as_mapping()?.get(part))
            .filter(|v| !v.is_null())
    }

    /// The value at a dotted key as the setting's type.
    pub fn value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let path: Vec<&str> = key.split('.').collect();
        self.get(key)
            .map(|v| T::deserialize(v).map_err(|e| self.error(&path, format!("{key}: {e}"))))
            .transpose()
    }

    /// The 1-based line of a dotted key such as `cache.default_ttl`.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        locate_key(&self.text, &key.split('.').collect::<Vec<_>>())
    }

    fn error(&self, path: &[&str], message: String) -> ConfigError {
        ConfigError::File {
            file: self.shown_path.clone(),
            line: locate_key(&self.text, path),
            message,
        }
    }

    /// Walks a mapping in document order, so the first problem reported is
    /// the first in the file.
    fn check_section(&mut self, map: &Mapping, section: &[&str]) -> Result<(), ConfigError> {
        for (name, value) in map {
            let name = match name {
                Value::String(s) => s.as_str(),
                other => return Err(self.unknown(section, &yaml_text(other))),
            };
            let path: Vec<&str> = section.iter().copied().chain([name]).collect();
            let key = path.join(".");
            if let Some(info) = setting(&key) {
                if let (Some(check), false) = (info.check, value.is_null()) {
                    check(value).map_err(|e| self.error(&path, format!("{key}: {e}")))?;
                }
            } else if let Some(&(key, reason)) = DEPRECATED.iter().find(|(k, _)| *k == key) {
                let line = locate_key(&self.text, &path);
                self.deprecated.push(Deprecated { key, reason, line });
            } else if children(&path).is_empty() {
                return Err(self.unknown(section, name));
            } else {
                match value {
                    Value::Null => {}
                    Value::Mapping(inner) => self.check_section(inner, &path)?,
                    _ => {
                        let message = format!(
                            "{key}: expected a mapping with {}",
                            children(&path).join(", ")
                        );
                        return Err(self.error(&path, message));
                    }
                }
            }
        }
        Ok(())
    }

    fn unknown(&self, section: &[&str], key: &str) -> ConfigError {
        let path: Vec<&str> = section.iter().copied().chain([key]).collect();
        let line = locate_key(&self.text, &path).or_else(|| {
            self.text
                .lines()
                .position(|l| l.contains(key))
                .map(|i| i + 1)
        });
        let allowed = children(section);
        let suggestion = allowed
            .iter()
            .map(|candidate| (strsim::jaro_winkler(key, candidate), candidate))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c.clone());
        ConfigError::UnknownKey(Box::new(crate::UnknownKey {
            file: self.shown_path.clone(),
            line: line.unwrap_or(0),
            key: key.to_owned(),
            section: (!section.is_empty()).then(|| section.join(".")),
            suggestion,
            allowed,
        }))
    }
}

/// The names allowed directly under a section, in declaration order.
fn children(section: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for info in SETTINGS.iter().filter(|s| !s.key.is_empty()) {
        let parts: Vec<&str> = info.key.split('.').collect();
        if parts.len() > section.len()
            && parts[..section.len()] == *section
            && !names.iter().any(|n| n == parts[section.len()])
        {
            names.push(parts[section.len()].to_owned());
        }
    }
    names
}

fn yaml_text(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| format!("{value:?}"))
}

fn yaml_error(file: &str, err: &serde_yaml::Error) -> ConfigError {
    let line = err.location().map(|l| l.line());
    let mut message = err.to_string();
    if let Some(at) = message.find(" at line ") {
        message.truncate(at);
    }
    ConfigError::File {
        file: file.to_owned(),
        line,
        message,
    }
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
