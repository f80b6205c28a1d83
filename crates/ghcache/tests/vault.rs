//! The credential vault through the real binary: `ghcache creds`,
//! `ghcache inject-credentials`, the daemon's vault socket, and the file
//! commands parsed back with the runner's rules.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::text;
use ghcache_actions::{escape_data, mask_parts, parse_file_commands};

/// Awkward values: every character the file-command format and the log
/// masker treat specially, and lines that look like delimiters.
const HOSTILE: &[(&str, &str)] = &[
    ("PERCENT", "100%25 and %0A and %"),
    ("CR_ONLY", "first-cr-part\rsecond-cr-part"),
    ("LF_ONLY", "first-lf-part\nsecond-lf-part"),
    ("CRLF", "first-crlf-part\r\nsecond-crlf-part\r\n"),
    ("UNICODE", "pässwörd-🦀-\u{2028}-ünïcode"),
    ("EQUALS", "key=value=more-equals"),
    ("HEREDOC", "OTHER<<EOF\nEOF\ntrailing-heredoc"),
    (
        "DELIMITER",
        "real-line\nghadelimiter_00000000-0000-0000-0000-000000000000\nINJECTED=1\n",
    ),
    ("TRAILING_CR", "ends-with-cr\r"),
    ("NAME_LIKE", "\nSMUGGLED=value\n"),
];

