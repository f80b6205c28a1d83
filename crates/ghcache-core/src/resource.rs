use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::CoreError;

/// The request attributes that decide *which* resource a response represents.
///
/// Everything that can change the body GitHub returns for the same token is
/// here; the token itself is not (that is the [`crate::Partition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKey<'a> {
    /// Upstream host, e.g. `api.github.com` or a GHES host (case-insensitive).
    pub host: &'a str,
    /// HTTP method (case-insensitive, normalised to upper case).
    pub method: &'a str,
    /// Path without the query, e.g. `/repos/o/r/pulls`. Compared exactly.
    pub path: &'a str,
    /// Raw query string without the leading `?` (may be empty).
    pub query: &'a str,
    /// `Accept` header value, if sent.
    pub accept: Option<&'a str>,
    /// `X-GitHub-Api-Version` header value, if sent.
    pub api_version: Option<&'a str>,
}

/// Identity of a cacheable resource: SHA-256 over a length-prefixed encoding
/// of a [`ResourceKey`]. Independent of the token, so all partitions of one
/// resource share an id (needed for ETag synthesis and fleet invalidation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId([u8; 32]);

/// Domain separation so these hashes can never collide with other SHA-256
/// uses in ghcache (ETags, CIDs). Bump the suffix if the encoding changes.
const RESOURCE_DOMAIN: &[u8] = b"ghcache/resource-id/v1";

/// Sorts query parameters and drops empty ones (`a=1&&b=` → `a=1`).
///
/// Parameters are not percent-decoded: two spellings of the same query give
/// two ids, which costs a cache miss but can never serve a wrong body.
pub fn normalise_query(query: &str) -> String {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.ends_with('='))
        .collect();
    params.sort_unstable();
    params.join("&")
}

impl ResourceId {
    pub const LEN: usize = 32;

    pub fn compute(key: &ResourceKey<'_>) -> ResourceId {
        let mut h = Sha256::new();
        h.update(RESOURCE_DOMAIN);
        // Length prefixes make the encoding injective: no choice of field
        // values can shift bytes from one field into the next.
        let mut field = |bytes: Option<&[u8]>| match bytes {
            None => h.update([0u8]),
            Some(b) => {
                h.update([1u8]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        };
        field(Some(key.host.to_ascii_lowercase().as_bytes()));
        field(Some(key.method.to_ascii_uppercase().as_bytes()));
        field(Some(key.path.as_bytes()));
        field(Some(normalise_query(key.query).as_bytes()));
        field(key.accept.map(|a| a.trim().as_bytes()));
        field(key.api_version.map(|v| v.trim().as_bytes()));
        ResourceId(h.finalize().into())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> ResourceId {
        ResourceId(bytes)
    }

    /// Parses 32 stored bytes; errors if the slice has another length.
    pub fn from_slice(bytes: &[u8]) -> Result<ResourceId, CoreError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CoreError::InvalidResourceId {
            input: hex::encode(bytes),
        })?;
        Ok(ResourceId(arr))
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({})", self.to_hex())
    }
}

impl FromStr for ResourceId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| CoreError::InvalidResourceId {
            input: s.chars().take(80).collect(),
        })?;
        Ok(ResourceId(out))
    }
}

crate::serde_via_str!(ResourceId, ResourceId::to_hex);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key<'a>(query: &'a str) -> ResourceKey<'a> {
        ResourceKey {
            host: "api.github.com",
            method: "GET",
            path: "/repos/o/r/pulls",
            query,
            accept: Some("application/vnd.github+json"),
            api_version: Some("2022-11-28"),
        }
    }

    #[test]
    fn query_normalisation() {
        assert_eq!(normalise_query("b=2&a=1"), "a=1&b=2");
        assert_eq!(normalise_query("?b=2&&a=1&c="), "a=1&b=2");
        assert_eq!(normalise_query(""), "");
        assert_eq!(
            ResourceId::compute(&key("page=2&per_page=100")),
            ResourceId::compute(&key("per_page=100&page=2&state="))
        );
    }

    #[test]
    fn every_field_matters() {
        let base = key("a=1");
        let id = ResourceId::compute(&base);
        let variants = [
            ResourceKey {
                host: "ghes.example.com",
                ..base
            },
            ResourceKey {
                method: "HEAD",
                ..base
            },
            ResourceKey {
                path: "/repos/o/r/issues",
                ..base
            },
            ResourceKey {
                query: "a=2",
                ..base
            },
            ResourceKey {
                accept: None,
                ..base
            },
            ResourceKey {
                accept: Some("application/vnd.github.raw"),
                ..base
            },
            ResourceKey {
                api_version: None,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(ResourceId::compute(&v), id, "{v:?}");
        }
        // Case-insensitive parts are normalised.
        let upper = ResourceKey {
            host: "API.GitHub.com",
            method: "get",
            ..base
        };
        assert_eq!(ResourceId::compute(&upper), id);
    }

    #[test]
    fn length_prefix_prevents_field_shifting() {
        let a = ResourceKey {
            accept: Some("x"),
            api_version: None,
            ..key("")
        };
        let b = ResourceKey {
            accept: None,
            api_version: Some("x"),
            ..key("")
        };
        assert_ne!(ResourceId::compute(&a), ResourceId::compute(&b));
    }

    #[test]
    fn hex_and_serde_roundtrip() {
        let id = ResourceId::compute(&key("x=1"));
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<ResourceId>().ok(), Some(id));
        let json = serde_json::to_string(&id).ok();
        assert_eq!(json, Some(format!("\"{s}\"")));
        let back: Option<ResourceId> = json.and_then(|j| serde_json::from_str(&j).ok());
        assert_eq!(back, Some(id));
        assert!("zz".parse::<ResourceId>().is_err());
        assert_eq!(ResourceId::from_slice(id.as_bytes()).ok(), Some(id));
        assert!(ResourceId::from_slice(&[1, 2, 3]).is_err());
    }

    proptest! {
        #[test]
        fn query_order_does_not_matter(
            params in proptest::collection::vec(("[a-z_]{1,8}", "[a-z0-9]{0,6}"), 0..8),
            seed in any::<u64>(),
        ) {
            let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut shuffled = pairs.clone();
            // Deterministic shuffle from the seed; proptest shrinks the seed.
            let n = shuffled.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let q1 = pairs.join("&");
            let q2 = format!("&{}&", shuffled.join("&&"));
            prop_assert_eq!(ResourceId::compute(&key(&q1)), ResourceId::compute(&key(&q2)));
        }
    }
}
