//! A request's two keys, remembered per worker thread. A client sends one
//! token on its connections, and pollers ask for one resource again and
//! again: the partition (an HMAC-SHA-256 of the token) and the resource id
//! (a SHA-256 of the request's key) of the thread's last request are
//! reused while what they were computed from is exactly the same.
//!
//! The token itself is not kept: the memo holds a SipHash-1-3-128 of it,
//! keyed from the partition secret. The hash never leaves the process, so
//! taking another token's partition would need a 128-bit collision under
//! a key no client can see or probe. 1-3 costs about half of 2-4 on every
//! request (it is less studied; BENCHMARKS.md, eighth pass, says why it is
//! enough here). The resource key's bytes are kept and compared in full.

use std::cell::RefCell;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ghcache_core::{Partition, PartitionSecret, ResourceId, ResourceKey};
use siphasher::sip128::{Hasher128, SipHasher13};

/// One proxy's view of the per-thread memo (tests run many proxies in a
/// process, with different secrets and upstreams).
pub(crate) struct KeyMemo {
    id: u64,
    token_key: [u8; 16],
}

/// The thread's last request.
struct Last {
    memo: u64,
    token: Option<(u128, Partition)>,
    resource: Option<(Vec<u8>, ResourceId)>,
}

thread_local! {
    static LAST: RefCell<Last> = const {
        RefCell::new(Last { memo: u64::MAX, token: None, resource: None })
    };
}

impl KeyMemo {
    pub fn new(secret: &PartitionSecret) -> KeyMemo {
        static IDS: AtomicU64 = AtomicU64::new(0);
        // Derived from the secret, so only the proxy can compute it; from
        // bytes no header value can hold (NUL), so no request's partition.
        let derived = secret.partition_for_bytes(Some(b"\0ghcache/key-memo/v1"));
        let token_key = derived
            .as_bytes()
            .first_chunk::<16>()
            .copied()
            .unwrap_or_default();
        KeyMemo {
            id: IDS.fetch_add(1, Relaxed),
            token_key,
        }
    }

    fn with_last<T>(&self, f: impl FnOnce(&mut Last) -> T) -> T {
        LAST.with_borrow_mut(|last| {
            if last.memo != self.id {
                *last = Last {
                    memo: self.id,
                    token: None,
                    resource: None,
                };
            }
            f(last)
        })
    }

    /// A request's two keys, `ResourceId::compute(key)` and
    /// `secret.partition_for_bytes(authorization)`, from one visit to the
    /// thread's memo.
    pub fn keys(
        &self,
        key: &ResourceKey<'_>,
        secret: &PartitionSecret,
        authorization: Option<&[u8]>,
    ) -> (ResourceId, Partition) {
        let fingerprint = self.fingerprint(authorization);
        self.with_last(|last| {
            (
                Self::remembered_resource(last, key),
                Self::remembered_partition(last, secret, authorization, fingerprint),
            )
        })
    }

    /// The token's keyed hash (computed outside the memo's borrow).
    fn fingerprint(&self, authorization: Option<&[u8]>) -> Option<u128> {
        let token = authorization?;
        let mut sip = SipHasher13::new_with_key(&self.token_key);
        sip.write(token);
        Some(sip.finish128().as_u128())
    }

    fn remembered_partition(
        last: &mut Last,
        secret: &PartitionSecret,
        authorization: Option<&[u8]>,
        fingerprint: Option<u128>,
    ) -> Partition {
        let (Some(token), Some(fingerprint)) = (authorization, fingerprint) else {
            return Partition::Anonymous;
        };
        match last.token {
            Some((held, partition)) if held == fingerprint => partition,
            _ => {
                let partition = secret.partition_for_bytes(Some(token));
                last.token = Some((fingerprint, partition));
                partition
            }
        }
    }

