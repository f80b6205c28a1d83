//! The GitHub Actions runtime, as seen from inside a step.
//!
//! This crate is for talking to the Actions runner: reading the job context
//! (`GITHUB_*`, `RUNNER_*`, `INPUT_*`), writing file commands (`GITHUB_ENV`,
//! `GITHUB_OUTPUT`, `GITHUB_STATE`) safely, masking secrets, emitting
//! annotations and groups, and writing the job summary. It follows the
//! runner's own parsing rules and `@actions/core`'s encodings.
//!
//! It is not for anything ghcache-specific: no caching, no networking, no
//! configuration. Outside Actions (no `GITHUB_ACTIONS=true`) every call still
//! works and prints readable text to the terminal instead of workflow
//! commands, so the same code path runs on a laptop.

mod commands;
mod context;
mod file_command;
mod summary;

pub use commands::{
    Annotation, AnnotationLevel, Console, escape_data, escape_property, mask_parts,
};
pub use context::{JobContext, parse_bool, split_list};
pub use file_command::{
    FileCommand, FileCommandError, ParsedEntry, format_entry, parse_file_commands,
    write_file_command,
};
pub use summary::{SUMMARY_LIMIT_BYTES, Summary, SummaryError};
