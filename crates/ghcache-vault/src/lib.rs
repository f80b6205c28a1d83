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
//! What it is not for: transport or authentication of callers (the daemon
//! owns the vault and serves it over a local channel), or verifying who the
//! caller is: [`Claims`] from the job's environment are policy, not a
//! security boundary, and say so (`verified: false`).
//!
//! Failure behaviour: a wrong master key is refused before any record is
//! touched; a tampered or corrupt record is reported by file name and the
//! rest of the vault still opens; writes are atomic (temp file and rename)
//! and serialised by a file lock, so concurrent writers lose nothing.

mod audit;
mod claims;
mod error;
mod key;
mod record;
mod scope;
mod seal;
mod vault;

pub use audit::{AuditEntry, AuditLog, AuditOutcome, Verified};
pub use claims::Claims;
pub use error::VaultError;
pub use key::{KeySource, MasterKey, PBKDF2_ITERATIONS};
pub use record::RecordInfo;
pub use scope::Scope;
pub use vault::{Selection, Vault};
