//! The actions, the examples and the workflows, checked without Docker:
//! the README's tables match each action.yml, workflows pass only inputs an
//! action declares, every input is documented, defaulted and used, scripts
//! never contain expressions, the default image is this release, and the
//! example configuration files load.
#![allow(clippy::unwrap_used)]

mod actions_support;
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use actions_support::repo;
use actions_support::runner::Action;

const ACTIONS: [&str; 3] = [
    "setup-github-cache",
    "setup-codeql-cache",
    "inject-credentials",
];

fn action(name: &str) -> Action {
    Action::load(&repo().join("actions").join(name))
}

/// The rows of the README's tables under "### `name`": (first cell, rest).
fn readme_rows(readme: &str, name: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let heading = format!("### `{name}`");
    let start = readme
        .find(&heading)
        .unwrap_or_else(|| panic!("README has no {heading}"));
    let body = &readme[start + heading.len()..];
    let end = body.find("\n#").unwrap_or(body.len());
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    let mut table = None;
    for line in body[..end].lines() {
        if line.starts_with("| input |") {
            table = Some(&mut inputs);
        } else if line.starts_with("| output |") {
            table = Some(&mut outputs);
        } else if line.starts_with("|---") {
        } else if line.starts_with('|') {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            table.as_mut().expect("a row outside a table").push(cells);
        } else {
            table = None;
        }
    }
    (inputs, outputs)
}

/// Table rows keyed by their first cell (a repeated row is an error).
fn by_name(rows: Vec<Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for row in rows {
        let name = row[0].clone();
        assert!(map.insert(name.clone(), row).is_none(), "{name} twice");
    }
    map
}

#[test]
fn the_readme_documents_every_input_and_output_as_action_yml_declares_it() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for name in ACTIONS {
        let action = action(name);
        let (inputs, outputs) = readme_rows(&readme, name);
        let expected: Vec<Vec<String>> = action
            .inputs
            .iter()
            .map(|(k, i)| {
                let default = i.default.clone().unwrap_or_default();
                vec![
                    format!("`{k}`"),
                    if default.is_empty() {
                        String::new()
                    } else {
                        format!("`{default}`")
                    },
                    i.description.clone().unwrap_or_default().trim().to_owned(),
                ]
            })
            .collect();
        assert_eq!(
            by_name(inputs),
            by_name(expected),
            "README inputs of {name}"
        );
        let expected: Vec<Vec<String>> = action
            .outputs
            .iter()
            .map(|(k, o)| {
                vec![
                    format!("`{k}`"),
                    o.description.clone().unwrap_or_default().trim().to_owned(),
                ]
            })
            .collect();
        assert_eq!(
            by_name(outputs),
            by_name(expected),
            "README outputs of {name}"
        );
    }
}

#[test]
fn every_input_is_described_defaulted_and_reaches_a_step_through_env() {
    for name in ACTIONS {
        let action = action(name);
        assert!(
            !action.name.is_empty() && !action.description.is_empty(),
            "{name}"
        );
        let branding = action
            .branding
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has no branding"));
        assert!(
            branding.contains_key("icon") && branding.contains_key("color"),
            "{name}"
        );
        let env_text: String = action
            .runs
            .steps
            .iter()
            .flat_map(|s| s.env.values())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        for (key, input) in &action.inputs {
            assert!(
                input
                    .description
                    .as_deref()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{name}.{key}: no description"
            );
            assert!(input.default.is_some(), "{name}.{key}: no default");
            assert!(
                env_text.contains(&format!("inputs.{key} "))
                    || env_text.contains(&format!("inputs.{key}}}")),
                "{name}.{key} reaches no step"
            );
        }
        for (key, output) in &action.outputs {
            assert!(
                output
                    .description
                    .as_deref()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{name} output {key}"
            );
        }
        for step in &action.runs.steps {
            assert_eq!(step.shell.as_deref(), Some("bash"), "{name}");
            let run = step.run.as_deref().unwrap_or_default();
            assert!(
                !run.contains("${{"),
                "{name}: an expression in a script is a script injection"
            );
            for value in step.env.values() {
                for (at, _) in value.match_indices("inputs.") {
                    let rest = &value[at + "inputs.".len()..];
                    let input: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    assert!(
                        action.inputs.contains_key(&input),
                        "{name} uses undeclared input {input}"
                    );
                }
            }
        }
    }
}

