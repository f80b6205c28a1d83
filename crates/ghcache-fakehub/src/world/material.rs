//! What the generator draws from: the fixed accounts, organisations and
//! repositories, word lists, and helpers that turn random draws into ids,
//! tokens, commits and runners.

use base64::Engine as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::*;

pub(super) const USERS: [(&str, &str); 10] = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Builder"),
    ("carol", "Carol Danvers"),
    ("dave", "Dave Bowman"),
    ("erin", "Erin Brockovich"),
    ("frank", "Frank Poole"),
    ("grace", "Grace Hopper"),
    ("heidi", "Heidi Lamarr"),
    ("ivan", "Ivan Sutherland"),
    ("judy", "Judy Hopps"),
];
pub(super) const ORGS: [(&str, &str, &[&str], &[&str]); 3] = [
    (
        "acme",
        "ACME Corporation",
        &["alice"],
        &["bob", "carol", "dave"],
    ),
    ("globex", "Globex", &["erin"], &["frank", "alice"]),
    ("initech", "Initech", &["grace"], &["heidi", "ivan"]),
];
// (owner, name, private, busy, language)
pub(super) const REPOS: [(&str, &str, bool, bool, &str); 12] = [
    ("acme", "widgets", true, true, "Rust"),
    ("acme", "gadgets", false, true, "TypeScript"),
    ("acme", "infra", true, false, "HCL"),
    ("acme", "docs", false, false, "Markdown"),
    ("globex", "website", false, false, "JavaScript"),
    ("globex", "api", true, false, "Go"),
    ("initech", "tps-reports", true, false, "Python"),
    ("initech", "printer-driver", false, false, "C"),
    ("alice", "dotfiles", false, false, "Shell"),
    ("alice", "secret-notes", true, false, "Markdown"),
    ("bob", "playground", false, false, "Rust"),
    ("judy", "hello-world", false, false, "Python"),
];
pub(super) const COLLABORATORS: [(&str, &str, Role); 4] = [
    ("acme/widgets", "carol", Role::Write),
    ("acme/gadgets", "bob", Role::Write),
    ("alice/secret-notes", "bob", Role::Read),
    ("globex/api", "frank", Role::Maintain),
];

pub(super) const WORDS: [&str; 24] = [
    "cache", "runner", "flaky", "timeout", "parser", "config", "deploy", "docs", "memory", "retry",
    "token", "build", "release", "arm64", "metrics", "logging", "queue", "upload", "schema",
    "index", "backoff", "webhook", "quota", "proxy",
];
pub(super) const VERBS: [&str; 10] = [
    "Fix", "Add", "Remove", "Refactor", "Update", "Speed up", "Document", "Harden", "Rename",
    "Bump",
];

pub(super) fn sentence(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{} {} {}",
        VERBS[rng.gen_range(0..VERBS.len())],
        WORDS[rng.gen_range(0..WORDS.len())],
        WORDS[rng.gen_range(0..WORDS.len())]
    )
}

pub(crate) fn hex_id(rng: &mut ChaCha8Rng, len: usize) -> String {
    let bytes: Vec<u8> = (0..len.div_ceil(2)).map(|_| rng.r#gen::<u8>()).collect();
    let mut s = hex::encode(bytes);
    s.truncate(len);
    s
}

pub(crate) fn node_id(prefix: &str, id: u64) -> String {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_be_bytes());
    format!("{prefix}_kwDO{b}")
}

pub(super) const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token shaped like GitHub's: prefix, 30 random base62 characters, then
/// the CRC32 of those, base62, zero-padded to 6.
pub(crate) fn gh_token(rng: &mut ChaCha8Rng, prefix: &str) -> String {
    let body: String = (0..30)
        .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
        .collect();
    let mut crc = flate2::Crc::new();
    crc.update(body.as_bytes());
    let mut n = crc.sum();
    let mut chk = Vec::new();
    while n > 0 {
        chk.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
    while chk.len() < 6 {
        chk.push(b'0');
    }
    chk.reverse();
    format!("{prefix}{body}{}", String::from_utf8_lossy(&chk))
}

pub(super) fn blob_sha(content: &[u8]) -> String {
    // Git would use SHA-1 over "blob <len>\0<content>"; we have SHA-256 at
    // hand and keep 40 hex digits so the shape matches.
    let mut h = Sha256::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    let mut s = hex::encode(h.finalize());
    s.truncate(40);
    s
}

pub(crate) fn uuid_from(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.r#gen();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

pub(super) fn make_commit(
    rng: &mut ChaCha8Rng,
    author: usize,
    date: i64,
    parent: Option<usize>,
    files: &[String],
) -> Commit {
    let n = rng.gen_range(1..4);
    let mut fs = Vec::new();
    for _ in 0..n {
        let f = files[rng.gen_range(0..files.len())].clone();
        if !fs
            .iter()
            .any(|(x, _, _, _): &(String, &str, u64, u64)| *x == f)
        {
            fs.push((f, "modified", rng.gen_range(1..80), rng.gen_range(0..40)));
        }
    }
    Commit {
        sha: hex_id(rng, 40),
        tree_sha: hex_id(rng, 40),
        message: format!("{}\n\n{}.", sentence(rng), sentence(rng)),
        author,
        date,
        parent,
        files: fs,
    }
}

pub(super) fn make_runners(
    rng: &mut ChaCha8Rng,
    fresh: &mut impl FnMut(&mut ChaCha8Rng) -> u64,
    scope: &str,
    n: usize,
) -> Vec<Runner> {
    let base = scope.replace('/', "-");
    (0..n)
        .map(|i| {
            let arm = rng.gen_bool(0.4);
            let id = fresh(rng) % 100_000 + 1;
            Runner {
                id,
                name: format!(
                    "{base}-{}-{:02}",
                    if arm { "arm64" } else { "amd64" },
                    i + 1
                ),
                os: "Linux",
                online: rng.gen_bool(0.85),
                busy: rng.gen_bool(0.4),
                labels: vec![
                    (1, "self-hosted".to_string(), "read-only"),
                    (2, "Linux".to_string(), "read-only"),
                    (
                        3,
                        if arm { "ARM64" } else { "X64" }.to_string(),
                        "read-only",
                    ),
                    (rng.gen_range(4..1000), "gpu-free".to_string(), "custom"),
                ],
            }
        })
        .collect()
}
