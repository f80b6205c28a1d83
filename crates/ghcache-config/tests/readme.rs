//! The README's configuration table agrees with the declared settings:
//! same flag, environment names, YAML key and default, and no extra rows.
#![allow(clippy::unwrap_used)]

use ghcache_config::{Config, Overrides, SETTINGS, Sources, load};

/// One row of the table, as cells with markdown backticks kept.
struct Row {
    setting: String,
    flag: String,
    env: String,
    key: String,
    default: String,
}

fn readme_rows() -> Vec<Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let text = std::fs::read_to_string(path).unwrap();
    let section = text
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a ## Configuration section");
    let header = "| setting | flag | environment | YAML key | default | meaning |";
    let table = section.split(header).nth(1).expect("the table header");
    table
        .lines()
        .skip(2) // the header's line end, then |---|
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect();
            assert_eq!(cells.len(), 6, "six cells in {line:?}");
            Row {
                setting: cells[0].clone(),
                flag: cells[1].clone(),
                env: cells[2].clone(),
                key: cells[3].clone(),
                default: cells[4].clone(),
            }
        })
        .collect()
}

/// The `code` spans of a cell, in order (free text such as "(repeat)" aside).
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_table_matches_the_declarations() {
    let rows = readme_rows();
    let mut problems = Vec::new();
    for info in SETTINGS {
        let Some(row) = rows.iter().find(|r| r.setting == info.label) else {
            problems.push(format!("README has no row \"{}\"", info.label));
            continue;
        };
        let want_flag: Vec<String> = Some(info.flag)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .into_iter()
            .collect();
        let want_key: Vec<String> = Some(info.key)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .into_iter()
            .collect();
        let want_env: Vec<String> = info.env.iter().map(|e| e.to_string()).collect();
        let checks = [
            ("flag", code_spans(&row.flag), want_flag),
            ("environment", code_spans(&row.env), want_env),
            ("YAML key", code_spans(&row.key), want_key),
            (
                "default",
                vec![row.default.replace('`', "")],
                vec![info.default.to_owned()],
            ),
        ];
        for (column, readme, declared) in checks {
            if readme != declared {
                problems.push(format!(
                    "\"{}\" {column}: README {readme:?}, declared {declared:?}",
                    info.label
                ));
            }
        }
    }
    for row in &rows {
        if !SETTINGS.iter().any(|s| s.label == row.setting) {
            problems.push(format!("README row \"{}\" is not declared", row.setting));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn labels_keys_and_shown_keys_are_unique() {
    for (i, a) in SETTINGS.iter().enumerate() {
        for b in &SETTINGS[i + 1..] {
            assert_ne!(a.label, b.label);
            assert!(a.key.is_empty() || a.key != b.key, "{}", a.key);
            assert!(a.shown.is_empty() || a.shown != b.shown, "{}", a.shown);
        }
    }
}

fn defaults() -> Config {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    let sources = Sources {
        env: vec![("HOME".into(), "/home/runner".into())],
        cwd: dir.path().to_owned(),
    };
    load(&Overrides::default(), &sources).unwrap()
}

/// Every declared setting has its `config show` row and nothing else does.
#[test]
fn config_show_lists_exactly_the_declared_rows() {
    let shown: Vec<&str> = defaults().shown().iter().map(|r| r.key).collect();
    let declared: Vec<&str> = SETTINGS
        .iter()
        .map(|s| s.shown)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(shown, declared);
}

/// A file setting every declared key is accepted, and each key's line is
/// its origin: the schema and the declarations are the same list.
#[test]
fn every_declared_key_is_accepted_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    let mut yaml = String::new();
    let mut written: Vec<&str> = Vec::new();
    let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    keys.retain(|k| !k.is_empty());
    // Sorted, so that each section is written once.
    keys.sort_unstable();
    for key in keys {
        let parts: Vec<&str> = key.split('.').collect();
        let shared = written
            .last()
            .map(|w| {
                w.split('.')
                    .zip(&parts)
                    .take_while(|(a, b)| a == *b)
                    .count()
            })
            .unwrap_or(0);
        for (depth, part) in parts.iter().enumerate().skip(shared) {
            let value = if depth + 1 == parts.len() { " ~" } else { "" };
            yaml.push_str(&format!("{}{part}:{value}\n", "  ".repeat(depth)));
        }
        written.push(key);
    }
    let file = dir.path().join("all.yml");
    std::fs::write(&file, &yaml).unwrap();
    let overrides = Overrides {
        config_file: Some(file),
        ..Overrides::default()
    };
    let sources = Sources {
        env: vec![("HOME".into(), "/home/runner".into())],
        cwd: dir.path().to_owned(),
    };
    let config = load(&overrides, &sources);
    assert!(config.is_ok(), "{yaml}\n{:?}", config.err());
}
