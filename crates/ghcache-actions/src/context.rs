//! The job context: what the runner tells a step through its environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything a step learns from the runner's environment.
///
/// Built from an iterator of variables so tests never touch the process
/// environment. Tokens (`GITHUB_TOKEN`, inputs holding secrets) are kept only
/// as inputs and never appear in `Debug` output of this type.
#[derive(Clone, Default)]
pub struct JobContext {
    /// `GITHUB_ACTIONS=true`: we run inside a workflow step.
    pub in_actions: bool,
    pub workspace: Option<PathBuf>,
    pub repository: Option<String>,
    pub repository_owner: Option<String>,
    pub run_id: Option<String>,
    pub run_attempt: Option<String>,
    pub job: Option<String>,
    pub sha: Option<String>,
    pub git_ref: Option<String>,
    pub event_name: Option<String>,
    pub actor: Option<String>,
    pub api_url: Option<String>,
    pub server_url: Option<String>,
    pub runner_name: Option<String>,
    pub runner_os: Option<String>,
    pub runner_arch: Option<String>,
    pub runner_temp: Option<PathBuf>,
    pub runner_tool_cache: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub output_file: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub path_file: Option<PathBuf>,
    pub step_summary_file: Option<PathBuf>,
    /// Inputs keyed by the runner's variable suffix (`INPUT_CACHE-DIR` → `CACHE-DIR`).
    inputs: BTreeMap<String, String>,
    /// Action state saved by an earlier step of the same action (`STATE_*`).
    states: BTreeMap<String, String>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Input values may be secrets: show names only.
        f.debug_struct("JobContext")
            .field("in_actions", &self.in_actions)
            .field("repository", &self.repository)
            .field("run_id", &self.run_id)
            .field("sha", &self.sha)
            .field("git_ref", &self.git_ref)
            .field("runner_os", &self.runner_os)
            .field("runner_arch", &self.runner_arch)
            .field("inputs", &self.inputs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A boolean in the YAML 1.2 core schema spellings `@actions/core`'s
/// `getBooleanInput` accepts; anything else is `None`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A list input: comma- or newline-separated, items trimmed, empties dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl JobContext {
    /// Reads the context of the current process.
    pub fn from_process_env() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads the context from explicit variables (tests, subprocess set-ups).
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut ctx = JobContext::default();
        for (key, value) in vars {
            let (key, value) = (key.into(), value.into());
            if let Some(name) = key.strip_prefix("INPUT_") {
                ctx.inputs.insert(name.to_owned(), value);
                continue;
            }
            if let Some(name) = key.strip_prefix("STATE_") {
                ctx.states.insert(name.to_owned(), value);
                continue;
            }
            let text = || non_empty(&value);
            let path = || non_empty(&value).map(PathBuf::from);
            match key.as_str() {
                "GITHUB_ACTIONS" => ctx.in_actions = value == "true",
                "GITHUB_WORKSPACE" => ctx.workspace = path(),
                "GITHUB_REPOSITORY" => ctx.repository = text(),
                "GITHUB_REPOSITORY_OWNER" => ctx.repository_owner = text(),
                "GITHUB_RUN_ID" => ctx.run_id = text(),
                "GITHUB_RUN_ATTEMPT" => ctx.run_attempt = text(),
                "GITHUB_JOB" => ctx.job = text(),
                "GITHUB_SHA" => ctx.sha = text(),
                "GITHUB_REF" => ctx.git_ref = text(),
                "GITHUB_EVENT_NAME" => ctx.event_name = text(),
                "GITHUB_ACTOR" => ctx.actor = text(),
                "GITHUB_API_URL" => ctx.api_url = text(),
                "GITHUB_SERVER_URL" => ctx.server_url = text(),
                "RUNNER_NAME" => ctx.runner_name = text(),
                "RUNNER_OS" => ctx.runner_os = text(),
                "RUNNER_ARCH" => ctx.runner_arch = text(),
                "RUNNER_TEMP" => ctx.runner_temp = path(),
                "RUNNER_TOOL_CACHE" => ctx.runner_tool_cache = path(),
                "GITHUB_ENV" => ctx.env_file = path(),
                "GITHUB_OUTPUT" => ctx.output_file = path(),
                "GITHUB_STATE" => ctx.state_file = path(),
                "GITHUB_PATH" => ctx.path_file = path(),
                "GITHUB_STEP_SUMMARY" => ctx.step_summary_file = path(),
                _ => {}
            }
        }
        ctx
    }

    /// An action input, as `@actions/core`'s `getInput`: the runner exports
    /// `INPUT_<NAME>` with spaces replaced by `_` and upper-cased, hyphens
    /// kept. Values are trimmed; an empty value is `None`.
    pub fn input(&self, name: &str) -> Option<&str> {
        let key = name.replace(' ', "_").to_uppercase();
        self.inputs
            .get(&key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A boolean input in the YAML 1.2 core schema spellings the toolkit accepts.
    pub fn input_bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.input(name) {
            None => Ok(None),
            Some(text) => parse_bool(text).map(Some).ok_or_else(|| {
                format!(
                    "input `{name}` is {text:?}: expected one of true, True, TRUE, false, False, FALSE"
                )
            }),
        }
    }

    /// Names of all inputs the runner passed (upper-cased, as exported).
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.keys().map(String::as_str)
    }

    /// State saved with `GITHUB_STATE` by an earlier step of this action.
    pub fn state(&self, name: &str) -> Option<&str> {
        self.states.get(name).map(String::as_str)
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_keep_hyphens_and_trim() {
        let ctx = JobContext::from_vars([
            ("GITHUB_ACTIONS", "true"),
            ("INPUT_CACHE-DIR", "  /tmp/x  "),
            ("INPUT_MY_INPUT", "v"),
            ("INPUT_EMPTY", "   "),
            ("GITHUB_REPOSITORY", "acme/widgets"),
            ("GITHUB_ENV", "/tmp/env"),
        ]);
        assert!(ctx.in_actions);
        assert_eq!(ctx.input("cache-dir"), Some("/tmp/x"));
        assert_eq!(ctx.input("my input"), Some("v"));
        assert_eq!(ctx.input("cache_dir"), None, "hyphen and underscore differ");
        assert_eq!(ctx.input("empty"), None);
        assert_eq!(ctx.repository.as_deref(), Some("acme/widgets"));
        assert_eq!(ctx.env_file, Some(PathBuf::from("/tmp/env")));
    }

    #[test]
    fn bool_inputs_follow_the_toolkit() {
        let ctx = JobContext::from_vars([("INPUT_A", "True"), ("INPUT_B", "yes")]);
        assert_eq!(ctx.input_bool("a"), Ok(Some(true)));
        assert!(ctx.input_bool("b").unwrap_err().contains("expected one of"));
        assert_eq!(ctx.input_bool("c"), Ok(None));
    }

    #[test]
    fn debug_never_shows_input_values() {
        let ctx = JobContext::from_vars([("INPUT_TOKEN", "ghp_supersecret")]);
        let shown = format!("{ctx:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("TOKEN"));
    }
}
