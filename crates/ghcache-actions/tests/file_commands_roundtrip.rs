//! Property: whatever the writer accepts, the runner's parser reads back
//! exactly, and nothing it refuses reaches the file.
#![allow(clippy::unwrap_used)]

use ghcache_actions::{FileCommand, ParsedEntry, parse_file_commands, write_file_command};
use proptest::prelude::*;

fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\r".to_owned()),
        Just("=".to_owned()),
        Just("<<".to_owned()),
        Just("ghadelimiter_".to_owned()),
        Just("ghadelimiter_00000000-0000-0000-0000-000000000000".to_owned()),
        Just("EOF".to_owned()),
        Just("GITHUB_".to_owned()),
        Just("NODE_OPTIONS".to_owned()),
        Just("é🦀\u{2028}".to_owned()),
        "[a-zA-Z0-9_ -]{0,6}",
        any::<String>().prop_map(|s| s.chars().take(4).collect()),
    ];
    prop::collection::vec(pieces, 0..8).prop_map(|v| v.concat())
}

fn command() -> impl Strategy<Value = FileCommand> {
    prop_oneof![
        Just(FileCommand::Env),
        Just(FileCommand::Output),
        Just(FileCommand::State)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_writes_parse_back_exactly(
        cmd in command(),
        writes in prop::collection::vec((hostile_text(), hostile_text()), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let mut expected = Vec::new();
        for (name, value) in &writes {
            let before = std::fs::read(&path).unwrap_or_default();
            match write_file_command(cmd, &path, name, value) {
                Ok(()) => expected.push(ParsedEntry { name: name.clone(), value: value.clone() }),
                Err(_) => {
                    let after = std::fs::read(&path).unwrap_or_default();
                    prop_assert_eq!(before, after, "a refused write changed the file");
                }
            }
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let parsed = parse_file_commands(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed, expected);
    }
}
