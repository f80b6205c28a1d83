//! Shared identifiers for ghcache: what a cached resource *is* ([`ResourceId`]),
//! whose view of it an entry belongs to ([`Partition`]), and which bytes a body
//! holds ([`ContentId`]).
//!
//! This crate is for small, pure, I/O-free types every other crate agrees on
//! (store keys, mesh messages, proxy lookups). It is not for storage, HTTP or
//! networking. The single exception is [`PartitionSecret::load_or_create`],
//! which reads or creates one small secret file.
//!
//! Raw `Authorization` values go in through [`PartitionSecret::partition_for`]
//! and never come out: a [`Partition`] holds only an HMAC of the token.

mod content;
mod error;
mod partition;
pub mod private_file;
mod resource;

pub use content::ContentId;
pub use error::CoreError;
pub use partition::{Partition, PartitionSecret};
pub use resource::{ResourceId, ResourceKey, normalise_query};
