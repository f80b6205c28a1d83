//! Who a credential is for: `global`, a repository, a workflow (optionally
//! at one ref), or a runner (by name or label). Globs (`*`) allowed in
//! repository and runner patterns.

use std::fmt;
use std::str::FromStr;

use crate::{Claims, VaultError};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    /// `owner/name`, globs allowed (`acme/*`).
    Repo(String),
    /// A workflow file of one repository, optionally at one ref.
    Workflow {
        repo: String,
        path: String,
        git_ref: Option<String>,
    },
    /// A runner name or label, globs allowed.
    Runner(String),
}

impl Scope {
    /// Higher wins. Two scopes of one name with the same specificity that
    /// could match one job are refused at write time.
    pub fn specificity(&self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Runner(p) if has_glob(p) => 1,
            Scope::Runner(_) => 2,
            Scope::Repo(p) if has_glob(p) => 3,
            Scope::Repo(_) => 4,
            Scope::Workflow { git_ref: None, .. } => 5,
            Scope::Workflow { .. } => 6,
        }
    }

    pub fn matches(&self, claims: &Claims) -> bool {
        match self {
            Scope::Global => true,
            Scope::Repo(pattern) => claims
                .repository
                .as_deref()
                .is_some_and(|r| glob(pattern, r)),
            Scope::Runner(pattern) => {
                claims
                    .runner_name
                    .as_deref()
                    .is_some_and(|n| glob(pattern, n))
                    || claims.runner_labels.iter().any(|l| glob(pattern, l))
            }
            Scope::Workflow {
                repo,
                path,
                git_ref,
            } => claims.workflow().is_some_and(|(r, p, at)| {
                r == repo && p == path && git_ref.as_deref().is_none_or(|want| Some(want) == at)
            }),
        }
    }

    /// Whether `self` and `other` could both match one job at the same
    /// specificity (conservative for globs: same kind with a glob ties).
    pub(crate) fn ties_with(&self, other: &Scope) -> bool {
        if self.specificity() != other.specificity() {
            return false;
        }
        match (self, other) {
            (Scope::Repo(a), Scope::Repo(b)) => has_glob(a) || has_glob(b) || a == b,
            // A runner's name and its labels can all match one job.
            (Scope::Runner(_), Scope::Runner(_)) => true,
            _ => self == other,
        }
    }
}

fn has_glob(pattern: &str) -> bool {
    pattern.contains('*')
}

/// `*` matches any run of characters except `/`.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            let stop = text.find('/').unwrap_or(text.len());
            text.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(text.len()))
                .take_while(|&i| i <= stop)
                .any(|i| glob(rest, &text[i..]))
        }
    }
}

fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*'))
}

impl FromStr for Scope {
    type Err = VaultError;

    /// `global`, `repo:OWNER/NAME`, `workflow:OWNER/NAME/.github/workflows/F.yml[@REF]`,
    /// `runner:NAME-OR-LABEL`.
    fn from_str(input: &str) -> Result<Scope, VaultError> {
        let bad = |why: &str| VaultError::BadScope {
            input: input.to_owned(),
            why: why.to_owned(),
        };
        let input_trimmed = input.trim();
        if input_trimmed == "global" {
            return Ok(Scope::Global);
        }
        let (kind, value) = input_trimmed.split_once(':').ok_or_else(|| {
            bad("expected global, repo:OWNER/NAME, workflow:OWNER/NAME/PATH[@REF] or runner:NAME")
        })?;
        match kind {
            "repo" => {
                let (owner, name) = value
                    .split_once('/')
                    .ok_or_else(|| bad("expected OWNER/NAME"))?;
                if !valid_part(owner) || !valid_part(name) {
                    return Err(bad(
                        "OWNER and NAME may hold letters, digits, - _ . and * only",
                    ));
                }
                Ok(Scope::Repo(value.to_owned()))
            }
            "runner" => {
                if !valid_part(value) {
                    return Err(bad(
                        "a runner name or label: letters, digits, - _ . and * only",
                    ));
                }
                Ok(Scope::Runner(value.to_owned()))
            }
            "workflow" => {
                let (file, git_ref) = match value.split_once('@') {
                    Some((f, r)) if !r.is_empty() => (f, Some(r.to_owned())),
                    Some(_) => return Err(bad("an empty ref after @")),
                    None => (value, None),
                };
                let mut parts = file.splitn(3, '/');
                let (Some(owner), Some(name), Some(path)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad("expected OWNER/NAME/.github/workflows/FILE.yml"));
                };
                if !valid_part(owner)
                    || !valid_part(name)
                    || owner.contains('*')
                    || name.contains('*')
                {
                    return Err(bad("OWNER and NAME of a workflow are exact (no globs)"));
                }
                if !path.starts_with(".github/workflows/") || path.contains("..") {
                    return Err(bad("the workflow path starts with .github/workflows/"));
                }
                // Scopes are shown in lists, summaries and errors: printable only.
                let printable = |s: &str| !s.chars().any(|c| c.is_control() || c.is_whitespace());
                if !printable(path) || !git_ref.as_deref().is_none_or(printable) {
                    return Err(bad(
                        "no spaces or control characters in a workflow path or ref",
                    ));
                }
                Ok(Scope::Workflow {
                    repo: format!("{owner}/{name}"),
                    path: path.to_owned(),
                    git_ref,
                })
            }
            _ => Err(bad("the kind is global, repo, workflow or runner")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Repo(p) => write!(f, "repo:{p}"),
            Scope::Runner(p) => write!(f, "runner:{p}"),
            Scope::Workflow {
                repo,
                path,
                git_ref: None,
            } => write!(f, "workflow:{repo}/{path}"),
            Scope::Workflow {
                repo,
                path,
                git_ref: Some(r),
            } => write!(f, "workflow:{repo}/{path}@{r}"),
        }
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_a_segment() {
        assert!(glob("acme/*", "acme/widgets"));
        assert!(!glob("acme/*", "acme/widgets/x"));
        assert!(!glob("acme/*", "other/widgets"));
        assert!(glob("gpu-*", "gpu-large"));
        assert!(glob("*", "anything"));
        assert!(!glob("a*c", "abd"));
    }

    #[test]
    fn scopes_round_trip_and_bad_ones_say_why() {
        for text in [
            "global",
            "repo:acme/widgets",
            "repo:acme/*",
            "runner:gpu-*",
            "workflow:acme/widgets/.github/workflows/ci.yml",
            "workflow:acme/widgets/.github/workflows/ci.yml@refs/heads/main",
        ] {
            let scope: Scope = text.parse().unwrap();
            assert_eq!(scope.to_string(), text);
        }
        for bad in [
            "repo:acme",
            "workflow:acme/w/../../x",
            "planet:mars",
            "repo:a b/c",
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }
}
