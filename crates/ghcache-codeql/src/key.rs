//! The analysis key: SHA-256 over a canonical form of everything that
//! decides what a CodeQL analysis finds.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::inputs::Inputs;

/// Identifies one analysis: same key, same inputs, same findings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnalysisKey([u8; 32]);

/// The canonical form hashed into the key. Field order is fixed by the
/// struct; every list is normalised by [`crate::RawInputs::validate`].
#[derive(Serialize)]
struct Canonical<'a> {
    format: u32,
    repository: &'a str,
    tree: &'a str,
    languages: Vec<&'static str>,
    queries: &'a str,
    config_file: Option<&'a str>,
    config_sha256: Option<String>,
    codeql_version: &'a str,
    build_mode: &'static str,
    category: &'a str,
}

impl AnalysisKey {
    /// The key of `inputs` analysed on the tree `tree` (hex object id).
    pub fn compute(inputs: &Inputs, tree: &str) -> AnalysisKey {
        let canonical = Canonical {
            format: 1,
            repository: &inputs.repository,
            tree,
            languages: inputs.languages.iter().map(|l| l.as_str()).collect(),
            queries: &inputs.queries,
            config_file: inputs.config_file.as_deref(),
            config_sha256: inputs
                .config_contents
                .as_ref()
                .map(|c| hex::encode(Sha256::digest(c))),
            codeql_version: &inputs.codeql_version,
            build_mode: inputs.build_mode.as_str(),
            category: &inputs.category,
        };
        // Serialising a struct of strings cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        AnalysisKey(Sha256::digest(&bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for AnalysisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for AnalysisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnalysisKey({})", self.to_hex())
    }
}

impl FromStr for AnalysisKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|e| format!("analysis key `{s}`: {e}"))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("analysis key `{s}`: not 32 bytes"))?;
        Ok(AnalysisKey(array))
    }
}

impl serde::Serialize for AnalysisKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for AnalysisKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawInputs;

    fn inputs(edit: impl FnOnce(&mut RawInputs)) -> Inputs {
        let mut raw = RawInputs {
            repository: "o/r".into(),
            languages: "python".into(),
            codeql_version: "2.19.0".into(),
            ..RawInputs::default()
        };
        edit(&mut raw);
        raw.validate().expect("valid")
    }

    #[test]
    fn every_input_changes_the_key() {
        let tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        let base = AnalysisKey::compute(&inputs(|_| {}), tree);
        let variants = [
            AnalysisKey::compute(&inputs(|_| {}), "0000000000000000000000000000000000000000"),
            AnalysisKey::compute(&inputs(|r| r.repository = "o/other".into()), tree),
            AnalysisKey::compute(&inputs(|r| r.languages = "python,go".into()), tree),
            AnalysisKey::compute(&inputs(|r| r.queries = "security-extended".into()), tree),
            AnalysisKey::compute(
                &inputs(|r| {
                    r.config_file = "c.yml".into();
                    r.config_contents = Some(b"a".to_vec());
                }),
                tree,
            ),
            AnalysisKey::compute(&inputs(|r| r.codeql_version = "2.19.1".into()), tree),
            AnalysisKey::compute(&inputs(|r| r.build_mode = "none".into()), tree),
            AnalysisKey::compute(&inputs(|r| r.category = "/language:python".into()), tree),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
        // Order and aliases of languages do not matter.
        assert_eq!(
            AnalysisKey::compute(&inputs(|r| r.languages = "go, python".into()), tree),
            AnalysisKey::compute(&inputs(|r| r.languages = "python\ngo".into()), tree),
        );
    }

    #[test]
    fn round_trips_through_hex() {
        let key = AnalysisKey::compute(&inputs(|_| {}), "ab");
        assert_eq!(key.to_hex().parse::<AnalysisKey>(), Ok(key));
        assert!("zz".parse::<AnalysisKey>().is_err());
    }
}
