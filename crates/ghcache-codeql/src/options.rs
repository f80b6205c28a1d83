//! The check's options from the action's inputs: their defaults and their
//! rules, so every front end (the CLI, a test) reads them alike.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::MAX_CANDIDATES;
use crate::decide::{CheckOptions, MAX_AGE_LIMITS};

/// The action's inputs as text; `None` or blank means "not given".
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckInputs<'a> {
    pub max_age: Option<&'a str>,
    pub force: Option<&'a str>,
    pub max_ancestors: Option<&'a str>,
    pub never_skip_events: Option<&'a str>,
    pub event: Option<&'a str>,
}

/// An input that cannot be read, named as the action names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input}: {problem}")]
pub struct InputError {
    pub input: &'static str,
    pub problem: String,
}

/// How old an analysis may be reused when `max-age` is not given.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// How many first parents are searched when `max-ancestors` is not given.
pub const DEFAULT_MAX_ANCESTORS: usize = 50;
/// Events that scan whatever is stored, when `never-skip-events` is not
/// given: a scheduled or manual run asks for a fresh analysis.
pub const DEFAULT_NEVER_SKIP_EVENTS: [&str; 2] = ["schedule", "workflow_dispatch"];

impl CheckOptions {
    /// Reads the inputs, each given or defaulted; `source_root` and
    /// `sarif_dir` are where the job's checkout and SARIF files are.
    pub fn from_inputs(
        inputs: &CheckInputs<'_>,
        source_root: PathBuf,
        sarif_dir: PathBuf,
    ) -> Result<CheckOptions, InputError> {
        let max_age = match given(inputs.max_age) {
            Some(text) => {
                ghcache_core::parse_duration(text, MAX_AGE_LIMITS).map_err(|e| InputError {
                    input: "max-age",
                    problem: e.to_string(),
                })?
            }
            None => DEFAULT_MAX_AGE,
        };
        let force = match given(inputs.force) {
            None => false,
            Some(text) => ghcache_actions::parse_bool(text).ok_or_else(|| InputError {
                input: "force",
                problem: format!("`{text}` is not true or false"),
            })?,
        };
        let max_ancestors = match given(inputs.max_ancestors) {
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n < MAX_CANDIDATES)
                .ok_or_else(|| InputError {
                    input: "max-ancestors",
                    problem: format!(
                        "`{text}` is not a whole number from 0 to {}",
                        MAX_CANDIDATES - 1
                    ),
                })?,
            None => DEFAULT_MAX_ANCESTORS,
        };
        let never_skip_events = match given(inputs.never_skip_events) {
            Some(text) => ghcache_actions::split_list(text),
            None => DEFAULT_NEVER_SKIP_EVENTS.map(String::from).to_vec(),
        };
        Ok(CheckOptions {
            source_root,
            sarif_dir,
            max_age,
            force,
            event: given(inputs.event).unwrap_or("").to_owned(),
            never_skip_events,
            max_ancestors,
        })
    }
}

/// A trimmed input, or `None` when it is absent or blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(inputs: CheckInputs<'_>) -> Result<CheckOptions, InputError> {
        CheckOptions::from_inputs(&inputs, PathBuf::from("."), PathBuf::from("/tmp"))
    }

    #[test]
    fn blank_inputs_take_the_defaults() {
        let blank = CheckInputs {
            max_age: Some(" "),
            force: Some(""),
            ..CheckInputs::default()
        };
        let options = read(blank).unwrap();
        assert_eq!(options.max_age, DEFAULT_MAX_AGE);
        assert!(!options.force);
        assert_eq!(options.max_ancestors, DEFAULT_MAX_ANCESTORS);
        assert_eq!(options.never_skip_events, ["schedule", "workflow_dispatch"]);
        assert_eq!(options.event, "");
    }

    #[test]
    fn given_inputs_are_read_and_bad_ones_named() {
        let options = read(CheckInputs {
            max_age: Some("2d"),
            force: Some("true"),
            max_ancestors: Some("0"),
            never_skip_events: Some("push, schedule"),
            event: Some("push"),
        })
        .unwrap();
        assert_eq!(options.max_age, Duration::from_secs(2 * 86_400));
        assert!(options.force);
        assert_eq!(options.max_ancestors, 0);
        assert_eq!(options.never_skip_events, ["push", "schedule"]);
        assert_eq!(options.event, "push");
        let bad = |inputs: CheckInputs<'static>| read(inputs).unwrap_err().input;
        assert_eq!(
            bad(CheckInputs {
                max_age: Some("forever"),
                ..Default::default()
            }),
            "max-age"
        );
        assert_eq!(
            bad(CheckInputs {
                force: Some("maybe"),
                ..Default::default()
            }),
            "force"
        );
        let too_many = CheckInputs {
            max_ancestors: Some("1001"),
            ..Default::default()
        };
        assert!(
            read(too_many)
                .unwrap_err()
                .to_string()
                .contains("from 0 to 1000")
        );
    }
}
