use std::fmt;
use std::path::Path;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::CoreError;

/// Local key for deriving [`Partition`]s from `Authorization` values.
///
/// Kept per host and never sent anywhere: without it, a partition value cannot
/// be tested against guessed tokens offline.
///
/// Holds the HMAC keyed once (its inner and outer pad states), so that a
/// partition costs two SHA-256 compressions per request, not four.
#[derive(Clone)]
pub struct PartitionSecret(Hmac<Sha256>);

impl fmt::Debug for PartitionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartitionSecret(..redacted..)")
    }
}

fn random_key() -> [u8; 32] {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

impl PartitionSecret {
    /// A fresh random secret (not persisted). For tests and memory-only setups.
    pub fn generate() -> PartitionSecret {
        PartitionSecret::from_key(random_key())
    }

    /// A secret derived elsewhere (from the cluster secret, so that every
    /// daemon of a fleet computes the same partition for the same token).
    pub fn from_key(key: [u8; 32]) -> PartitionSecret {
        // HMAC accepts keys of any length, so this cannot fail.
        match <Hmac<Sha256> as Mac>::new_from_slice(&key) {
            Ok(mac) => PartitionSecret(mac),
            Err(_) => unreachable!("HMAC-SHA256 takes any key length"),
        }
    }

    /// Reads the 32-byte secret at `path`, or creates it (mode 0600, written
    /// to a temporary file then renamed, so a crash never leaves half a key).
    ///
    /// Refuses a file readable by group/others rather than silently using a
    /// leaked key, and a file of the wrong length rather than overwriting it.
    pub fn load_or_create(path: &Path) -> Result<PartitionSecret, CoreError> {
        use crate::private_file::{PrivateFileError, read_or_create};
        let (bytes, _) =
            read_or_create(path, 4096, || random_key().to_vec()).map_err(|e| match e {
                PrivateFileError::Io { path, source } => CoreError::SecretIo { path, source },
                PrivateFileError::Permissions { path, mode } => {
                    CoreError::SecretPermissions { path, mode }
                }
                PrivateFileError::TooLarge { path, len, .. } => {
                    CoreError::SecretBadLength { path, len }
                }
            })?;
        let key: [u8; 32] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| CoreError::SecretBadLength {
                    path: path.to_path_buf(),
                    len: bytes.len() as u64,
                })?;
        Ok(PartitionSecret::from_key(key))
    }

    /// The partition a request belongs to: HMAC-SHA256 of its `Authorization`
    /// value, or [`Partition::Anonymous`] when there is none.
    pub fn partition_for(&self, authorization: Option<&str>) -> Partition {
        self.partition_for_bytes(authorization.map(str::as_bytes))
    }

    /// [`Self::partition_for`] over the exact bytes that are forwarded, for
    /// values that are not visible ASCII: never a lossy view of them.
    pub fn partition_for_bytes(&self, authorization: Option<&[u8]>) -> Partition {
        match authorization {
            None => Partition::Anonymous,
            Some(token) => {
                let mut mac = self.0.clone();
                mac.update(token);
                Partition(Inner::Keyed(mac.finalize().into_bytes().into()))
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Inner {
    Anonymous,
    Keyed([u8; 32]),
}

/// Whose view of a resource an entry is: an HMAC of the `Authorization`
/// header, or anonymous. Only [`PartitionSecret::partition_for`] and
/// [`Partition::from_bytes`] (stored values) create keyed partitions, so no
/// code path can turn a raw token into one by accident.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(Inner);

impl Partition {
    /// Requests without an `Authorization` header.
    #[allow(non_upper_case_globals)]
    pub const Anonymous: Partition = Partition(Inner::Anonymous);

    pub const fn is_anonymous(&self) -> bool {
        matches!(self.0, Inner::Anonymous)
    }

    /// Stored form: empty for anonymous, the 32 HMAC bytes otherwise.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Inner::Anonymous => &[],
            Inner::Keyed(b) => b,
        }
    }

    /// Inverse of [`Partition::as_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Partition, CoreError> {
        match bytes.len() {
            0 => Ok(Partition::Anonymous),
            32 => {
                let mut b = [0u8; 32];
                b.copy_from_slice(bytes);
                Ok(Partition(Inner::Keyed(b)))
            }
            len => Err(CoreError::InvalidPartitionBytes { len }),
        }
    }

    /// Full form for storage and APIs: "anon" or 64 hex characters.
    pub fn to_full_string(&self) -> String {
        match &self.0 {
            Inner::Anonymous => "anon".to_owned(),
            Inner::Keyed(b) => hex::encode(b),
        }
    }
}

impl fmt::Display for Partition {
    /// Short form for logs: "anon" or a 12-hex-digit prefix of the HMAC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Anonymous => f.write_str("anon"),
            Inner::Keyed(b) => f.write_str(&hex::encode(&b[..6])),
        }
    }
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Partition({self})")
    }
}

