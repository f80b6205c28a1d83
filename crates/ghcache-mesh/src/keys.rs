//! Cluster key derivation.

use std::fmt;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};

/// PBKDF2 iterations for stretching the cluster secret (OWASP 2023 guidance
/// for PBKDF2-HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// Keys derived from the cluster secret. Never printed.
#[derive(Clone)]
pub struct ClusterKeys {
    envelope: [u8; 32],
    partition: [u8; 32],
    locator: [u8; 32],
    pnet: [u8; 32],
}

impl fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClusterKeys(fingerprint {}, ..redacted..)",
            self.fingerprint()
        )
    }
}

impl ClusterKeys {
    /// AES-256-GCM key of every mesh payload.
    pub fn envelope_key(&self) -> &[u8; 32] {
        &self.envelope
    }

    /// Key the daemon can use for its `PartitionSecret`, so that the same
    /// token maps to the same partition on every daemon of the cluster.
    pub fn partition_key(&self) -> &[u8; 32] {
        &self.partition
    }

    /// The Kademlia key under which holders of `resource` are recorded: a
    /// keyed hash, so a non-member that joins the DHT cannot test which
    /// resources (which repositories) the fleet has fetched.
    pub fn provider_key(&self, resource: &ghcache_core::ResourceId) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.locator)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(resource.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The libp2p pnet pre-shared key (private-network mode).
    pub fn pnet_key(&self) -> &[u8; 32] {
        &self.pnet
    }

    /// A short, one-way fingerprint of the envelope key (12 hex digits).
    ///
    /// Safe to log and show in stats: it is a SHA-256 of a key that is itself
    /// the output of a slow KDF, so it reveals nothing usable about the
    /// secret, but two daemons with different secrets show different
    /// fingerprints — which is how an operator spots a mismatch.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"ghcache key fingerprint v1");
        h.update(self.envelope);
        hex::encode(&h.finalize()[..6])
    }
}

/// Derives the cluster keys from the operator's secret.
///
/// Why PBKDF2 then HKDF: the cluster secret is chosen by a human (an
/// environment variable), so it may be short or guessable; anyone who records
/// mesh traffic could try guesses offline against an AES-GCM tag. Stretching
/// with 600,000 PBKDF2-HMAC-SHA256 iterations makes each guess cost as much as
/// a daemon start (a fraction of a second), which we pay exactly once per
/// start. The network id is part of the salt, so different networks sharing a
/// secret still get unrelated keys and no precomputed table serves two
/// networks. HKDF-Expand then splits the 32-byte master into independent keys
/// for independent uses (envelopes, partitions) without further stretching.
pub fn derive_keys(cluster_secret: &[u8], network_id: &str) -> ClusterKeys {
    let salt = format!("ghcache/v1/{network_id}");
    let mut master = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        cluster_secret,
        salt.as_bytes(),
        PBKDF2_ITERATIONS,
        &mut master,
    );
    let hk = Hkdf::<Sha256>::from_prk(&master).unwrap_or_else(|_| {
        // from_prk only fails for a PRK shorter than the hash length (32).
        unreachable!("a 32-byte PRK is always accepted")
    });
    let mut envelope = [0u8; 32];
    let mut partition = [0u8; 32];
    let mut locator = [0u8; 32];
    let mut pnet = [0u8; 32];
    // expand only fails when asked for more than 255 * 32 bytes.
    if hk.expand(b"ghcache envelope v1", &mut envelope).is_err()
        || hk.expand(b"ghcache partition v1", &mut partition).is_err()
        || hk.expand(b"ghcache provider v1", &mut locator).is_err()
        || hk.expand(b"ghcache pnet v1", &mut pnet).is_err()
    {
        unreachable!("32 bytes is a valid HKDF-SHA256 output length");
    }
    master.fill(0);
    ClusterKeys {
        envelope,
        partition,
        locator,
        pnet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_separated() {
        let a = derive_keys(b"s3cret", "net");
        let b = derive_keys(b"s3cret", "net");
        assert_eq!(a.envelope_key(), b.envelope_key());
        assert_eq!(a.partition_key(), b.partition_key());
        assert_ne!(a.envelope_key(), a.partition_key());
        let other_net = derive_keys(b"s3cret", "net2");
        assert_ne!(a.envelope_key(), other_net.envelope_key());
        let other_secret = derive_keys(b"s3cret!", "net");
        assert_ne!(a.envelope_key(), other_secret.envelope_key());
        assert_ne!(a.fingerprint(), other_secret.fingerprint());
        let rid = ghcache_core::ResourceId::from_bytes([7; 32]);
        assert_eq!(a.provider_key(&rid), b.provider_key(&rid));
        assert_ne!(a.provider_key(&rid), other_secret.provider_key(&rid));
        assert_ne!(a.provider_key(&rid), rid.as_bytes().to_vec());
        let shown = format!("{a:?}");
        assert!(!shown.contains(&hex::encode(a.envelope_key())));
    }
}
