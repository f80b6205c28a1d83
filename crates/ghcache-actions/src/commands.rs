//! Workflow commands on stdout (`::add-mask::`, annotations, groups) and the
//! safe high-level calls built on them and on file commands.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::context::JobContext;
use crate::file_command::{FileCommand, FileCommandError, write_file_command};

/// Escapes a command's data part, as `@actions/core` does.
pub fn escape_data(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command property (also `:` and `,`, which separate properties).
pub fn escape_property(value: &str) -> String {
    escape_data(value).replace(':', "%3A").replace(',', "%2C")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationLevel {
    Error,
    Warning,
    Notice,
}

impl AnnotationLevel {
    fn command(self) -> &'static str {
        match self {
            AnnotationLevel::Error => "error",
            AnnotationLevel::Warning => "warning",
            AnnotationLevel::Notice => "notice",
        }
    }
}

/// An annotation with its optional location.
#[derive(Debug, Clone, Default)]
pub struct Annotation {
    pub title: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub end_line: Option<u32>,
    pub col: Option<u32>,
    pub end_column: Option<u32>,
}

/// Where a step's output goes: workflow commands inside Actions, readable
/// text in a terminal. Holds the context so every call knows which.
pub struct Console {
    ctx: JobContext,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("ctx", &self.ctx).finish()
    }
}

impl Console {
    /// A console writing to the process's stdout.
    pub fn stdout(ctx: JobContext) -> Self {
        Self::with_writer(ctx, Box::new(std::io::stdout()))
    }

    /// A console writing to any sink (tests capture it).
    pub fn with_writer(ctx: JobContext, out: Box<dyn Write + Send>) -> Self {
        Console {
            ctx,
            out: Mutex::new(out),
        }
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    fn emit(&self, line: &str) {
        // A poisoned lock only means another thread panicked mid-print; keep printing.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // stdout closed: nothing sensible left to do with the text.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Registers a secret with the runner's log masker. Every non-blank line
    /// of a multi-line secret is masked on its own (logs print line by line;
    /// lines end at LF, CRLF or a lone CR), and the whole value too, also
    /// with its line breaks as LF only and as CRLF. Outside Actions nothing
    /// is printed: echoing a secret to a terminal would be the leak we are
    /// preventing.
    pub fn add_mask(&self, secret: &str) {
        if !self.ctx.in_actions {
            return;
        }
        for part in mask_parts(secret) {
            self.emit(&format!("::add-mask::{}", escape_data(&part)));
        }
    }

    pub fn annotate(&self, level: AnnotationLevel, message: &str, at: &Annotation) {
        if !self.ctx.in_actions {
            let location = match (&at.file, at.line) {
                (Some(file), Some(line)) => format!("{file}:{line}: "),
                (Some(file), None) => format!("{file}: "),
                _ => String::new(),
            };
            let title = at
                .title
                .as_deref()
                .map(|t| format!("{t}: "))
                .unwrap_or_default();
            self.emit(&format!("{}: {location}{title}{message}", level.command()));
            return;
        }
        let mut props = Vec::new();
        let mut prop = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                props.push(format!("{key}={}", escape_property(&value)));
            }
        };
        prop("title", at.title.clone());
        prop("file", at.file.clone());
        prop("line", at.line.map(|v| v.to_string()));
        prop("endLine", at.end_line.map(|v| v.to_string()));
        prop("col", at.col.map(|v| v.to_string()));
        prop("endColumn", at.end_column.map(|v| v.to_string()));
        let props = if props.is_empty() {
            String::new()
        } else {
            format!(" {}", props.join(","))
        };
        self.emit(&format!(
            "::{}{props}::{}",
            level.command(),
            escape_data(message)
        ));
    }

    pub fn error(&self, message: &str) {
        self.annotate(AnnotationLevel::Error, message, &Annotation::default());
    }

    pub fn warning(&self, message: &str) {
        self.annotate(AnnotationLevel::Warning, message, &Annotation::default());
    }