/// A state directory and a job's file-command files.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::set_permissions(
            dir.path().join("state"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        Host { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ghcache ARGS` with a clean environment plus `env`.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghcache"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("HOME", self.dir.path())
            .env("GHCACHE_STATE_DIR", self.state());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// `ghcache ARGS` started with `input` on its stdin (then closed).
    fn spawn_with_stdin(&self, args: &[&str], input: &str) -> Child {
        let mut child = self
            .command(args, &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        child
    }

    /// `creds set NAME --scope SCOPE` with the value on stdin.
    fn set(&self, name: &str, scope: &str, value: &str, extra: &[&str]) -> Output {
        let mut args = vec!["creds", "set", name, "--scope", scope];
        args.extend_from_slice(extra);
        self.spawn_with_stdin(&args, value)
            .wait_with_output()
            .unwrap()
    }

    /// The job environment of a step in acme/widgets on runner `r1`.
    fn job_env(&self) -> Vec<(String, String)> {
        [
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_REPOSITORY", "acme/widgets".into()),
            (
                "GITHUB_WORKFLOW_REF",
                "acme/widgets/.github/workflows/ci.yml@refs/heads/main".into(),
            ),
            ("GITHUB_REF", "refs/heads/main".into()),
            ("RUNNER_NAME", "r1".into()),
            ("GITHUB_RUN_ID", "4242".into()),
            ("GITHUB_ENV", self.path("env").display().to_string()),
            ("GITHUB_OUTPUT", self.path("output").display().to_string()),
            (
                "GITHUB_STEP_SUMMARY",
                self.path("summary").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// `inject-credentials ARGS` in the job, stdout and stderr into one
    /// file (so their order is the order written): (exit code, lines).
    fn inject(&self, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
        let log = self.path("inject.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut full = vec!["inject-credentials"];
        full.extend_from_slice(args);
        let mut cmd = self.command(&full, env);
        for (k, v) in self.job_env() {
            cmd.env(k, v);
        }
        let status = cmd
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .status()
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        (status.code(), text.lines().map(str::to_owned).collect())
    }

    fn parsed(&self, file: &str) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.path(file)).unwrap_or_default();
        let mut out = BTreeMap::new();
        for entry in parse_file_commands(&text).unwrap() {
            assert!(
                out.insert(entry.name.clone(), entry.value).is_none(),
                "{} written twice",
                entry.name
            );
        }
        out
    }

    /// A daemon on this state directory, logging at `-vv` into `daemon.log`;
    /// returns once it is ready.
    fn daemon(&self) -> Running {
        let log = std::fs::File::create(self.path("daemon.log")).unwrap();
        let child = self
            .command(
                &[
                    "-vv",
                    "daemon",
                    "--no-p2p",
                    "--proxy-addr",
                    "127.0.0.1:0",
                    "--upstream",
                    "http://127.0.0.1:9",
                ],
                &[],
            )
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let running = Running { child };
        // The vault is served (or refused) before the daemon says it is ready.
        let start = Instant::now();
        while !self.daemon_log().contains("ghcache daemon ready") {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the daemon did not get ready: {}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    /// The running daemon's `/_ghcache/stats`, through `ghcache stats --json`.
    fn stats(&self) -> serde_json::Value {
        let log = self.daemon_log();
        let addr = log
            .split("proxy=http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the daemon logged its address");
        let out = self.run(&["stats", "--json", "--proxy-addr", addr], &[]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }
}

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every hostile value stored, then injected as environment variables and
/// as outputs: the runner's parser reads back exactly those variables.
#[test]
fn hostile_values_are_injected_exactly_and_create_no_extra_variable() {
    let host = Host::new();
    for (name, value) in HOSTILE {
        let file = host.path("value");
        std::fs::write(&file, value).unwrap();
        let out = host.run(
            &[
                "creds",
                "set",
                name,
                "--scope",
                "repo:acme/widgets",
                "--value-file",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{name}: {}", text(&out));
    }
    let expected: BTreeMap<String, String> = HOSTILE
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    // Empty action inputs count as unset (the runner exports them empty).
    let (code, lines) = host.inject(
        &[],
        &[
            ("INPUT_NAMES", ""),
            ("INPUT_LABELS", ""),
            ("INPUT_EXPORT_ENV", ""),
            ("INPUT_ALLOW_NAMES", ""),
        ],
    );
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_eq!(host.parsed("env"), expected);
    for (_, value) in HOSTILE {
        for part in mask_parts(value) {
            let mask = format!("::add-mask::{}", escape_data(&part));
            assert!(lines.contains(&mask), "no {mask:?} in {lines:#?}");
        }
    }
    let summary = std::fs::read_to_string(host.path("summary")).unwrap();
    assert!(summary.contains("| `CRLF` | repo:acme/widgets | 1 | never |"));

    let (code, lines) = host.inject(&["--export-env", "false"], &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_eq!(host.parsed("output"), expected);
    assert_eq!(host.parsed("env"), expected, "GITHUB_ENV untouched");
}

/// A record whose ciphertext was tampered with, and one that is not JSON
/// any more: each is named, and everything else still opens.
#[test]
fn a_tampered_or_corrupt_record_is_named_and_the_rest_opens() {
    let host = Host::new();
    for name in ["INTACT", "TAMPERED", "CORRUPT"] {
        let out = host.set(name, "global", &format!("{name}-secret-value"), &[]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let records = host.state().join("vault").join("records");
    let file = |prefix: &str| {
        std::fs::read_dir(&records)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
            .unwrap()
    };
    let tampered = file("TAMPERED.");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tampered).unwrap()).unwrap();
    let ciphertext = record["ciphertext"].as_str().unwrap().to_owned();
    let flipped = if ciphertext.starts_with('0') {
        "1"
    } else {
        "0"
    };
    record["ciphertext"] = format!("{flipped}{}", &ciphertext[1..]).into();
    std::fs::write(&tampered, serde_json::to_vec(&record).unwrap()).unwrap();
    let corrupt = file("CORRUPT.");
    std::fs::write(&corrupt, b"{ not json").unwrap();
    let corrupt_name = corrupt.file_name().unwrap().to_str().unwrap().to_owned();
    let tampered_name = tampered.file_name().unwrap().to_str().unwrap().to_owned();

    let out = host.run(&["creds", "list"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    assert!(
        listed.contains("INTACT") && listed.contains(&corrupt_name),
        "{listed}"
    );

    let (code, lines) = host.inject(&[], &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    for name in [&corrupt_name, &tampered_name] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("::warning::") && l.contains(name.as_str())),
            "{name} is named: {lines:#?}"
        );
    }
    let env = host.parsed("env");
    assert_eq!(env.keys().collect::<Vec<_>>(), ["INTACT"]);

    let (code, lines) = host.inject(&["--names", "INTACT,TAMPERED"], &[]);
    assert_eq!(
        code,
        Some(1),
        "a required record that does not open fails: {lines:#?}"
    );
}

/// At `-vv`, through the daemon: stdout opens with the mask lines, and no
/// other line of the step, of the `creds` commands or of the daemon's log
/// holds any part of any value.
#[test]
fn masks_come_first_and_no_log_line_holds_a_value() {
    let host = Host::new();
    let daemon = host.daemon();
    let mut client_output = String::new();
    for (name, value) in HOSTILE {
        let out = host.set(name, "global", value, &["-vv"]);
        assert!(out.status.success(), "{}", text(&out));
        client_output += &text(&out);
    }
    let rotated = "rotated-value-line-one\nrotated-value-line-two";
    let child = host.spawn_with_stdin(
        &["-vv", "creds", "rotate", "EQUALS", "--scope", "global"],
        rotated,
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    client_output += &text(&out);
    for args in [
        &["-vv", "creds", "list"][..],
        &["-vv", "creds", "audit"],
        &["-vv", "creds", "audit", "verify"],
    ] {
        let out = host.run(args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        client_output += &text(&out);
    }
    let (code, lines) = host.inject(&["-vv"], &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    let vault = &host.stats()["vault"];
    assert_eq!(vault["served"], true, "{vault}");
    assert_eq!(vault["credentials_injected"], HOSTILE.len(), "{vault}");
    drop(daemon);

    let mut values: Vec<&str> = HOSTILE.iter().map(|(_, v)| *v).collect();
    values.push(rotated);
    let parts: Vec<String> = values.iter().flat_map(|v| mask_parts(v)).collect();
    // Every value of the selection is masked (EQUALS by its new version),
    // and the masks open stdout: nothing but log lines (stderr) before them.
    let injected = values.iter().filter(|v| **v != "key=value=more-equals");
    let wanted: usize = injected.map(|v| mask_parts(v).len()).sum();
    let stdout: Vec<&String> = lines.iter().filter(|l| !is_log_line(l)).collect();
    assert_eq!(stdout.len(), wanted, "{lines:#?}");
    assert!(
        stdout.iter().all(|l| l.starts_with("::add-mask::")),
        "stdout holds the masks and nothing else: {lines:#?}"
    );
    let step_lines = lines.iter().filter(|l| !l.starts_with("::add-mask::"));
    let daemon_log = host.daemon_log();
    assert!(
        daemon_log.contains("vault request"),
        "the daemon logged at -vv: {daemon_log}"
    );
    for line in step_lines
        .map(String::as_str)
        .chain(client_output.lines())
        .chain(daemon_log.lines())
    {
        for part in &parts {
            assert!(
                !line.contains(part.as_str()),
                "a value part {part:?} appears in {line:?}"
            );
        }
    }
}

/// Names that would hijack later steps are refused (nothing written), a
/// missing required name names the scope looked for, expired credentials
/// are named and never injected.
#[test]
fn refused_missing_and_expired_credentials() {
    let host = Host::new();
    assert!(
        host.set("PATH", "global", "/evil/bin", &[])
            .status
            .success()
    );
    assert!(
        host.set("NODE_OPTIONS", "runner:r1", "--require /evil.js", &[])
            .status
            .success()
    );
    assert!(
        host.set("API_KEY", "repo:acme/*", "api-key-value", &[])
            .status
            .success()
    );

    let (code, lines) = host.inject(&["--names", "PATH,API_KEY"], &[]);
    assert_eq!(code, Some(2), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error::") && l.contains("PATH"))
    );
    assert!(!host.path("env").exists(), "nothing written");

    let (code, lines) = host.inject(
        &["--names", "NODE_OPTIONS"],
        &[("INPUT_ALLOW_NAMES", "NODE_OPTIONS")],
    );
    assert_eq!(code, Some(2), "{lines:#?}");
    assert!(
        !host.path("env").exists(),
        "the runner's own refusals cannot be allowed"
    );

    let (code, lines) = host.inject(
        &[],
        &[
            ("INPUT_NAMES", "PATH\nAPI_KEY"),
            ("INPUT_ALLOW_NAMES", "PATH"),
        ],
    );
    assert_eq!(code, Some(0), "{lines:#?}");
    let env = host.parsed("env");
    assert_eq!(env.get("PATH").map(String::as_str), Some("/evil/bin"));
    assert_eq!(
        env.get("API_KEY").map(String::as_str),
        Some("api-key-value")
    );

    std::fs::remove_file(host.path("env")).unwrap();
    let (code, lines) = host.inject(&["--names", "API_KEY,DEPLOY_TOKEN"], &[]);
    assert_eq!(code, Some(1), "{lines:#?}");
    let error = lines.iter().find(|l| l.starts_with("::error::")).unwrap();
    assert!(error.contains("DEPLOY_TOKEN"), "{error}");
    assert!(
        error.contains("repo:acme/widgets")
            && error.contains("runner:r1")
            && error.contains("unverified"),
        "names the scope looked for: {error}"
    );
    assert!(!host.path("env").exists(), "nothing written");

    assert!(
        host.set(
            "SHORT_LIVED",
            "global",
            "short-lived-value",
            &["--ttl", "1s"]
        )
        .status
        .success()
    );
    // Expiry is a matter of the clock: poll until the second has passed.
    let start = Instant::now();
    let lines = loop {
        let (code, lines) = host.inject(&["--names", "SHORT_LIVED"], &[]);
        if code == Some(1) {
            break lines;
        }
        assert_eq!(code, Some(0), "{lines:#?}");
        assert!(start.elapsed() < Duration::from_secs(10), "never expired");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        lines.iter().any(|l| l.starts_with("::warning::")
            && l.contains("SHORT_LIVED")
            && l.contains("expired")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error::") && l.contains("SHORT_LIVED")),
        "a required expired credential fails the step: {lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("short-lived-value")),
        "an expired value is never handled: {lines:#?}"
    );
    // Without names: the expired one is named, the others injected.
    std::fs::remove_file(host.path("env")).unwrap();
    let rm = host.run(
        &["creds", "rm", "NODE_OPTIONS", "--scope", "runner:r1"],
        &[],
    );
    assert!(rm.status.success(), "{}", text(&rm));
    let (code, lines) = host.inject(&["--allow-names", "PATH"], &[]);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning::") && l.contains("SHORT_LIVED"))
    );
    let env = host.parsed("env");
    assert_eq!(
        env.keys().map(String::as_str).collect::<Vec<_>>(),
        ["API_KEY", "PATH"]
    );
}

/// Twenty `creds set` processes at once, through the daemon and then
/// against the vault opened under its lock: every record is there.
#[test]
fn twenty_concurrent_writers_lose_nothing_with_or_without_a_daemon() {
    for with_daemon in [true, false] {
        let host = Host::new();
        let daemon = with_daemon.then(|| host.daemon());
        let children: Vec<Child> = (0..20)
            .map(|i| {
                let name = format!("TOKEN_{i}");
                let args = ["creds", "set", &name, "--scope", "global"];
                host.spawn_with_stdin(&args, &format!("value-{i}"))
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
        let out = host.run(&["creds", "list", "--json"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let records = doc["records"].as_array().unwrap();
        assert_eq!(records.len(), 20, "with daemon: {with_daemon}: {doc}");
        let out = host.run(&["creds", "audit", "verify"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("20 line(s)"), "{}", text(&out));
        drop(daemon);
    }
}

/// The socket is the daemon's user's: another user cannot reach it, and if
/// the permissions are opened by mistake, SO_PEERCRED still refuses them.
#[test]
fn the_vault_socket_refuses_another_user() {
    // It switches to uid nobody.
    if !common::require("the vault socket's other-user test", common::is_root()) {
        return;
    }
    let host = Host::new();
    assert!(
        host.set("SECRET", "global", "root-only-value", &[])
            .status
            .success()
    );
    let _daemon = host.daemon();
    let as_nobody = |host: &Host| {
        let out = host
            .command(&["creds", "get", "SECRET", "--scope", "global"], &[])
            .current_dir("/")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        assert!(!text(&out).contains("root-only-value"));
        text(&out)
    };
    let denied = as_nobody(&host);
    assert!(denied.contains("Permission denied"), "{denied}");

    // A mistake opens everything up: the kernel lets nobody connect, the
    // daemon's peer check does not.
    for (path, mode) in [
        (host.dir.path().to_path_buf(), 0o755),
        (host.state(), 0o755),
        (host.state().join("vault.sock"), 0o666),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let refused = as_nobody(&host);
    assert!(
        refused.contains("served only to uid 0") && refused.contains("you are uid 65534"),
        "{refused}"
    );
    assert!(
        host.daemon_log()
            .contains("refused a caller of another user"),
        "{}",
        host.daemon_log()
    );
    assert_eq!(host.stats()["vault"]["refused_callers"], 1);
}

/// A state directory others may write to could hold a socket someone else
/// swapped in: the daemon refuses to serve the vault there and says why.
#[test]
fn the_daemon_refuses_a_socket_directory_others_can_write() {
    let host = Host::new();
    std::fs::set_permissions(host.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let _daemon = host.daemon();
    let log = host.daemon_log();
    assert!(log.contains("refusing to serve the vault"), "{log}");
    assert!(log.contains("chmod go-w"), "{log}");
    assert!(!host.state().join("vault.sock").exists());
}

#[test]
fn help_documents_every_input() {
    let host = Host::new();
    let help = |args: &[&str]| {
        let out = host.run(args, &[]);
        assert!(out.status.success());
        text(&out)
    };
    let set = help(&["creds", "set", "--help"]);
    for word in [
        "--scope",
        "--ttl",
        "--description",
        "--value-file",
        "stdin",
        "repo:OWNER/NAME",
    ] {
        assert!(set.contains(word), "creds set --help lacks {word}: {set}");
    }
    let rotate = help(&["creds", "rotate", "--help"]);
    assert!(
        rotate.contains("--grace") && rotate.contains("--value-file"),
        "{rotate}"
    );
    let list = help(&["creds", "list", "--help"]);
    assert!(list.contains("--json"), "{list}");
    let inject = help(&["inject-credentials", "--help"]);
    for word in [
        "--names",
        "INPUT_NAMES",
        "--labels",
        "INPUT_LABELS",
        "--export-env",
        "INPUT_EXPORT_ENV",
        "--allow-names",
        "INPUT_ALLOW_NAMES",
        "GITHUB_WORKFLOW_REF",
        "RUNNER_NAME",
    ] {
        assert!(
            inject.contains(word),
            "inject-credentials --help lacks {word}: {inject}"
        );
    }
}

/// A value is never taken from the command line.
#[test]
fn no_value_argument_exists() {
    let host = Host::new();
    let out = host.run(
        &["creds", "set", "X", "--scope", "global", "--value", "v"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !host.state().join("vault").join("records").exists()
            || std::fs::read_dir(host.state().join("vault").join("records"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// A tracing line on stderr (`2026-11-29T22:44:46.685418Z  INFO …`).
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[10] == b'T'
}
