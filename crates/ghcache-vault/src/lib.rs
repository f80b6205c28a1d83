//! The credential vault: secrets kept encrypted on the runner host, handed
//! to a job only when its scope allows, never shown in a log.
//!
//! What it is for: named values sealed with AES-256-GCM under a data key
//! (itself wrapped by the master key), each bound to its name, scope and
//! version by the associated data, so a ciphertext moved to another record
//! does not open; scopes from `global` to one workflow, the most specific
//! match winning; expiry and rotation with a grace period; an append-only,
//! hash-chained audit log that `verify` checks for edits, removals,
//! reordering and truncation.
//!
//! The daemon owns the vault ([`Service`], holding the owner lock) and
//! serves it on a 0600 Unix socket checked with SO_PEERCRED
//! ([`server::VaultServer`]); clients ask it there or, without a daemon,
//! open the vault themselves under the same lock ([`client::call`]).
//! [`inject`] turns a selection into masked file commands.
//!
//! What it is not for: verifying who the caller is: [`Claims`] from the
//! job's environment are policy, not a security boundary, and say so
//! (`verified: false`).
//!
//! Failure behaviour: a wrong master key is refused before any record is
//! touched; a tampered or corrupt record is reported by file name and the
//! rest of the vault still opens; writes are atomic (temp file and rename)
//! and serialised by a file lock, so concurrent writers lose nothing.

mod audit;
mod claims;
pub mod client;
mod duration;
mod error;
pub mod inject;
mod key;
mod owner;
mod record;
mod scope;
pub mod server;
mod service;
mod vault;
pub mod wire;

pub use audit::{AuditEntry, AuditLog, AuditOutcome, Verified};
pub use claims::Claims;
pub use duration::parse_duration;
pub use error::VaultError;
pub use key::{KeySource, MASTER_KEY_ENV, MasterKey, PASSPHRASE_ENV, PBKDF2_ITERATIONS};
pub use record::{RecordInfo, time_text};
pub use scope::Scope;
pub use service::Service;
pub use vault::{Selection, Vault};
