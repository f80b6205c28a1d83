//! The vault's one owner-side entry point: a request in, a response out,
//! every value handed out or changed recorded in the audit log. The daemon
//! serves it over the local channel; without a daemon the CLI calls it
//! directly while holding the owner lock.

use std::path::Path;
use std::time::Duration;

use crate::owner::OwnerLock;
use crate::wire::{Envelope, Request, Response, WireSecret};
use crate::{AuditEntry, AuditLog, AuditOutcome, Claims, KeySource, Scope, Vault, VaultError};

/// An open vault with its audit log, owned by this process.
#[derive(Debug)]
pub struct Service {
    vault: Vault,
    audit: AuditLog,
    _owner: OwnerLock,
}

impl Service {
    /// Takes the owner lock of `dir` (waiting up to `wait` for another
    /// owner to finish), then opens the vault.
    pub fn open(dir: &Path, key: &KeySource, wait: Duration) -> Result<Service, VaultError> {
        let owner = OwnerLock::acquire(dir, wait)?;
        let vault = Vault::open(dir, key)?;
        Ok(Service {
            vault,
            audit: AuditLog::new(dir),
            _owner: owner,
        })
    }

    /// Answers one request. Values are audited before they leave, so a
    /// value is never handed out unrecorded.
    pub fn handle(&self, envelope: Envelope) -> Response {
        let Envelope { claims, request } = envelope;
        let claims = Claims::resolve(claims);
        let action = request.action();
        match self.dispatch(&claims, request) {
            Ok(response) => response,
            Err(err) => {
                let usage = matches!(
                    err,
                    VaultError::BadName { .. }
                        | VaultError::BadScope { .. }
                        | VaultError::BadValue(_)
                        | VaultError::Exists { .. }
                        | VaultError::Tie { .. }
                );
                tracing::debug!(action, error = %err, "vault request refused");
                Response::Error {
                    message: err.to_string(),
                    usage,
                }
            }
        }
    }

    fn record(
        &self,
        claims: &Claims,
        action: &str,
        name: &str,
        scope: Option<&Scope>,
        version: Option<u32>,
        outcome: AuditOutcome,
    ) -> Result<(), VaultError> {
        self.audit.append(AuditEntry {
            action: action.to_owned(),
            name: name.to_owned(),
            scope: scope.map(ToString::to_string),
            version,
            actor: claims.clone(),
            outcome,
        })
    }

    fn record_of(
        &self,
        claims: &Claims,
        action: &str,
        record: &crate::RecordInfo,
        outcome: AuditOutcome,
    ) -> Result<(), VaultError> {
        let version = Some(record.version);
        self.record(
            claims,
            action,
            &record.name,
            Some(&record.scope),
            version,
            outcome,
        )
    }

    /// Records a failed change or read, then hands the error back.
    fn refused(
        &self,
        claims: &Claims,
        action: &str,
        name: &str,
        scope: &Scope,
        err: VaultError,
    ) -> VaultError {
        let outcome = match err {
            VaultError::NotFound { .. } => AuditOutcome::NotFound,
            VaultError::Io { .. } | VaultError::RecordTampered { .. } => AuditOutcome::Error,
            _ => AuditOutcome::Refused,
        };
        if let Err(audit) = self.record(claims, action, name, Some(scope), None, outcome) {
            tracing::error!(error = %audit, "cannot append to the audit log");
        }
        err
    }

    fn dispatch(&self, claims: &Claims, request: Request) -> Result<Response, VaultError> {
        let action = request.action();
        match request {
            Request::List => {
                let (records, problems) = self.vault.list()?;
                Ok(Response::Records { records, problems })
            }
            Request::Get { name, scope } => match self.vault.get(&name, &scope) {
                Ok((record, value)) => {
                    self.record_of(claims, action, &record, AuditOutcome::Ok)?;
                    Ok(Response::Value {
                        record,
                        value: WireSecret(value),
                    })
                }
                Err(err) => Err(self.refused(claims, action, &name, &scope, err)),
            },
            Request::Set {
                name,
                scope,
                value,
                ttl_secs,
                description,
            } => {
                let ttl = ttl_secs.map(Duration::from_secs);
                match self
                    .vault
                    .set(&name, &scope, &value.0, ttl, description.as_deref())
                {
                    Ok(record) => {
                        self.changed(claims, action, &record)?;
                        Ok(Response::Record { record })
                    }
                    Err(err) => Err(self.refused(claims, action, &name, &scope, err)),
                }
            }
            Request::Rotate {
                name,
                scope,
                value,
                ttl_secs,
                grace_secs,
            } => {
                let ttl = ttl_secs.map(Duration::from_secs);
                let grace = Duration::from_secs(grace_secs);
                match self.vault.rotate(&name, &scope, &value.0, ttl, grace) {
                    Ok(record) => {
                        self.changed(claims, action, &record)?;
                        Ok(Response::Record { record })
                    }
                    Err(err) => Err(self.refused(claims, action, &name, &scope, err)),
                }
            }
            Request::Remove { name, scope } => match self.vault.remove(&name, &scope) {
                Ok(versions) => {
                    self.record(claims, action, &name, Some(&scope), None, AuditOutcome::Ok)?;
                    Ok(Response::Removed { versions })
                }
                Err(err) => Err(self.refused(claims, action, &name, &scope, err)),
            },
            Request::Select { names } => self.select(claims, names.as_deref()),
            Request::Audit { last } => Ok(Response::AuditLines {
                lines: self.audit.last_lines(last)?,
            }),
            Request::AuditVerify => Ok(Response::Verified {
                lines: self.audit.verify()?.lines,
            }),
        }
    }

    fn changed(
        &self,
        claims: &Claims,
        action: &str,
        record: &crate::RecordInfo,
    ) -> Result<(), VaultError> {
        self.record_of(claims, action, record, AuditOutcome::Ok)
            .map_err(|e| VaultError::Unaudited {
                name: record.name.clone(),
                detail: e.to_string(),
            })
    }

    fn select(&self, claims: &Claims, names: Option<&[String]>) -> Result<Response, VaultError> {
        let selection = self.vault.select(claims, names)?;
        let action = "inject";
        let handed = selection.chosen.iter().map(|(r, _)| (r, AuditOutcome::Ok));
        let expired = selection.expired.iter().map(|r| (r, AuditOutcome::Expired));
        for (record, outcome) in handed.chain(expired) {
            self.record_of(claims, action, record, outcome)?;
        }
        for name in &selection.missing {
            self.record(claims, action, name, None, None, AuditOutcome::NotFound)?;
        }
        Ok(Response::Selection {
            chosen: selection
                .chosen
                .into_iter()
                .map(|(record, value)| (record, WireSecret(value)))
                .collect(),
            expired: selection.expired,
            missing: selection.missing,
            problems: selection.problems,
        })
    }
}