impl FromStr for Partition {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "anon" {
            return Ok(Partition::Anonymous);
        }
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).map_err(|_| CoreError::InvalidPartition {
            input: s.chars().take(80).collect(),
        })?;
        Ok(Partition(Inner::Keyed(b)))
    }
}

crate::serde_via_str!(Partition, Partition::to_full_string);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn anonymous_and_keyed() {
        let s = PartitionSecret::generate();
        assert_eq!(s.partition_for(None), Partition::Anonymous);
        assert!(s.partition_for(None).is_anonymous());
        let p = s.partition_for(Some("token ghp_abc"));
        assert!(!p.is_anonymous());
        assert_eq!(p, s.partition_for(Some("token ghp_abc")));
        // A different secret gives a different partition for the same token.
        assert_ne!(
            p,
            PartitionSecret::generate().partition_for(Some("token ghp_abc"))
        );
    }

    #[test]
    fn formatting_never_shows_token_or_secret() {
        let s = PartitionSecret::generate();
        assert_eq!(format!("{s:?}"), "PartitionSecret(..redacted..)");
        let p = s.partition_for(Some("token ghp_supersecret"));
        let shown = format!("{p} {p:?} {}", p.to_full_string());
        assert!(!shown.contains("ghp_supersecret"));
        assert_eq!(p.to_string().len(), 12);
        assert_eq!(Partition::Anonymous.to_string(), "anon");
    }

    #[test]
    fn bytes_string_serde_roundtrip() {
        let p = PartitionSecret::generate().partition_for(Some("x"));
        for q in [p, Partition::Anonymous] {
            assert_eq!(Partition::from_bytes(q.as_bytes()).ok(), Some(q));
            assert_eq!(q.to_full_string().parse::<Partition>().ok(), Some(q));
            let j = serde_json::to_string(&q).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Partition>(&j).ok(), Some(q));
        }
        assert!(Partition::from_bytes(&[1; 5]).is_err());
        assert!("nothex".parse::<Partition>().is_err());
    }

    #[test]
    fn load_or_create_persists_with_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/partition.key");
        let a = PartitionSecret::load_or_create(&path).expect("create");
        let b = PartitionSecret::load_or_create(&path).expect("load");
        assert_eq!(a.partition_for(Some("t")), b.partition_for(Some("t")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("md").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = PartitionSecret::load_or_create(&path).expect_err("lax perms");
            assert!(err.to_string().contains("chmod 600"), "{err}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        std::fs::write(&path, b"short").expect("write");
        let err = PartitionSecret::load_or_create(&path).expect_err("bad length");
        assert!(
            matches!(err, CoreError::SecretBadLength { len: 5, .. }),
            "{err}"
        );
        // Never overwritten.
        assert_eq!(std::fs::read(&path).expect("read"), b"short");
    }

    proptest! {
        #[test]
        fn different_tokens_different_partitions(a in ".{1,64}", b in ".{1,64}") {
            prop_assume!(a != b);
            let s = PartitionSecret::generate();
            prop_assert_ne!(s.partition_for(Some(&a)), s.partition_for(Some(&b)));
            prop_assert_ne!(s.partition_for(Some(&a)), Partition::Anonymous);
        }
    }
}
