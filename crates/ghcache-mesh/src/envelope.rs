//! AES-256-GCM envelopes: every payload the mesh sends is one of these.
//!
//! Envelope wire format: `version (1) | nonce (12) | ciphertext+tag`.
//!
//! A mesh *message* is an envelope with a small clear header naming the
//! resource id and content id it is about (when it has them):
//! `flags (1) | [resource id (32)] | [cid digest (32)] | envelope`. The header
//! is not secret (resource ids and CIDs are hashes) but it is authenticated:
//! the associated data of the envelope is the protocol name plus the header,
//! so a valid envelope cannot be replayed under another protocol, resource or
//! content id.

use ghcache_core::aead::{self, NONCE_LEN, TAG_LEN};
use ghcache_core::{ContentId, ResourceId};

/// Current envelope version byte.
pub const ENVELOPE_VERSION: u8 = 1;

/// Why a message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Too short, unknown version, bad header.
    #[error("malformed envelope")]
    Malformed,
    /// Authentication failed: other key, or tampered data.
    #[error("envelope does not decrypt with our cluster key")]
    Decrypt,
}

/// Seals `plaintext` with a fresh random nonce.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let (nonce, ct) = aead::seal(key, aad, plaintext);
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens an envelope made by [`seal`] with the same key and `aad`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != ENVELOPE_VERSION {
        return Err(OpenError::Malformed);
    }
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    aead::open(key, nonce, aad, ct).ok_or(OpenError::Decrypt)
}

/// Associated data: protocol name and the (optional) resource id and CID,
/// each length- or presence-prefixed so no two inputs encode alike.
pub fn aad(protocol: &str, resource: Option<&ResourceId>, cid: Option<&ContentId>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + protocol.len() + 66);
    out.extend_from_slice(b"ghcache-aad-v1");
    out.extend_from_slice(&(protocol.len() as u32).to_be_bytes());
    out.extend_from_slice(protocol.as_bytes());
    match resource {
        Some(r) => {
            out.push(1);
            out.extend_from_slice(r.as_bytes());
        }
        None => out.push(0),
    }
    match cid {
        Some(c) => {
            out.push(1);
            out.extend_from_slice(c.digest());
        }
        None => out.push(0),
    }
    out
}

/// An opened message: its authenticated header and plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub resource: Option<ResourceId>,
    pub cid: Option<ContentId>,
    pub plaintext: Vec<u8>,
}

const FLAG_RESOURCE: u8 = 1;
const FLAG_CID: u8 = 2;

/// Seals a message for `protocol` about `resource`/`cid`.
pub fn seal_message(
    key: &[u8; 32],
    protocol: &str,
    resource: Option<&ResourceId>,
    cid: Option<&ContentId>,
    plaintext: &[u8],
) -> Vec<u8> {
    let env = seal(key, &aad(protocol, resource, cid), plaintext);
    let mut out = Vec::with_capacity(65 + env.len());
    let flags = resource.map_or(0, |_| FLAG_RESOURCE) | cid.map_or(0, |_| FLAG_CID);
    out.push(flags);
    if let Some(r) = resource {
        out.extend_from_slice(r.as_bytes());
    }
    if let Some(c) = cid {
        out.extend_from_slice(c.digest());
    }
    out.extend_from_slice(&env);
    out
}

/// Opens a message made by [`seal_message`] for the same protocol.
pub fn open_message(key: &[u8; 32], protocol: &str, bytes: &[u8]) -> Result<Opened, OpenError> {
    let (&flags, mut rest) = bytes.split_first().ok_or(OpenError::Malformed)?;
    if flags & !(FLAG_RESOURCE | FLAG_CID) != 0 {
        return Err(OpenError::Malformed);
    }
    let take32 = |rest: &mut &[u8]| -> Result<[u8; 32], OpenError> {
        if rest.len() < 32 {
            return Err(OpenError::Malformed);
        }
        let mut b = [0u8; 32];
        b.copy_from_slice(&rest[..32]);
        *rest = &rest[32..];
        Ok(b)
    };
    let resource = if flags & FLAG_RESOURCE != 0 {
        Some(ResourceId::from_bytes(take32(&mut rest)?))
    } else {
        None
    };
    let cid = if flags & FLAG_CID != 0 {
        Some(ContentId::from_digest(take32(&mut rest)?))
    } else {
        None
    };
    let plaintext = open(key, &aad(protocol, resource.as_ref(), cid.as_ref()), rest)?;
    Ok(Opened {
        resource,
        cid,
        plaintext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 32] = [7; 32];

    #[test]
    fn round_trip() {
        let s = seal(&K, b"aad", b"hello");
        assert_eq!(s[0], ENVELOPE_VERSION);
        assert_eq!(s.len(), 1 + 12 + 5 + 16);
        assert_eq!(open(&K, b"aad", &s), Ok(b"hello".to_vec()));
        assert_eq!(open(&K, b"aad", &seal(&K, b"aad", b"")), Ok(vec![]));
    }

    #[test]
    fn wrong_key_and_tampering() {
        let s = seal(&K, b"aad", b"hello");
        assert_eq!(open(&[8; 32], b"aad", &s), Err(OpenError::Decrypt));
        assert_eq!(open(&K, b"aaD", &s), Err(OpenError::Decrypt));
        for i in 1..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert_eq!(open(&K, b"aad", &t), Err(OpenError::Decrypt), "byte {i}");
        }
        let mut v = s.clone();
        v[0] = 9;
        assert_eq!(open(&K, b"aad", &v), Err(OpenError::Malformed));
        assert_eq!(open(&K, b"aad", &s[..20]), Err(OpenError::Malformed));
        assert_eq!(open(&K, b"aad", &[]), Err(OpenError::Malformed));
        assert_eq!(open(&K, b"aad", &s[..s.len() - 1]), Err(OpenError::Decrypt));
    }

    #[test]
    fn nonces_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let s = seal(&K, b"", b"same");
            assert!(seen.insert(s[1..13].to_vec()), "nonce reused");
        }
    }

    #[test]
    fn message_header_is_authenticated() {
        let rid = ResourceId::from_bytes([1; 32]);
        let cid = ContentId::of(b"body");
        let m = seal_message(&K, "/p", Some(&rid), Some(&cid), b"x");
        let o = open_message(&K, "/p", &m).expect("opens");
        assert_eq!(o.resource, Some(rid));
        assert_eq!(o.cid, Some(cid));
        assert_eq!(o.plaintext, b"x");
        // Other protocol: rejected.
        assert_eq!(open_message(&K, "/q", &m), Err(OpenError::Decrypt));
        // Swap the resource id in the clear header: rejected.
        let mut t = m.clone();
        t[1] ^= 1;
        assert_eq!(open_message(&K, "/p", &t), Err(OpenError::Decrypt));
        // Swap the CID: rejected.
        let mut t = m.clone();
        t[40] ^= 1;
        assert_eq!(open_message(&K, "/p", &t), Err(OpenError::Decrypt));
        // Drop the CID flag: header parses differently and fails.
        let mut t = m.clone();
        t[0] = FLAG_RESOURCE;
        assert!(open_message(&K, "/p", &t).is_err());
        assert_eq!(open_message(&K, "/p", &[0xff]), Err(OpenError::Malformed));
        assert_eq!(open_message(&K, "/p", &[]), Err(OpenError::Malformed));
        assert_eq!(
            open_message(&K, "/p", &[1, 2, 3]),
            Err(OpenError::Malformed)
        );
    }
}
