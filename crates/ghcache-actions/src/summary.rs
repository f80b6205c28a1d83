//! The job summary (`GITHUB_STEP_SUMMARY`): Markdown, at most 1 MiB per step.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use crate::context::JobContext;

/// GitHub rejects a step summary larger than this.
pub const SUMMARY_LIMIT_BYTES: usize = 1024 * 1024;

const TRUNCATED_NOTE: &str = "\n\n> *Summary truncated: GitHub allows 1 MiB per step.*\n";

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("cannot append the job summary to {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A Markdown summary under construction.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    buffer: String,
}

impl Summary {
    pub fn new() -> Self {
        Summary::default()
    }

    pub fn heading(mut self, level: u8, text: &str) -> Self {
        let level = level.clamp(1, 6) as usize;
        let _ = writeln!(self.buffer, "{} {}\n", "#".repeat(level), one_line(text));
        self
    }

    pub fn paragraph(mut self, text: &str) -> Self {
        let _ = writeln!(self.buffer, "{text}\n");
        self
    }

    /// A Markdown table; cells are escaped so that no value can break the
    /// table's structure.
    pub fn table<R, C>(mut self, header: &[&str], rows: R) -> Self
    where
        R: IntoIterator<Item = C>,
        C: IntoIterator<Item = String>,
    {
        let cell = |text: &str| one_line(text).replace('|', "\\|");
        let head: Vec<String> = header.iter().map(|h| cell(h)).collect();
        let _ = writeln!(self.buffer, "| {} |", head.join(" | "));
        let _ = writeln!(self.buffer, "|{}", "---|".repeat(header.len()));
        for row in rows {
            let cells: Vec<String> = row.into_iter().map(|c| cell(&c)).collect();
            let _ = writeln!(self.buffer, "| {} |", cells.join(" | "));
        }
        self.buffer.push('\n');
        self
    }

    pub fn code_block(mut self, language: &str, code: &str) -> Self {
        let fence = if code.contains("```") { "````" } else { "```" };
        let _ = writeln!(self.buffer, "{fence}{language}\n{code}\n{fence}\n");
        self
    }

    pub fn as_markdown(&self) -> &str {
        &self.buffer
    }

    /// Appends to the step summary, keeping the file under the 1 MiB limit
    /// (truncating at a character boundary with a note). Outside Actions the
    /// Markdown is returned for the caller to print.
    pub fn write(self, ctx: &JobContext) -> Result<Option<String>, SummaryError> {
        let path = match (&ctx.in_actions, &ctx.step_summary_file) {
            (true, Some(path)) => path.clone(),
            _ => return Ok(Some(self.buffer)),
        };
        let io_err = |source| SummaryError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        let used = usize::try_from(file.metadata().map_err(io_err)?.len()).unwrap_or(usize::MAX);
        let room = SUMMARY_LIMIT_BYTES.saturating_sub(used);
        let text = fit(&self.buffer, room);
        file.write_all(text.as_bytes()).map_err(io_err)?;
        Ok(None)
    }
}

fn one_line(text: &str) -> String {
    text.replace("\r\n", "<br>").replace(['\n', '\r'], "<br>")
}

/// The longest prefix of `text` that fits in `room` bytes with the note.
fn fit(text: &str, room: usize) -> String {
    if text.len() <= room {
        return text.to_owned();
    }
    if room < TRUNCATED_NOTE.len() {
        return String::new();
    }
    let mut cut = room - TRUNCATED_NOTE.len();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{TRUNCATED_NOTE}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_pipes_and_newlines() {
        let md = Summary::new()
            .table(
                &["key", "value"],
                [vec!["a|b".to_owned(), "x\ny".to_owned()]],
            )
            .as_markdown()
            .to_owned();
        assert_eq!(md, "| key | value |\n|---|---|\n| a\\|b | x<br>y |\n\n");
    }

    #[test]
    fn summary_never_exceeds_the_step_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "x".repeat(SUMMARY_LIMIT_BYTES - 1000)).unwrap();
        let ctx = JobContext::from_vars([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", path.to_str().unwrap()),
        ]);
        let big = "é".repeat(10_000);
        Summary::new().paragraph(&big).write(&ctx).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.len() <= SUMMARY_LIMIT_BYTES, "{}", written.len());
        assert!(written.ends_with(TRUNCATED_NOTE));
        // Full: further writes add nothing rather than overflow.
        Summary::new().paragraph("more").write(&ctx).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() as usize <= SUMMARY_LIMIT_BYTES);
    }

    #[test]
    fn outside_actions_the_markdown_is_returned() {
        let ctx = JobContext::from_vars([("GITHUB_ACTIONS", "false")]);
        let md = Summary::new().heading(2, "Cache").write(&ctx).unwrap();
        assert_eq!(md.as_deref(), Some("## Cache\n\n"));
    }
}
