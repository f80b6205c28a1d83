//! A job on an emulated runner: a real git workspace, RUNNER_TEMP, the
//! runner's environment variables, and composite actions run step by step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// `action.yml`, as much as the runner reads of a composite action.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Action {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub branding: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub inputs: BTreeMap<String, Input>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Output>,
    pub runs: Runs,
}

#[derive(Debug, Deserialize)]
pub struct Input {
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Output {
    pub description: Option<String>,
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct Runs {
    pub using: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub name: Option<String>,
    pub id: Option<String>,
    pub shell: Option<String>,
    pub run: Option<String>,
    pub uses: Option<String>,
    #[serde(rename = "if")]
    pub condition: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Action {
    pub fn load(dir: &Path) -> Action {
        let text = std::fs::read_to_string(dir.join("action.yml")).unwrap();
        serde_yaml::from_str(&text).unwrap()
    }
}

/// What a step left behind.
#[derive(Debug, Default)]
pub struct StepRun {
    pub id: Option<String>,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub summary: String,
}

/// One `uses:` of an action.
#[derive(Debug, Default)]
pub struct ActionRun {
    pub steps: Vec<StepRun>,
    pub outputs: BTreeMap<String, String>,
    pub success: bool,
}

impl ActionRun {
    /// Everything the steps printed on stdout, in order.
    pub fn stdout(&self) -> String {
        self.steps.iter().map(|s| s.stdout.as_str()).collect()
    }
    pub fn stderr(&self) -> String {
        self.steps.iter().map(|s| s.stderr.as_str()).collect()
    }
    /// Values registered with `::add-mask::`.
    pub fn masks(&self) -> Vec<String> {
        self.stdout()
            .lines()
            .filter_map(|l| l.strip_prefix("::add-mask::"))
            .map(str::to_owned)
            .collect()
    }
    /// What the steps wrote to GITHUB_ENV, last value winning.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for s in &self.steps {
            env.extend(s.env.clone());
        }
        env
    }
    pub fn output(&self, name: &str) -> &str {
        self.outputs.get(name).map_or("", String::as_str)
    }
    pub fn describe(&self) -> String {
        format!(
            "success={} outputs={:?}\n--- stdout\n{}--- stderr\n{}",
            self.success,
            self.outputs,
            self.stdout(),
            self.stderr()
        )
    }
}

/// A job: its workspace (a git repository with one commit), RUNNER_TEMP,
/// and the environment GITHUB_ENV accumulated over its steps.
pub struct Job {
    _root: tempfile::TempDir,
    pub workspace: PathBuf,
    pub runner_temp: PathBuf,
    pub sha: String,
    /// Variables set through GITHUB_ENV by earlier steps.
    pub env: BTreeMap<String, String>,
    /// Variables of the runner's own (GITHUB_*, RUNNER_*, CI, PATH, HOME).
    pub runner: BTreeMap<String, String>,
    /// Prefix for every step's bash, e.g. `ip netns exec NS` for a job on
    /// another "host".
    pub wrapper: Vec<String>,
    step_count: usize,
}

impl Job {
    pub fn new(runner_name: &str) -> Job {
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("work/gadgets/gadgets");
        let runner_temp = root.path().join("work/_temp");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::create_dir_all(runner_temp.join("_runner_file_commands")).unwrap();
        std::fs::write(workspace.join("main.rs"), "fn main() {}\n").unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
                .args(args)
                .current_dir(&workspace)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "initial"]);
        let sha = git(&["rev-parse", "HEAD"]);
        let mut runner = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            runner.insert(k.to_owned(), v.to_owned());
        };
        set("CI", "true");
        set("GITHUB_ACTIONS", "true");
        set("HOME", &root.path().display().to_string());
        set("PATH", &std::env::var("PATH").unwrap_or_default());
        set("GITHUB_WORKSPACE", &workspace.display().to_string());
        set("RUNNER_TEMP", &runner_temp.display().to_string());
        set("RUNNER_NAME", runner_name);
        set("RUNNER_OS", "Linux");
        set("RUNNER_ARCH", "X64");
        set("GITHUB_REPOSITORY", "acme/gadgets");
        set("GITHUB_REPOSITORY_OWNER", "acme");
        set("GITHUB_REF", "refs/heads/main");
        set("GITHUB_REF_NAME", "main");
        set("GITHUB_SHA", &sha);
        set("GITHUB_EVENT_NAME", "push");
        set("GITHUB_WORKFLOW", "ci");
        set(
            "GITHUB_WORKFLOW_REF",
            "acme/gadgets/.github/workflows/ci.yml@refs/heads/main",
        );
        set("GITHUB_RUN_ID", "4242");
        set("GITHUB_RUN_ATTEMPT", "1");
        set("GITHUB_JOB", "build");
        set("GITHUB_ACTOR", "alice");
        set("GITHUB_SERVER_URL", "https://github.com");
        set("GITHUB_API_URL", "https://api.github.com");
        Job {
            _root: root,
            workspace,
            runner_temp,
            sha,
            env: BTreeMap::new(),
            runner,
            wrapper: Vec::new(),
            step_count: 0,
        }
    }

    /// `uses: ./actions/<name>` with `with`.
    pub fn uses<V: AsRef<str>>(&mut self, name: &str, with: &[(&str, V)]) -> ActionRun {
        let dir = super::repo().join("actions").join(name);
        let action = Action::load(&dir);
        assert_eq!(action.runs.using, "composite", "{name}");
        let mut inputs = BTreeMap::new();
        for (key, input) in &action.inputs {
            inputs.insert(key.clone(), input.default.clone().unwrap_or_default());
        }
        for (key, value) in with {
            assert!(
                action.inputs.contains_key(*key),
                "{name} has no input {key:?} (the runner would warn and ignore it)"
            );
            inputs.insert((*key).to_owned(), value.as_ref().to_owned());
        }
        let mut run = ActionRun::default();
        let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for step in &action.runs.steps {
            assert!(
                step.uses.is_none() && step.condition.is_none(),
                "unsupported step in {name}"
            );
            assert_eq!(
                step.shell.as_deref(),
                Some("bash"),
                "{name}: every step is bash"
            );
            let script = step.run.as_deref().expect("a run step");
            assert!(
                !script.contains("${{"),
                "{name}: expressions in a script (injection)"
            );
            let ctx = self.context(&inputs, &dir, &step_outputs);
            let env: BTreeMap<String, String> = step
                .env
                .iter()
                .map(|(k, v)| (k.clone(), ctx.resolve(v)))
                .collect();
            let result = self.run_step(step.id.clone(), script, &env, Some(&dir));
            let ok = result.success;
            if let Some(id) = &step.id {
                step_outputs.insert(id.clone(), result.outputs.clone());
            }
            run.steps.push(result);
            if !ok {
                return run;
            }
        }
        let ctx = self.context(&inputs, &dir, &step_outputs);
        for (key, output) in &action.outputs {
            run.outputs.insert(key.clone(), ctx.resolve(&output.value));
        }
        run.success = true;
        run
    }

    /// A plain `run:` step of the workflow (`shell: bash`).
    pub fn run(&mut self, script: &str, env: &[(&str, &str)]) -> StepRun {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.run_step(None, script, &env, None)
    }

    /// What a step's expressions see.
    fn context<'a>(
        &'a self,
        inputs: &'a BTreeMap<String, String>,
        action_dir: &Path,
        steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    ) -> Context<'a> {
        Context {
            inputs,
            github: self.github_context(action_dir),
            env: &self.env,
            steps,
            runner_temp: self.runner_temp.display().to_string(),
        }
    }

    fn github_context(&self, action_dir: &Path) -> BTreeMap<String, String> {
        let mut github = BTreeMap::new();
        github.insert("action_path".into(), action_dir.display().to_string());
        github.insert("api_url".into(), self.runner["GITHUB_API_URL"].clone());
        github.insert("workspace".into(), self.workspace.display().to_string());
        github.insert("sha".into(), self.sha.clone());
        github.insert("repository".into(), "acme/gadgets".into());
        github.insert("event_name".into(), "push".into());
        github
    }

    fn run_step(
        &mut self,
        id: Option<String>,
        script: &str,
        step_env: &BTreeMap<String, String>,
        action_dir: Option<&Path>,
    ) -> StepRun {
        self.step_count += 1;
        let n = self.step_count;
        let commands = self.runner_temp.join("_runner_file_commands");
        let files = [
            ("GITHUB_ENV", commands.join(format!("set_env_{n}"))),
            ("GITHUB_OUTPUT", commands.join(format!("set_output_{n}"))),
            (
                "GITHUB_STEP_SUMMARY",
                commands.join(format!("step_summary_{n}")),
            ),
            ("GITHUB_PATH", commands.join(format!("add_path_{n}"))),
            ("GITHUB_STATE", commands.join(format!("save_state_{n}"))),
        ];
        let script_path = self.runner_temp.join(format!("step_{n}.sh"));
        std::fs::write(&script_path, script).unwrap();
        for (_, file) in &files {
            std::fs::write(file, "").unwrap();
        }
        // Job env first, then the runner's own variables (GITHUB_* and
        // RUNNER_* cannot be overridden through GITHUB_ENV), then the step's.
        let mut env = self.env.clone();
        env.extend(self.runner.clone());
        for (name, file) in &files {
            env.insert((*name).to_owned(), file.display().to_string());
        }
        if let Some(dir) = action_dir {
            env.insert("GITHUB_ACTION_PATH".into(), dir.display().to_string());
        }
        env.extend(step_env.clone());
        let mut argv: Vec<String> = self.wrapper.clone();
        argv.extend(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail"]
                .iter()
                .map(|s| (*s).to_owned()),
        );
        argv.push(script_path.display().to_string());
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(&env)
            .current_dir(&self.workspace)
            .output()
            .unwrap();
        let read = |name: &str| {
            let file = &files.iter().find(|(n, _)| *n == name).unwrap().1;
            std::fs::read_to_string(file).unwrap()
        };
        let parse = |name: &str| -> BTreeMap<String, String> {
            ghcache_actions::parse_file_commands(&read(name))
                .unwrap_or_else(|e| panic!("{name} is not what the runner parses: {e}"))
                .into_iter()
                .map(|e| (e.name, e.value))
                .collect()
        };
        let new_env = parse("GITHUB_ENV");
        for (k, v) in &new_env {
            assert_ne!(k, "NODE_OPTIONS", "the runner refuses NODE_OPTIONS");
            self.env.insert(k.clone(), v.clone());
        }
        StepRun {
            id,
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: parse("GITHUB_OUTPUT"),
            env: new_env,
            summary: read("GITHUB_STEP_SUMMARY"),
        }
    }
}