    pub fn notice(&self, message: &str) {
        self.annotate(AnnotationLevel::Notice, message, &Annotation::default());
    }

    pub fn group_start(&self, title: &str) {
        if self.ctx.in_actions {
            self.emit(&format!("::group::{}", escape_data(title)));
        } else {
            self.emit(&format!("▶ {title}"));
        }
    }

    pub fn group_end(&self) {
        if self.ctx.in_actions {
            self.emit("::endgroup::");
        }
    }

    fn file_for(&self, command: FileCommand) -> Result<Option<PathBuf>, FileCommandError> {
        if !self.ctx.in_actions {
            return Ok(None);
        }
        let path = match command {
            FileCommand::Env => &self.ctx.env_file,
            FileCommand::Output => &self.ctx.output_file,
            FileCommand::State => &self.ctx.state_file,
        };
        match path {
            Some(path) => Ok(Some(path.clone())),
            None => Err(FileCommandError::NoFile {
                command: command.variable(),
            }),
        }
    }

    fn write(
        &self,
        command: FileCommand,
        name: &str,
        value: &str,
        shown: &str,
    ) -> Result<(), FileCommandError> {
        match self.file_for(command)? {
            Some(path) => write_file_command(command, &path, name, value),
            None => {
                // Validate exactly as in Actions, then just show it.
                crate::file_command::format_entry(command, name, value, "ghadelimiter_preview")
                    .or_else(|err| match err {
                        FileCommandError::DelimiterInValue { .. } => Ok(String::new()),
                        other => Err(other),
                    })?;
                let label = match command {
                    FileCommand::Env => "env",
                    FileCommand::Output => "output",
                    FileCommand::State => "state",
                };
                self.emit(&format!("{label} {name}={shown}"));
                Ok(())
            }
        }
    }

    /// Sets an environment variable for later steps.
    pub fn export_variable(&self, name: &str, value: &str) -> Result<(), FileCommandError> {
        self.write(FileCommand::Env, name, value, value)
    }

    /// Masks, then exports a secret: the mask is on the log before the value
    /// is anywhere a later step could print it.
    pub fn export_secret(&self, name: &str, value: &str) -> Result<(), FileCommandError> {
        self.add_mask(value);
        self.write_secret(FileCommand::Env, name, value)
    }

    /// Writes a value the caller has already masked with [`Console::add_mask`]
    /// (e.g. all of a batch first); outside Actions it is shown redacted.
    pub fn write_secret(
        &self,
        command: FileCommand,
        name: &str,
        value: &str,
    ) -> Result<(), FileCommandError> {
        let shown = format!("*** (secret, {} characters)", value.chars().count());
        self.write(command, name, value, &shown)
    }

    pub fn set_output(&self, name: &str, value: &str) -> Result<(), FileCommandError> {
        self.write(FileCommand::Output, name, value, value)
    }

    pub fn save_state(&self, name: &str, value: &str) -> Result<(), FileCommandError> {
        self.write(FileCommand::State, name, value, value)
    }
}