    fn remembered_resource(last: &mut Last, key: &ResourceKey<'_>) -> ResourceId {
        // Every field, so that a new one cannot be left out unnoticed.
        let ResourceKey {
            host,
            method,
            path,
            query,
            accept,
            api_version,
        } = key;
        let parts = [
            Some(host.as_bytes()),
            Some(method.as_bytes()),
            Some(path.as_bytes()),
            Some(query.as_bytes()),
            accept.map(str::as_bytes),
            api_version.map(str::as_bytes),
        ];
        if let Some((held, id)) = &last.resource
            && encodes(held, &parts)
        {
            return *id;
        }
        let id = ResourceId::compute(key);
        let mut encoded = last.resource.take().map(|(v, _)| v).unwrap_or_default();
        encoded.clear();
        encoded.shrink_to(4096);
        for part in parts {
            match part {
                None => encoded.push(0),
                Some(bytes) => {
                    encoded.push(1);
                    encoded.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    encoded.extend_from_slice(bytes);
                }
            }
        }
        last.resource = Some((encoded, id));
        id
    }
}

/// Whether `held` is the encoding of `parts` (each absent part `0`; each
/// present one `1`, its length, its bytes): compared without encoding.
fn encodes(held: &[u8], parts: &[Option<&[u8]>]) -> bool {
    let mut rest = held;
    for part in parts {
        let Some((&tag, tail)) = rest.split_first() else {
            return false;
        };
        rest = match (tag, part) {
            (0, None) => tail,
            (1, Some(bytes)) => {
                let Some((len, tail)) = tail.split_first_chunk::<8>() else {
                    return false;
                };
                if u64::from_le_bytes(*len) != bytes.len() as u64 {
                    return false;
                }
                match tail.split_at_checked(bytes.len()) {
                    Some((held, tail)) if held == *bytes => tail,
                    _ => return false,
                }
            }
            _ => return false,
        };
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(path: &'a str, query: &'a str, accept: Option<&'a str>) -> ResourceKey<'a> {
        ResourceKey {
            host: "api.github.com",
            method: "GET",
            path,
            query,
            accept,
            api_version: None,
        }
    }

    /// The partition alone, as a request for `/` asks.
    fn partition(memo: &KeyMemo, secret: &PartitionSecret, token: Option<&[u8]>) -> Partition {
        memo.keys(&key("/", "", None), secret, token).1
    }

    #[test]
    fn remembered_keys_are_the_keys_computed_afresh() {
        let secret = PartitionSecret::from_key([7; 32]);
        let memo = KeyMemo::new(&secret);
        let tokens: [&[u8]; 3] = [b"token a", b"token b", b"token a"];
        for token in tokens.into_iter().chain(tokens) {
            assert_eq!(
                partition(&memo, &secret, Some(token)),
                secret.partition_for_bytes(Some(token))
            );
        }
        assert_eq!(partition(&memo, &secret, None), Partition::Anonymous);
        // Field boundaries count: moving bytes between fields is another key.
        let keys = [
            key("/repos/o/r", "a=1", Some("json")),
            key("/repos/o/r", "a=1", Some("json")),
            key("/repos/o/ra", "=1", Some("json")),
            key("/repos/o/r", "a=1", None),
            key("/repos/o/r", "a=1", Some("")),
            key("/repos/o/r", "a=1json", None),
            key("/repos/o/r", "a=1", Some("json")),
        ];
        for key in &keys {
            assert_eq!(
                memo.keys(key, &secret, None).0,
                ResourceId::compute(key),
                "{key:?}"
            );
        }
        // Both at once, as a request asks, with tokens and keys changing apart.
        for (key, token) in keys.iter().zip(tokens.iter().cycle()) {
            for token in [Some(*token), None] {
                assert_eq!(
                    memo.keys(key, &secret, token),
                    (ResourceId::compute(key), secret.partition_for_bytes(token)),
                    "{key:?}"
                );
            }
        }
    }

    #[test]
    fn each_proxy_remembers_for_itself() {
        let (one, two) = (
            PartitionSecret::from_key([1; 32]),
            PartitionSecret::from_key([2; 32]),
        );
        let (memo_one, memo_two) = (KeyMemo::new(&one), KeyMemo::new(&two));
        let token = Some(&b"same token"[..]);
        let first = partition(&memo_one, &one, token);
        let second = partition(&memo_two, &two, token);
        assert_ne!(first, second);
        assert_eq!(partition(&memo_one, &one, token), first);
    }
}
