//! Layered resolution: each setting takes the value of the highest layer
//! that sets it (flag > environment > file > default) and remembers which.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::de::DeserializeOwned;

use crate::file::LoadedFile;
use crate::values::{FromText, redact_userinfo};
use crate::{ConfigError, Origin, Overrides, Setting, SettingInfo};

/// The environment, with empty values dropped (they count as unset).
#[derive(Debug, Default)]
pub(crate) struct Env(HashMap<String, String>);

impl Env {
    /// Read through `envy` (the project's environment reader): names match
    /// case-insensitively (it lower-cases them).
    pub fn new(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let map: HashMap<String, String> = envy::from_iter(
            vars.iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k.clone(), v.clone())),
        )
        .map_err(|e| ConfigError::Invalid {
            at: "environment".into(),
            problem: e.to_string(),
        })?;
        Ok(Env(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

#[derive(Debug)]
pub(crate) struct Resolver<'a> {
    pub overrides: &'a Overrides,
    pub env: &'a Env,
    pub files: &'a [LoadedFile],
    pub warnings: RefCell<Vec<String>>,
}

impl Resolver<'_> {
    /// The last file defining a key wins (cache-config, then p2p-config).
    pub fn file<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, Origin)>, ConfigError> {
        let Some(file) = self.files.iter().rev().find(|f| f.get(key).is_some()) else {
            return Ok(None);
        };
        file.value(key).map(|value| {
            value.map(|v| {
                let origin = Origin::File {
                    path: file.shown_path.clone(),
                    line: file.line_of(key),
                };
                (v, origin)
            })
        })
    }

    /// The first of `names` that is set, parsed; an error names the variable.
    pub fn env_value<T: FromText>(
        &self,
        names: &[&'static str],
    ) -> Result<Option<(T, Origin)>, ConfigError> {
        let Some((name, text)) = names
            .iter()
            .find_map(|name| Some((*name, self.env.get(name)?)))
        else {
            return Ok(None);
        };
        T::from_text(text)
            .map(|v| Some((v, Origin::Env(name))))
            .map_err(|problem| ConfigError::Invalid {
                at: if T::ECHO {
                    format!("{name}={} (environment)", redact_userinfo(text.trim()))
                } else {
                    format!("{name} (environment)")
                },
                problem,
            })
    }

    /// A declared default written as text; failing is a bug in the
    /// declaration, which the crate's tests catch.
    pub fn default_from_text<T: FromText>(&self, key: &str, text: &str) -> Result<T, ConfigError> {
        T::from_text(text).map_err(|problem| ConfigError::Invalid {
            at: format!("default {key}"),
            problem,
        })
    }

    pub fn warn(&self, warning: String) {
        self.warnings.borrow_mut().push(warning);
    }

    pub fn file_names(&self) -> Vec<String> {
        self.files.iter().map(|f| f.shown_path.clone()).collect()
    }

    /// Warnings so far, then one for each deprecated key the files used.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut warnings = self.warnings.take();
        for file in self.files {
            warnings.extend(file.deprecated.iter().map(|d| {
                let line = d.line.map(|l| format!(":{l}")).unwrap_or_default();
                format!(
                    "{}{line}: {} is ignored: {}; remove it",
                    file.shown_path, d.key, d.reason
                )
            }));
        }
        warnings
    }
}

pub(crate) fn layer<T>(
    default: T,
    file: Option<(T, Origin)>,
    env: Option<(T, Origin)>,
    flag: Option<(T, Origin)>,
) -> Setting<T> {
    let (value, origin) = flag.or(env).or(file).unwrap_or((default, Origin::Default));
    Setting { value, origin }
}

/// Runs a hand-written resolution with its declaration.
pub(crate) fn custom<T>(
    info: Option<&'static SettingInfo>,
    resolve: impl FnOnce(&'static SettingInfo) -> Result<Setting<T>, ConfigError>,
) -> Result<Setting<T>, ConfigError> {
    let info = info.ok_or_else(|| ConfigError::Invalid {
        at: "settings".into(),
        problem: "a hand-resolved setting has no declaration".into(),
    })?;
    resolve(info)
}