/// The expression contexts a composite action's step can see.
struct Context<'a> {
    inputs: &'a BTreeMap<String, String>,
    github: BTreeMap<String, String>,
    env: &'a BTreeMap<String, String>,
    steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    runner_temp: String,
}

impl Context<'_> {
    /// Replaces every `${{ expr }}` in `text`.
    fn resolve(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed ${{") + start;
            out.push_str(&self.eval(rest[start + 3..end].trim()));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// `a || b || …`: the first truthy (non-empty) operand, else the last.
    fn eval(&self, expr: &str) -> String {
        let operands: Vec<String> = expr.split("||").map(|t| self.term(t.trim())).collect();
        operands
            .iter()
            .find(|v| !v.is_empty())
            .or(operands.last())
            .cloned()
            .unwrap_or_default()
    }

    fn term(&self, term: &str) -> String {
        if let Some(literal) = term.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            return literal.replace("''", "'");
        }
        let parts: Vec<&str> = term.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self
                .inputs
                .get(*name)
                .unwrap_or_else(|| panic!("`{term}`: the action declares no such input"))
                .clone(),
            ["github", name] => self
                .github
                .get(*name)
                .unwrap_or_else(|| panic!("`{term}` is not emulated"))
                .clone(),
            ["env", name] => self.env.get(*name).cloned().unwrap_or_default(),
            ["runner", "temp"] => self.runner_temp.clone(),
            ["steps", id, "outputs", name] => self
                .steps
                .get(*id)
                .and_then(|o| o.get(*name))
                .cloned()
                .unwrap_or_default(),
            _ => panic!("expression `{term}` is not supported by this emulation"),
        }
    }
}
