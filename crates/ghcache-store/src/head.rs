//! The response header block an entry replays on every hit: built once when
//! the entry is stored, shared (an `Arc`) by every read of it, so a hit
//! starts from a ready `HeaderMap` (the proxy's per-thread copy of it)
//! instead of parsing strings.

use std::sync::Arc;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// End-to-end response headers as stored (the proxy decides which).
///
/// Serialised as `[[name, value], …]`, each value's bytes read as Latin-1
/// so that non-ASCII (`obs-text`) values survive byte for byte.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoredHead(Arc<HeaderMap>);

impl StoredHead {
    pub fn new(map: HeaderMap) -> StoredHead {
        StoredHead(Arc::new(map))
    }

    /// Whether both are the same stored block (not merely equal): a block
    /// is never changed once stored, so a copy derived from it stays
    /// current while this holds.
    pub fn is_same(&self, other: &StoredHead) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// An identity for tables keyed by [`StoredHead::is_same`].
    pub fn address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    pub fn map(&self) -> &HeaderMap {
        &self.0
    }

    /// Header lines held (a repeated name counts once per line).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of names and values, for the store's byte limit.
    pub fn footprint(&self) -> usize {
        self.0.iter().map(|(n, v)| n.as_str().len() + v.len()).sum()
    }

    /// The first value of `name` when it is visible ASCII.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

impl std::fmt::Debug for StoredHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(n, v)| (n.as_str(), latin1(v.as_bytes()))),
            )
            .finish()
    }
}

/// More lines than any answer GitHub sends (hyper's client refuses more
/// than 100): a block past it comes from a corrupt record or a bad peer.
pub const MAX_LINES: usize = 1024;

/// Pairs whose name or value is not a valid header are skipped, and so
/// are those past [`MAX_LINES`].
impl From<Vec<(String, String)>> for StoredHead {
    fn from(pairs: Vec<(String, String)>) -> StoredHead {
        let mut map = HeaderMap::with_capacity(pairs.len().min(MAX_LINES));
        for (name, value) in pairs.into_iter().take(MAX_LINES) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                map.append(name, value);
            }
        }
        StoredHead::new(map)
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

impl Serialize for StoredHead {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|(n, v)| (n.as_str(), latin1(v.as_bytes()))),
        )
    }
}

impl<'de> Deserialize<'de> for StoredHead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StoredHead, D::Error> {
        let pairs = Vec::<(String, String)>::deserialize(d)?;
        if pairs.len() > MAX_LINES {
            return Err(D::Error::custom(format!(
                "header block of {} lines (at most {MAX_LINES})",
                pairs.len()
            )));
        }
        let mut map = HeaderMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom)?;
            let bytes = value
                .chars()
                .map(|c| u8::try_from(u32::from(c)))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| D::Error::custom("header value is not Latin-1"))?;
            let value = HeaderValue::from_bytes(&bytes).map_err(D::Error::custom)?;
            map.append(name, value);
        }
        Ok(StoredHead::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_past_the_line_limit_is_refused_not_a_panic() {
        let lines: Vec<(String, String)> = (0..40_000)
            .map(|i| ("vary".to_owned(), i.to_string()))
            .collect();
        let json = serde_json::to_string(&lines).unwrap();
        let err = serde_json::from_str::<StoredHead>(&json).unwrap_err();
        assert!(err.to_string().contains("40000 lines"), "{err}");
        assert_eq!(StoredHead::from(lines).len(), MAX_LINES);
    }

    #[test]
    fn non_ascii_and_repeated_values_round_trip_byte_for_byte() {
        let mut map = HeaderMap::new();
        map.append("vary", HeaderValue::from_static("Accept, Authorization"));
        map.append("vary", HeaderValue::from_static("Accept-Encoding"));
        map.append(
            "x-name",
            HeaderValue::from_bytes("café".as_bytes()).expect("utf-8 bytes"),
        );
        map.append(
            "x-latin",
            HeaderValue::from_bytes(b"caf\xe9").expect("obs-text"),
        );
        let head = StoredHead::new(map);
        let json = serde_json::to_string(&head).expect("serialise");
        let back: StoredHead = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, head);
        assert_eq!(back.map().get_all("vary").iter().count(), 2);
        assert_eq!(back.map()["x-latin"].as_bytes(), b"caf\xe9");
        assert_eq!(back.map()["x-name"].as_bytes(), "café".as_bytes());
    }

    #[test]
    fn the_old_string_pairs_still_read() {
        let back: StoredHead =
            serde_json::from_str(r#"[["content-type","application/json"]]"#).expect("old shape");
        assert_eq!(back.get_str("content-type"), Some("application/json"));
    }
}
