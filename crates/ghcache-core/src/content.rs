use std::fmt;
use std::str::FromStr;

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::CoreError;

const RAW_CODEC: u64 = 0x55;
const SHA2_256: u64 = 0x12;

/// Content address of a body: CIDv1, raw codec, sha2-256.
///
/// Only that one kind of CID is accepted, so the 32-byte digest is the whole
/// identity; storing just the digest keeps map keys small and hashing cheap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; 32]);

impl ContentId {
    pub fn of(body: &[u8]) -> ContentId {
        ContentId(Sha256::digest(body).into())
    }

    /// True when `body` is exactly the content this id names.
    pub fn verify(&self, body: &[u8]) -> bool {
        // Plain comparison is fine: digests of public bodies are not secrets.
        Self::of(body) == *self
    }

    /// The sha2-256 digest.
    pub const fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    pub const fn from_digest(digest: [u8; 32]) -> ContentId {
        ContentId(digest)
    }

    pub fn to_cid(&self) -> Cid {
        match Multihash::<64>::wrap(SHA2_256, &self.0) {
            Ok(mh) => Cid::new_v1(RAW_CODEC, mh),
            Err(_) => unreachable!("a 32-byte digest fits a 64-byte multihash"),
        }
    }

    /// Binary CID (36 bytes: version, codec, multihash).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_cid().to_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ContentId, CoreError> {
        let cid = Cid::try_from(bytes).map_err(|e| CoreError::InvalidContentId {
            input: hex::encode(&bytes[..bytes.len().min(48)]),
            reason: e.to_string(),
        })?;
        Self::from_cid(&cid, || hex::encode(bytes))
    }

    pub fn from_cid(cid: &Cid, input: impl Fn() -> String) -> Result<ContentId, CoreError> {
        let bad = |reason: String| CoreError::InvalidContentId {
            input: input(),
            reason,
        };
        if cid.version() != cid::Version::V1 {
            return Err(bad("only CIDv1 is supported".into()));
        }
        if cid.codec() != RAW_CODEC {
            return Err(bad(format!("codec 0x{:x} is not raw (0x55)", cid.codec())));
        }
        let mh = cid.hash();
        if mh.code() != SHA2_256 || mh.size() != 32 {
            return Err(bad(format!(
                "hash 0x{:x}/{} bytes is not sha2-256",
                mh.code(),
                mh.size()
            )));
        }
        let mut d = [0u8; 32];
        d.copy_from_slice(mh.digest());
        Ok(ContentId(d))
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CIDv1 displays as lower-case base32 ("bafkrei…").
        fmt::Display::fmt(&self.to_cid(), f)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = || s.chars().take(80).collect::<String>();
        let cid = Cid::try_from(s).map_err(|e| CoreError::InvalidContentId {
            input: shown(),
            reason: e.to_string(),
        })?;
        Self::from_cid(&cid, shown)
    }
}

crate::serde_via_str!(ContentId, ContentId::to_string);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // `echo -n hello | ipfs add --raw-leaves --cid-version 1 -n`
        let id = ContentId::of(b"hello");
        assert_eq!(
            id.to_string(),
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
        assert!(id.verify(b"hello"));
        assert!(!id.verify(b"hello!"));
    }

    #[test]
    fn parse_errors_are_clear() {
        let e = "not-a-cid".parse::<ContentId>().expect_err("garbage");
        assert!(e.to_string().contains("invalid content id"), "{e}");
        // A valid CIDv1 with dag-pb codec is rejected with the reason.
        let mh = Multihash::<64>::wrap(SHA2_256, &[7u8; 32]).expect("mh");
        let other = Cid::new_v1(0x70, mh).to_string();
        let e = other.parse::<ContentId>().expect_err("codec");
        assert!(e.to_string().contains("not raw"), "{e}");
        assert!(ContentId::from_bytes(&[1, 2, 3]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrips(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let id = ContentId::of(&body);
            prop_assert!(id.verify(&body));
            prop_assert_eq!(id.to_string().parse::<ContentId>().ok(), Some(id));
            prop_assert_eq!(ContentId::from_bytes(&id.to_bytes()).ok(), Some(id));
            let j = serde_json::to_string(&id).unwrap_or_default();
            prop_assert_eq!(serde_json::from_str::<ContentId>(&j).ok(), Some(id));
            prop_assert!(id.to_string().starts_with("bafk"));
        }
    }
}
