//! The shape of a setting declaration and the `settings!` macro that turns
//! the one list in `settings.rs` into the `Config` struct, its layered
//! resolution, the `config show` rows and the [`SETTINGS`] table that the
//! YAML schema and the README check read.

use serde::de::DeserializeOwned;

/// Validates a YAML value with a setting's type; the error says why not.
pub(crate) type CheckYaml = fn(&serde_yaml::Value) -> Result<(), String>;

/// What is known about one setting, for documentation and the YAML schema.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// The README's name for it ("state directory").
    pub label: &'static str,
    /// The dotted YAML key, or "" when no file sets it.
    pub key: &'static str,
    /// The key `config show` prints, or "" when it has no row.
    pub shown: &'static str,
    /// Environment variables, highest precedence first.
    pub env: &'static [&'static str],
    /// The command-line flag, or "".
    pub flag: &'static str,
    /// The default as the README writes it.
    pub default: &'static str,
    /// What it means (the declaration's doc comment).
    pub doc: &'static str,
    /// Validates a YAML value for `key` with the setting's own type.
    pub(crate) check: Option<CheckYaml>,
}

/// YAML keys still accepted but ignored, each with why (shown as a warning).
pub const DEPRECATED: &[(&str, &str)] = &[(
    "network.protocol_version",
    "it never had an effect: the mesh's protocol versions are built in (e.g. /ghcache/id/1.0.0)",
)];

/// The declared setting with this YAML key.
pub fn setting(key: &str) -> Option<&'static SettingInfo> {
    crate::SETTINGS
        .iter()
        .find(|s| !s.key.is_empty() && s.key == key)
}

pub(crate) fn check<T: DeserializeOwned>(value: &serde_yaml::Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

/// The first of its arguments: an optional override, then the fallback.
macro_rules! first_of {
    ($a:expr $(, $rest:expr)*) => {
        $a
    };
}

/// The type a setting is read as: its own, or the one after `as`.
macro_rules! read_type {
    ($ty:ty) => {
        $ty
    };
    ($ty:ty, $read:ty) => {
        $read
    };
}

/// The environment layer; file-only settings need no text form.
macro_rules! env_layer {
    ($cx:ident, []) => {
        None
    };
    ($cx:ident, [$($env:literal),+]) => {
        $cx.env_value(&[$($env),+])?
    };
}

/// One ordinary setting: default < file < environment < flag.
macro_rules! layered {
    ($cx:ident, $key:literal, [$($env:literal),*], [$($flag:literal => $fexpr:expr)?],
     [$dtext:literal $(=> $dexpr:expr)?]) => {
        $crate::resolve::layer(
            first_of!($($dexpr,)? $cx.default_from_text($key, $dtext)?),
            $cx.file($key)?,
            env_layer!($cx, [$($env),*]),
            None $(.or(($fexpr).map(|v| (v, $crate::Origin::Flag($flag)))))?,
        )
    };
}

/// Declares the settings; see `settings.rs`. Each entry is
///
/// ```text
/// /// meaning (README)
/// field: Type {
///     label: "README name",
///     key: "yaml.key" [as ReadType [=> conversion]],
///     [shown: "config show key",]
///     env: ["VAR", "FALLBACK_VAR"],
///     [flag: "--flag" => Option<ReadType> expression,]
///     default: "README default" [=> expression when the text is not the value],
///     [resolve: |info| hand-written resolution,]
/// }
/// ```
///
/// Expressions see the resolver as the name given first and every setting
/// declared above them by field name.
macro_rules! settings {
    (
        $cx:ident;
        $(
            $(#[doc = $doc:literal])*
            $field:ident: $ty:ty {
                label: $label:literal,
                key: $key:literal $(as $read:ty $(=> $conv:expr)?)?,
                $(shown: $shown:literal,)?
                env: [$($env:literal),* $(,)?],
                $(flag: $flag:literal => $fexpr:expr,)?
                default: $dtext:literal $(=> $dexpr:expr)?,
                $(resolve: $custom:expr,)?
            }
        )*
        @extra [$($extra:expr),* $(,)?]
    ) => {
        /// The effective configuration.
        #[derive(Debug, Clone)]
        pub struct Config {
            $($(#[doc = $doc])* pub $field: $crate::Setting<$ty>,)*
            /// Files that were read, as shown in origins.
            pub files: Vec<String>,
            /// Things worth a loud warning (e.g. a cluster secret taken from GITHUB_TOKEN).
            pub warnings: Vec<String>,
        }

        /// Every setting, in `config show` order, then those without a row.
        pub static SETTINGS: &[$crate::SettingInfo] = &[
            $($crate::SettingInfo {
                label: $label,
                key: $key,
                shown: first_of!($($shown,)? $key),
                env: &[$($env),*],
                flag: first_of!($($flag,)? ""),
                default: $dtext,
                doc: concat!($($doc, "\n",)*),
                check: Some($crate::schema::check::<read_type!($ty $(, $read)?)>),
            },)*
            $($extra,)*
        ];

        impl Config {
            /// Resolves every declared setting, in declaration order.
            pub(crate) fn resolve_fields(
                $cx: &$crate::resolve::Resolver<'_>,
            ) -> Result<Self, $crate::ConfigError> {
                $(
                    let $field: $crate::Setting<$ty> = first_of!(
                        $($crate::resolve::custom(
                            $crate::schema::setting($key),
                            $custom,
                        )?,)?
                        {
                            let read: $crate::Setting<read_type!($ty $(, $read)?)> = layered!(
                                $cx, $key, [$($env),*], [$($flag => $fexpr)?],
                                [$dtext $(=> $dexpr)?]
                            );
                            $($(let read = $crate::Setting {
                                value: ($conv)(read.value),
                                origin: read.origin,
                            };)?)?
                            read
                        }
                    );
                )*
                Ok(Config {
                    $($field,)*
                    files: $cx.file_names(),
                    warnings: $cx.take_warnings(),
                })
            }

            /// Every setting with its value (secrets redacted) and origin, in
            /// a stable order.
            pub fn shown(&self) -> Vec<$crate::ShownSetting> {
                vec![$($crate::ShownSetting {
                    key: first_of!($($shown,)? $key),
                    value: $crate::show::ShowValue::show(&self.$field.value),
                    origin: self.$field.origin.to_string(),
                },)*]
            }
        }
    };
}
