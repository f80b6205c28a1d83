use std::borrow::Cow;
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

/// Normalises a query string only where GitHub's answer provably cannot
/// change: empty `&&` segments are dropped, percent-escapes are upper-cased
/// (`%2f` = `%2F`), and parameters are ordered by their decoded name with a
/// *stable* sort, so repeated names keep their relative order (`page=2&page=1`
/// is not `page=1&page=2`). Values are never touched: `after=Y3Vyc29yOjI=`
/// keeps its `=`, and `state=` is not the same as no `state`.
///
/// Two spellings of one query may still give two ids (`%41` and `A`): that
/// costs a cache miss but can never serve a wrong body.
pub fn normalise_query(query: &str) -> String {
    normalised(query).into_owned()
}

/// [`normalise_query`], borrowing when the query is already normal (no
/// escapes or `+`, no empty segments, names in order): the common case
/// computes a key without allocating.
fn normalised(query: &str) -> Cow<'_, str> {
    let query = query.strip_prefix('?').unwrap_or(query);
    if !query.contains(['%', '+']) {
        let mut previous = "";
        let in_order = query.is_empty()
            || query.split('&').all(|p| {
                let name = p.split_once('=').map_or(p, |(n, _)| n);
                let ok = !p.is_empty() && previous <= name;
                previous = name;
                ok
            });
        if in_order {
            return Cow::Borrowed(query);
        }
    }
    Cow::Owned(normalise_slow(query))
}

fn normalise_slow(query: &str) -> String {
    let mut params: Vec<(Vec<u8>, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let name = p.split_once('=').map_or(p, |(n, _)| n);
            (decode_component(name), upper_escapes(p))
        })
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(query.len());
    for (i, (_, param)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(param);
    }
    out
}

/// `%xx` → `%XX`; everything else as it is.
fn upper_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push('%');
            out.push(bytes[i + 1].to_ascii_uppercase() as char);
            out.push(bytes[i + 2].to_ascii_uppercase() as char);
            i += 3;
        } else {
            let len = utf8_len(bytes[i]);
            out.push_str(&text[i..i + len]);
            i += len;
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// A query component as a form decoder reads it (`+` is a space, `%XX` a
/// byte); the sort key that groups every spelling of one parameter name.
pub fn decode_component(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// `text` in one ASCII case, borrowed when it already is.
fn ascii_case(text: &str, upper: bool) -> Cow<'_, str> {
    let wrong = |b: u8| {
        if upper {
            b.is_ascii_lowercase()
        } else {
            b.is_ascii_uppercase()
        }
    };
    if !text.bytes().any(wrong) {
        Cow::Borrowed(text)
    } else if upper {
        Cow::Owned(text.to_ascii_uppercase())
    } else {
        Cow::Owned(text.to_ascii_lowercase())
    }
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
        field(Some(ascii_case(key.host, false).as_bytes()));
        field(Some(ascii_case(key.method, true).as_bytes()));
        field(Some(key.path.as_bytes()));
        field(Some(normalised(key.query).as_bytes()));
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
    use std::collections::BTreeMap;

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
        assert_eq!(normalise_query("?b=2&&a=1&"), "a=1&b=2");
        assert_eq!(normalise_query(""), "");
        assert_eq!(normalise_query("q=%2fx%c3%a9"), "q=%2Fx%C3%A9");
        assert_eq!(
            ResourceId::compute(&key("page=2&per_page=100")),
            ResourceId::compute(&key("per_page=100&page=2"))
        );
    }

    /// Issue 9, item 2: each of these pairs once shared a key.
    #[test]
    fn normalisation_never_changes_meaning() {
        for (a, b) in [
            ("after=Y3Vyc29yOjI=", ""),
            ("page=2&page=1", "page=1&page=2"),
            ("state=", ""),
            ("a[]=1&a%5B%5D=2", "a%5B%5D=2&a[]=1"),
            ("flag", "flag="),
        ] {
            assert_ne!(
                ResourceId::compute(&key(a)),
                ResourceId::compute(&key(b)),
                "{a:?} vs {b:?}"
            );
        }
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

    /// What a form decoder (Rails, Rack) makes of a query: for each decoded
    /// name, its decoded values in order (`None` for a bare `name`).
    fn meaning(query: &str) -> BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>> {
        let mut map: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(decode_component(v))),
                None => (param, None),
            };
            map.entry(decode_component(name)).or_default().push(value);
        }
        map
    }

    fn param() -> impl Strategy<Value = String> {
        // Small alphabets so that collisions (same names, escapes in two
        // cases, `=` inside values, bare names) are common.
        (
            "(a|b|%61|%5B|\\[|\\+| )",
            "(|=|=1|=2|==|=%2f|=%2F|=x=|=a%3D)",
        )
            .prop_map(|(n, v)| format!("{n}{v}"))
    }

    proptest! {
        #[test]
        fn the_borrowing_fast_path_normalises_as_the_full_one(
            a in proptest::collection::vec(param(), 0..5),
            sep in "(&|&&)",
        ) {
            let q = a.join(&sep);
            prop_assert_eq!(normalised(&q).into_owned(), normalise_slow(&q));
            let sorted = {
                let mut v = a.clone();
                v.sort_by(|x, y| {
                    let name = |p: &str| p.split_once('=').map_or(p, |(n, _)| n).to_owned();
                    name(x).cmp(&name(y))
                });
                v.join("&")
            };
            prop_assert_eq!(normalised(&sorted).into_owned(), normalise_slow(&sorted));
        }

        #[test]
        fn a_key_is_shared_only_by_queries_that_mean_the_same(
            a in proptest::collection::vec(param(), 0..5),
            b in proptest::collection::vec(param(), 0..5),
        ) {
            let (qa, qb) = (a.join("&"), b.join("&"));
            if ResourceId::compute(&key(&qa)) == ResourceId::compute(&key(&qb)) {
                prop_assert_eq!(meaning(&qa), meaning(&qb), "{} vs {}", qa, qb);
            }
        }

        #[test]
        fn the_order_of_distinct_names_does_not_matter(
            params in proptest::collection::btree_map("[a-z_]{1,8}", "[a-z0-9=]{0,6}", 0..8),
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
