//! Logging set-up: `RUST_LOG` filter, text or JSON on stderr, and a last
//! line of defence that scrubs anything shaped like a GitHub token.

use std::io::{self, Write};

use ghcache_config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub fn init(format: LogFormat, verbose: u8, quiet: u8) {
    let default = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(false);
    // A second init (tests calling main twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[derive(Debug, Clone, Copy)]
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = LineRedactor;
    fn make_writer(&'a self) -> LineRedactor {
        LineRedactor(Vec::new())
    }
}

/// Buffers one log event and writes it scrubbed when dropped.
struct LineRedactor(Vec<u8>);

impl Write for LineRedactor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineRedactor {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = io::stderr().write_all(redact_tokens(&text).as_bytes());
    }
}

/// GitHub token prefixes (classic PAT, OAuth, user-to-server, server-to-server,
/// refresh, fine-grained PAT).
const TOKEN_PREFIXES: [&str; 6] = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];

/// Replaces the body of anything shaped like a GitHub token, and the
/// credential after `Bearer `/`token `, with `***`.
pub fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for marker in TOKEN_PREFIXES
            .iter()
            .copied()
            .chain(["Bearer ", "bearer ", "token "])
        {
            if rest.starts_with(marker) {
                let body = &rest[marker.len()..];
                let len = body
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                    .unwrap_or(body.len());
                if len >= 8 {
                    out.push_str(marker);
                    out.push_str("***");
                    rest = &body[len..];
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_tokens;

    #[test]
    fn scrubs_token_shapes() {
        assert_eq!(
            redact_tokens("auth ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok"),
            "auth ghp_*** ok"
        );
        assert_eq!(
            redact_tokens("Authorization: Bearer eyJhbGciOi.x.y, next"),
            "Authorization: Bearer ***, next"
        );
        assert_eq!(
            redact_tokens("github_pat_11ABCDEFG0123456789_abcdef"),
            "github_pat_***"
        );
        assert_eq!(redact_tokens("a token is here"), "a token is here");
        assert_eq!(redact_tokens("ünïcode ghs_short"), "ünïcode ghs_short");
    }
}
