//! AES-256-GCM with a fresh random nonce per seal: the one sealing primitive
//! behind mesh envelopes and vault records. The associated data binds a
//! ciphertext to where it belongs; each caller frames nonce and ciphertext
//! its own way.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

pub const NONCE_LEN: usize = 12;
/// What sealing adds to the plaintext's length, besides the nonce.
pub const TAG_LEN: usize = 16;

/// Seals `plaintext` under `key` and `aad` with a fresh random nonce.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encryption with a valid key and nonce only fails past GCM's 64 GiB,
    // far above anything sealed here; an empty result would never open.
    let ciphertext = Aes256Gcm::new(key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    (nonce, ciphertext)
}

/// Opens what [`seal`] made with the same key and `aad`: `None` for another
/// key, other associated data, a tampered byte or a nonce of the wrong size.
pub fn open(key: &[u8; 32], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_aad_and_bytes() {
        let (nonce, sealed) = seal(&[7; 32], b"where", b"secret");
        assert_eq!(sealed.len(), 6 + TAG_LEN);
        assert_eq!(
            open(&[7; 32], &nonce, b"where", &sealed),
            Some(b"secret".to_vec())
        );
        assert_eq!(open(&[8; 32], &nonce, b"where", &sealed), None);
        assert_eq!(open(&[7; 32], &nonce, b"elsewhere", &sealed), None);
        assert_eq!(open(&[7; 32], &nonce[..11], b"where", &sealed), None);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(open(&[7; 32], &nonce, b"where", &tampered), None);
        assert_ne!(seal(&[7; 32], b"where", b"secret").0, nonce);
    }
}