/// `uses:` of our actions in a workflow: (action name, `with` keys).
fn local_uses(workflow: &serde_yaml::Value) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let Some(jobs) = workflow.get("jobs").and_then(|j| j.as_mapping()) else {
        return found;
    };
    for job in jobs.values() {
        let Some(steps) = job.get("steps").and_then(|s| s.as_sequence()) else {
            continue;
        };
        for step in steps {
            let Some(uses) = step.get("uses").and_then(|u| u.as_str()) else {
                continue;
            };
            let path = uses
                .strip_prefix("./actions/")
                .or_else(|| uses.strip_prefix("ghcache/ghcache/actions/"));
            if let Some(path) = path {
                let name = path
                    .split('@')
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_owned();
                let with = step
                    .get("with")
                    .and_then(|w| w.as_mapping())
                    .map(|m| {
                        m.keys()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                found.push((name, with));
            }
        }
    }
    found
}

#[test]
fn workflows_pass_only_inputs_the_actions_declare() {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in [".github/workflows", "examples"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml")
                && path.file_name().is_some_and(|n| n != "docker-compose.yml")
            {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for file in &files {
        let workflow: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for (name, with) in local_uses(&workflow) {
            let action = action(&name);
            for key in &with {
                assert!(
                    action.inputs.contains_key(key),
                    "{}: {name} has no input {key:?}",
                    file.display()
                );
            }
            for (key, input) in &action.inputs {
                assert!(
                    !input.required
                        || input.default.as_deref().is_some_and(|d| !d.is_empty())
                        || with.contains(key),
                    "{}: {name} needs {key}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "only {checked} uses of our actions found in {files:?}"
    );
}

#[test]
fn the_default_image_is_this_release_everywhere() {
    let expected = format!("ghcr.io/ghcache/ghcache:{}", env!("CARGO_PKG_VERSION"));
    let setup = action("setup-github-cache");
    assert_eq!(
        setup.inputs["image"].default.as_deref(),
        Some(expected.as_str())
    );
    let common = std::fs::read_to_string(repo().join("actions/lib/common.sh")).unwrap();
    assert!(
        common.contains(&format!("GHCACHE_DEFAULT_IMAGE={expected}\n")),
        "actions/lib/common.sh"
    );
    let compose = std::fs::read_to_string(repo().join("examples/docker-compose.yml")).unwrap();
    assert!(
        compose.contains(&format!("image: {expected}\n")),
        "examples/docker-compose.yml"
    );
}

#[test]
fn the_example_configuration_files_load_without_warnings() {
    for file in [
        "examples/.github/cache-config.yml",
        "examples/.github/p2p-config.yml",
    ] {
        let path = repo().join(file);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghcache"))
            .arg("--config")
            .arg(&path)
            .args(["config", "show", "--json"])
            .env_clear()
            .env("HOME", Path::new(env!("CARGO_MANIFEST_DIR")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["warnings"], serde_json::json!([]), "{file}: {shown}");
        let origins: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(shown["settings"].clone()).unwrap();
        let from_file = origins
            .values()
            .filter(|v| {
                v["origin"]
                    .as_str()
                    .is_some_and(|o| o.contains(file.rsplit('/').next().unwrap()))
            })
            .count();
        assert!(
            from_file >= 4,
            "{file}: only {from_file} settings came from it: {shown}"
        );
    }
}

/// A one-shot command run in the image never carries the cluster secret,
/// even while the job's environment still holds it: `docker run` gets the
/// job's variables by name, all but the secret's.
#[test]
fn one_shot_containers_never_receive_the_cluster_secret() {
    use std::os::unix::fs::PermissionsExt;
    let fake = tempfile::tempdir().unwrap();
    let docker = fake.path().join("docker");
    std::fs::write(&docker, "#!/bin/sh\nprintf '%s\\n' \"$@\" >\"$OUT\"\n").unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = fake.path().join("argv");
    let status = std::process::Command::new("bash")
        .args([
            "-c",
            r#"set -e; source "$LIB"; ghcache_common_inputs; ghcache_exec -q report --state"#,
        ])
        .env_clear()
        .env("LIB", repo().join("actions/lib/common.sh"))
        .env("PATH", format!("{}:/usr/bin:/bin", fake.path().display()))
        .env("OUT", &out)
        .env("INPUT_MODE", "docker")
        .env("INPUT_STATE_DIR", fake.path())
        .env("INPUT_CLUSTER_SECRET", "one-shot-secret")
        .env("GHCACHE_CLUSTER_SECRET", "one-shot-secret")
        .env("GHCACHE_JOB_ID", "job-0123456789")
        .status()
        .unwrap();
    assert!(status.success());
    let argv = std::fs::read_to_string(&out).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    // The job's variables do travel, by name...
    assert!(
        argv.windows(2).any(|w| w == ["-e", "GHCACHE_JOB_ID"]),
        "{argv:?}"
    );
    assert!(argv.ends_with(&["-q", "report", "--state"]), "{argv:?}");
    // ...but not the secret, under either name.
    assert!(
        !argv
            .iter()
            .any(|a| a.contains("CLUSTER_SECRET") || a.contains("one-shot-secret")),
        "{argv:?}"
    );
}
