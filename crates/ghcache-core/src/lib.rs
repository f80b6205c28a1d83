//! Shared identifiers for ghcache: what a cached resource *is* ([`ResourceId`]),
//! whose view of it an entry belongs to ([`Partition`]), and which bytes a body
//! holds ([`ContentId`]).
//!
//! This crate is for small, pure, I/O-free types every other crate agrees on
//! (store keys, mesh messages, proxy lookups). It is not for storage, HTTP or
//! networking. The exception is small key files: [`private_file`] reads or
//! creates them (for [`PartitionSecret::load_or_create`] and the mesh
//! identity).
//!
//! With the `aead` feature, [`aead`] is the one AES-GCM sealing primitive
//! (mesh envelopes, vault records).
//!
//! Raw `Authorization` values go in through [`PartitionSecret::partition_for`]
//! and never come out: a [`Partition`] holds only an HMAC of the token.

/// Serde as a string: `$to` writes it, `FromStr` reads it back.
macro_rules! serde_via_str {
    ($t:ty, $to:path) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&$to(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_str;

#[cfg(feature = "aead")]
pub mod aead;
mod content;
mod duration;
mod error;
mod network;
mod partition;
pub mod private_file;
mod resource;

pub use content::ContentId;
pub use duration::{DurationError, DurationLimits, parse_duration};
pub use error::CoreError;
pub use network::validate_network_id;
pub use partition::{Partition, PartitionSecret};
pub use resource::{ResourceId, ResourceKey, normalise_query};
