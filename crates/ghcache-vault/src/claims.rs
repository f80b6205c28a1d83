//! Who is asking. The job presents claims read from its environment
//! (`from_env`); the vault believes what [`Claims::resolve`] says, and only
//! that: today the presented claims, unverified (policy, not a boundary). A
//! later change verifies them from the job's OIDC token inside `resolve`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `GITHUB_REPOSITORY`, `owner/name`.
    pub repository: Option<String>,
    /// `GITHUB_WORKFLOW_REF`: `owner/name/.github/workflows/f.yml@refs/heads/main`.
    pub workflow_ref: Option<String>,
    /// `GITHUB_REF`: the ref a workflow without `@REF` in its workflow ref ran at.
    #[serde(default)]
    pub git_ref: Option<String>,
    pub runner_name: Option<String>,
    /// The `labels` input (the runner does not export its labels).
    pub runner_labels: Vec<String>,
    pub run_id: Option<String>,
    /// Whether these claims were verified (false: read from the environment).
    pub verified: bool,
}

impl Claims {
    /// Claims read from a job's environment (`lookup` is `std::env::var`
    /// in the binary), unverified.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>, labels: &[String]) -> Claims {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Claims {
            repository: get("GITHUB_REPOSITORY"),
            workflow_ref: get("GITHUB_WORKFLOW_REF"),
            git_ref: get("GITHUB_REF"),
            runner_name: get("RUNNER_NAME"),
            runner_labels: labels.to_vec(),
            run_id: get("GITHUB_RUN_ID"),
            verified: false,
        }
    }

    /// What the vault believes of `presented` (the one place claims are
    /// resolved): nothing verifies them yet, whatever the caller says.
    pub fn resolve(presented: Claims) -> Claims {
        Claims {
            verified: false,
            ..presented
        }
    }

    /// The scopes a job with these claims can match, for error messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(repo) = &self.repository {
            parts.push(format!("repo:{repo}"));
        }
        if let Some(workflow) = &self.workflow_ref {
            parts.push(format!("workflow:{workflow}"));
        }
        if let Some(runner) = &self.runner_name {
            parts.push(format!("runner:{runner}"));
        }
        for label in &self.runner_labels {
            parts.push(format!("runner:{label}"));
        }
        parts.push("global".into());
        let verified = if self.verified {
            "verified"
        } else {
            "from the job's environment, unverified"
        };
        format!("{} — claims {verified}", parts.join(", "))
    }

    /// (repository, workflow path, ref) of `workflow_ref`.
    pub(crate) fn workflow(&self) -> Option<(&str, &str, Option<&str>)> {
        let full = self.workflow_ref.as_deref()?;
        let (file, git_ref) = match full.split_once('@') {
            Some((f, r)) => (f, Some(r)),
            None => (full, self.git_ref.as_deref()),
        };
        let slash = file.find('/')?;
        let second = file[slash + 1..].find('/')? + slash + 1;
        Some((&file[..second], &file[second + 1..], git_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (workflow ref, GITHUB_REF) → the ref the workflow scope compares.
    #[test]
    fn workflow_ref_splits_into_repository_path_and_ref() {
        for (workflow_ref, git_ref, want) in [
            ("ci.yml@refs/heads/main", None, Some("refs/heads/main")),
            (
                "ci.yml@refs/heads/main",
                Some("refs/tags/v1"),
                Some("refs/heads/main"),
            ),
            ("ci.yml", Some("refs/tags/v1"), Some("refs/tags/v1")),
            ("ci.yml", None, None),
        ] {
            let claims = Claims {
                workflow_ref: Some(format!("acme/widgets/.github/workflows/{workflow_ref}")),
                git_ref: git_ref.map(str::to_owned),
                ..Claims::default()
            };
            assert_eq!(
                claims.workflow(),
                Some(("acme/widgets", ".github/workflows/ci.yml", want))
            );
        }
    }

    #[test]
    fn a_caller_cannot_declare_its_claims_verified() {
        let presented = Claims {
            repository: Some("acme/widgets".into()),
            verified: true,
            ..Claims::default()
        };
        let resolved = Claims::resolve(presented);
        assert!(!resolved.verified);
        assert_eq!(resolved.repository.as_deref(), Some("acme/widgets"));
    }
}
