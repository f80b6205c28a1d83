//! File commands: `GITHUB_ENV`, `GITHUB_OUTPUT`, `GITHUB_STATE`.
//!
//! The runner reads these files line by line (lines end at `\n` or `\r\n`).
//! A line whose first `=` comes before any `<<` is `NAME=value`; otherwise
//! `NAME<<DELIM` starts a heredoc that ends at the first line equal to DELIM.
//! We write the simple form only when the value cannot be misread, and a
//! heredoc with a random delimiter otherwise (CVE-2022-35954).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which file command a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCommand {
    Env,
    Output,
    State,
}

impl FileCommand {
    /// The runner variable naming the file.
    pub fn variable(self) -> &'static str {
        match self {
            FileCommand::Env => "GITHUB_ENV",
            FileCommand::Output => "GITHUB_OUTPUT",
            FileCommand::State => "GITHUB_STATE",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileCommandError {
    #[error("{command}: refusing to write an empty name")]
    EmptyName { command: &'static str },
    #[error("{command}: refusing name {name:?}: {reason}")]
    InvalidName {
        command: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error(
        "{command}: the value of {name} contains the heredoc delimiter; nothing was written (a value must never be able to end its own heredoc)"
    )]
    DelimiterInValue { command: &'static str, name: String },
    #[error(
        "{command} is not set: this runner does not support file commands (runner 2.297 or newer is required)"
    )]
    NoFile { command: &'static str },
    #[error("{command}: cannot append to {path}: {source}; nothing was written")]
    Io {
        command: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks a name against the runner's rules and ours.
fn validate_name(command: FileCommand, name: &str) -> Result<(), FileCommandError> {
    let cmd = command.variable();
    if name.is_empty() {
        return Err(FileCommandError::EmptyName { command: cmd });
    }
    let invalid = |reason| FileCommandError::InvalidName {
        command: cmd,
        name: name.to_owned(),
        reason,
    };
    if name.contains('=') {
        return Err(invalid("a name may not contain `=`"));
    }
    if name.contains("<<") {
        return Err(invalid("a name may not contain `<<`"));
    }
    if name.ends_with('<') {
        // `NAME<` + `<<DELIM` would make the runner split one character early.
        return Err(invalid("a name may not end with `<`"));
    }
    if name.contains('\r') || name.contains('\n') {
        return Err(invalid("a name may not contain CR or LF"));
    }
    if command == FileCommand::Env {
        let upper = name.to_ascii_uppercase();
        if upper == "NODE_OPTIONS" {
            return Err(invalid(
                "the runner ignores NODE_OPTIONS from GITHUB_ENV (it could inject code into every later node step)",
            ));
        }
        if upper.starts_with("GITHUB_") || upper.starts_with("RUNNER_") {
            return Err(invalid(
                "GITHUB_* and RUNNER_* variables belong to the runner and cannot be overridden",
            ));
        }
    }
    Ok(())
}

/// Formats one complete entry, ready to append. The delimiter is only used
/// when the simple form is unsafe.
pub fn format_entry(
    command: FileCommand,
    name: &str,
    value: &str,
    delimiter: &str,
) -> Result<String, FileCommandError> {
    validate_name(command, name)?;
    // Simple form only when no line break can split the value.
    if !value.contains('\n') && !value.contains('\r') {
        return Ok(format!("{name}={value}\n"));
    }
    if value.contains(delimiter) {
        return Err(FileCommandError::DelimiterInValue {
            command: command.variable(),
            name: name.to_owned(),
        });
    }
    // The runner strips the line break before the delimiter line; when the
    // value itself ends in CR, a plain LF would turn into CRLF and eat it.
    let end = if value.ends_with('\r') { "\r\n" } else { "\n" };
    Ok(format!("{name}<<{delimiter}\n{value}{end}{delimiter}\n"))
}

fn fresh_delimiter() -> String {
    format!("ghadelimiter_{}", uuid::Uuid::new_v4())
}

/// Appends one entry to the file command's file as a single write.
///
/// Either the whole entry lands or the file is put back to its previous
/// length: a reader never sees half an entry.
pub fn write_file_command(
    command: FileCommand,
    path: &Path,
    name: &str,
    value: &str,
) -> Result<(), FileCommandError> {
    let entry = format_entry(command, name, value, &fresh_delimiter())?;
    let io_err = |source| FileCommandError::Io {
        command: command.variable(),
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err)?;
    let before = file.metadata().map_err(io_err)?.len();
    if let Err(err) = file.write_all(entry.as_bytes()).and_then(|()| file.flush()) {
        // Roll back a partial append (e.g. disk full mid-write).
        let _ = file.set_len(before);
        return Err(io_err(err));
    }
    Ok(())
}

/// One entry as the runner would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEntry {
    pub name: String,
    pub value: String,
}

/// Parses a file command file exactly as the runner does
/// (`actions/runner` `FileCommandManager`): lines end at `\n` or `\r\n`,
/// empty lines are skipped, a line whose `=` precedes any `<<` is the simple
/// form, and a heredoc's value is the raw text up to the line break before
/// the first line equal to the delimiter.
pub fn parse_file_commands(text: &str) -> Result<Vec<ParsedEntry>, String> {
    let mut entries = Vec::new();
    let mut index = 0;
    while let Some((line, _)) = read_line(text, &mut index) {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(eq), h) if h.is_none_or(|h| eq < h) => {
                let name = &line[..eq];
                if name.is_empty() {
                    return Err(format!("invalid format {line:?}: name must not be empty"));
                }
                entries.push(ParsedEntry {
                    name: name.to_owned(),
                    value: line[eq + 1..].to_owned(),
                });
            }
            (_, Some(h)) => {
                let name = &line[..h];
                let delimiter = &line[h + 2..];
                if name.is_empty() || delimiter.is_empty() {
                    return Err(format!("invalid format {line:?}"));
                }
                let start = index;
                let mut end = index;
                loop {
                    match read_line(text, &mut index) {
                        None => {
                            return Err(format!(
                                "invalid value: matching delimiter not found {delimiter:?}"
                            ));
                        }
                        Some((candidate, _)) if candidate == delimiter => break,
                        Some((_, newline_len)) => end = index - newline_len,
                    }
                }
                entries.push(ParsedEntry {
                    name: name.to_owned(),
                    value: text[start..end.max(start)].to_owned(),
                });
            }
            _ => return Err(format!("invalid format {line:?}")),
        }
    }
    Ok(entries)
}

/// The runner's `ReadLine`: returns the line and the length of its break.
fn read_line<'a>(text: &'a str, index: &mut usize) -> Option<(&'a str, usize)> {
    if *index >= text.len() {
        return None;
    }
    let start = *index;
    let rest = &text[start..];
    match rest.find('\n') {
        None => {
            *index = text.len();
            Some((rest, 0))
        }
        Some(lf) => {
            if lf > 0 && rest.as_bytes()[lf - 1] == b'\r' {
                *index = start + lf + 1;
                Some((&rest[..lf - 1], 2))
            } else {
                *index = start + lf + 1;
                Some((&rest[..lf], 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_values_use_the_simple_form() {
        let entry = format_entry(FileCommand::Output, "a", "b=c<<d", "D").unwrap();
        assert_eq!(entry, "a=b=c<<d\n");
    }

    #[test]
    fn multiline_values_use_a_heredoc() {
        let entry = format_entry(FileCommand::Env, "A", "x\ny", "ghadelimiter_1").unwrap();
        assert_eq!(entry, "A<<ghadelimiter_1\nx\ny\nghadelimiter_1\n");
        assert_eq!(
            parse_file_commands(&entry).unwrap(),
            vec![ParsedEntry {
                name: "A".into(),
                value: "x\ny".into()
            }]
        );
    }

    #[test]
    fn refused_names_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        for (name, expected) in [
            ("", "empty name"),
            ("A=B", "`=`"),
            ("A<<B", "`<<`"),
            ("A<", "end with `<`"),
            ("A\nB", "CR or LF"),
            ("A\rB", "CR or LF"),
            ("node_options", "NODE_OPTIONS"),
            ("NODE_OPTIONS", "NODE_OPTIONS"),
            ("GITHUB_TOKEN", "GITHUB_*"),
            ("github_path", "GITHUB_*"),
            ("RUNNER_TEMP", "RUNNER_*"),
        ] {
            let err = write_file_command(FileCommand::Env, &path, name, "v").unwrap_err();
            assert!(err.to_string().contains(expected), "{name:?}: {err}");
        }
        assert!(!path.exists() || std::fs::read(&path).unwrap().is_empty());
    }

    #[test]
    fn runner_names_are_fine_as_outputs() {
        assert!(format_entry(FileCommand::Output, "GITHUB_X", "v", "D").is_ok());
        assert!(format_entry(FileCommand::Output, "node_options", "v", "D").is_ok());
    }

    #[test]
    fn a_value_containing_the_delimiter_is_refused() {
        let err = format_entry(FileCommand::Output, "a", "x\nEOF\ny", "EOF").unwrap_err();
        assert!(matches!(err, FileCommandError::DelimiterInValue { .. }));
    }

    #[test]
    fn a_trailing_carriage_return_survives() {
        let entry = format_entry(FileCommand::Output, "a", "x\r", "D").unwrap();
        assert_eq!(parse_file_commands(&entry).unwrap()[0].value, "x\r");
        let entry = format_entry(FileCommand::Output, "a", "\r", "D").unwrap();
        assert_eq!(parse_file_commands(&entry).unwrap()[0].value, "\r");
    }

    #[test]
    fn appends_accumulate_whole_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        write_file_command(FileCommand::Output, &path, "one", "1").unwrap();
        write_file_command(FileCommand::Output, &path, "two", "2\n2").unwrap();
        let parsed = parse_file_commands(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let names: Vec<_> = parsed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(parsed[1].value, "2\n2");
    }
}