/// What `add_mask` registers for one secret: each non-blank line, then the
/// whole value as given, with LF line breaks and with CRLF line breaks.
pub fn mask_parts(secret: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |part: &str| {
        if !part.trim().is_empty() && !parts.iter().any(|p| p == part) {
            parts.push(part.to_owned());
        }
    };
    if secret.contains(['\n', '\r']) {
        for line in secret.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
            push(line);
        }
    }
    push(secret);
    let lf = secret.replace("\r\n", "\n");
    push(&lf);
    push(&lf.replace('\n', "\r\n"));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn console(in_actions: bool, vars: &[(&str, &str)]) -> (Console, Captured) {
        let mut all = vec![("GITHUB_ACTIONS", if in_actions { "true" } else { "" })];
        all.extend_from_slice(vars);
        let sink = Captured::default();
        (
            Console::with_writer(JobContext::from_vars(all), Box::new(sink.clone())),
            sink,
        )
    }

    #[test]
    fn masks_escape_percent_and_line_breaks() {
        let (c, out) = console(true, &[]);
        c.add_mask("100%\r\nsure");
        assert_eq!(
            out.text(),
            "::add-mask::100%25\n::add-mask::sure\n::add-mask::100%25%0D%0Asure\n::add-mask::100%25%0Asure\n"
        );
    }

    #[test]
    fn multiline_secrets_mask_every_non_empty_line() {
        let (c, out) = console(true, &[]);
        c.add_mask("-----BEGIN KEY-----\nabc\n\n  \ndef\n-----END KEY-----\n");
        let lines: Vec<_> = out.text().lines().map(str::to_owned).collect();
        assert_eq!(
            &lines[..4],
            [
                "::add-mask::-----BEGIN KEY-----",
                "::add-mask::abc",
                "::add-mask::def",
                "::add-mask::-----END KEY-----"
            ]
        );
        assert_eq!(
            &lines[4..],
            [
                "::add-mask::-----BEGIN KEY-----%0Aabc%0A%0A  %0Adef%0A-----END KEY-----%0A",
                "::add-mask::-----BEGIN KEY-----%0D%0Aabc%0D%0A%0D%0A  %0D%0Adef%0D%0A-----END KEY-----%0D%0A",
            ],
            "the whole value is masked too, with LF and with CRLF line breaks"
        );
    }

    #[test]
    fn a_lone_cr_ends_a_line_too() {
        assert_eq!(mask_parts("ab\rcd"), ["ab", "cd", "ab\rcd"]);
    }

    #[test]
    fn empty_secrets_and_terminal_runs_print_nothing() {
        let (c, out) = console(true, &[]);
        c.add_mask("");
        assert_eq!(out.text(), "");
        let (c, out) = console(false, &[]);
        c.add_mask("secret");
        assert_eq!(out.text(), "");
    }

    #[test]
    fn export_secret_masks_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let env_str = env.to_str().unwrap();
        let (c, out) = console(true, &[("GITHUB_ENV", env_str)]);
        c.export_secret("API_KEY", "s3cr%t").unwrap();
        assert_eq!(out.text(), "::add-mask::s3cr%25t\n");
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "API_KEY=s3cr%t\n");
    }

    #[test]
    fn terminal_output_is_readable_and_never_shows_secrets() {
        let (c, out) = console(false, &[]);
        c.export_secret("API_KEY", "hunter2").unwrap();
        c.set_output("hit", "true").unwrap();
        c.warning("careful");
        c.group_start("Setup");
        c.group_end();
        let text = out.text();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("env API_KEY=*** (secret, 7 characters)"));
        assert!(text.contains("output hit=true"));
        assert!(text.contains("warning: careful"));
        assert!(text.contains("▶ Setup"));
        assert!(!text.contains("::"));
    }

    #[test]
    fn terminal_runs_still_refuse_bad_names() {
        let (c, _) = console(false, &[]);
        assert!(c.export_variable("GITHUB_TOKEN", "x").is_err());
    }

    #[test]
    fn annotations_escape_properties_and_message() {
        let (c, out) = console(true, &[]);
        c.annotate(
            AnnotationLevel::Error,
            "bad\nthing 50%",
            &Annotation {
                title: Some("a:b,c".into()),
                file: Some(".github/cache-config.yml".into()),
                line: Some(7),
                ..Annotation::default()
            },
        );
        assert_eq!(
            out.text(),
            "::error title=a%3Ab%2Cc,file=.github/cache-config.yml,line=7::bad%0Athing 50%25\n"
        );
    }

    #[test]
    fn missing_file_variable_is_a_clear_error() {
        let (c, _) = console(true, &[]);
        let err = c.set_output("a", "b").unwrap_err().to_string();
        assert!(err.contains("GITHUB_OUTPUT is not set"), "{err}");
    }
}
