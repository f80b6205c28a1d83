//! The vault on real files: sealing, scopes, expiry, rotation, tampering,
//! concurrency, key handling and the audit chain.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use ghcache_vault::{
    AuditEntry, AuditLog, AuditOutcome, Claims, KeySource, Scope, Vault, VaultError,
};
use secrecy::{ExposeSecret, SecretString};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn vault(dir: &Path) -> Vault {
    Vault::open(dir, &KeySource::Env(KEY.into())).unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn scope(text: &str) -> Scope {
    text.parse().unwrap()
}

fn job(repo: &str, workflow: &str, runner: &str) -> Claims {
    Claims {
        repository: Some(repo.into()),
        workflow_ref: Some(format!(
            "{repo}/.github/workflows/{workflow}@refs/heads/main"
        )),
        git_ref: Some("refs/heads/main".into()),
        runner_name: Some(runner.into()),
        runner_labels: vec!["linux".into()],
        run_id: Some("42".into()),
        verified: false,
    }
}

fn chosen(v: &Vault, claims: &Claims) -> Vec<(String, String, String)> {
    v.select(claims, None)
        .unwrap()
        .chosen
        .into_iter()
        .map(|(info, value)| {
            (
                info.name,
                info.scope.to_string(),
                value.expose_secret().to_owned(),
            )
        })
        .collect()
}

#[test]
fn values_round_trip_with_awkward_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let awkward = "a%b\r\nc\nd\re=<<EOF\nü🦀\nghadelimiter_123\n";
    v.set(
        "AWKWARD",
        &Scope::Global,
        &secret(awkward),
        None,
        Some("test"),
    )
    .unwrap();
    drop(v);
    let v = vault(dir.path());
    let (info, value) = v.get("AWKWARD", &Scope::Global).unwrap();
    assert_eq!(value.expose_secret(), awkward);
    assert_eq!(
        (info.version, info.description.as_deref()),
        (1, Some("test"))
    );
    // Nothing on disk shows the value.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("ghadelimiter_123"),
            "{entry:?}"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_wrong_master_key_is_refused_before_any_record() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path())
        .set("TOKEN", &Scope::Global, &secret("v"), None, None)
        .unwrap();
    let err = Vault::open(dir.path(), &KeySource::Env(OTHER_KEY.into())).unwrap_err();
    assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("another key"));
}

#[test]
fn a_flipped_bit_or_a_record_moved_to_another_name_does_not_open_and_the_rest_does() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    v.set("GOOD", &Scope::Global, &secret("good"), None, None)
        .unwrap();
    v.set("FLIPPED", &Scope::Global, &secret("flipped"), None, None)
        .unwrap();
    v.set("MOVED", &Scope::Global, &secret("moved"), None, None)
        .unwrap();
    let records = dir.path().join("records");
    let file_of = |name: &str| {
        walk(&records)
            .into_iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}."))
            })
            .unwrap()
    };
    // Flip one bit of the ciphertext.
    let flipped = file_of("FLIPPED");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&flipped).unwrap()).unwrap();
    let mut ct = hex::decode(record["ciphertext"].as_str().unwrap()).unwrap();
    ct[0] ^= 1;
    record["ciphertext"] = hex::encode(ct).into();
    std::fs::write(&flipped, serde_json::to_vec(&record).unwrap()).unwrap();
    // Copy MOVED's sealed value under another name (file name consistent).
    let moved = file_of("MOVED");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&moved).unwrap()).unwrap();
    record["name"] = "STOLEN".into();
    let stolen_name = moved
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replacen("MOVED", "STOLEN", 1);
    std::fs::write(
        records.join(stolen_name),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();

    let selection = v.select(&Claims::default(), None).unwrap();
    let names: Vec<_> = selection
        .chosen
        .iter()
        .map(|(i, _)| i.name.as_str())
        .collect();
    assert_eq!(names, ["GOOD", "MOVED"]);
    assert_eq!(selection.problems.len(), 2, "{:?}", selection.problems);
    assert!(selection.problems.iter().any(|p| p.starts_with("FLIPPED.")));
    assert!(selection.problems.iter().any(|p| p.starts_with("STOLEN.")));
    assert!(matches!(
        v.get("FLIPPED", &Scope::Global).unwrap_err(),
        VaultError::RecordTampered { .. }
    ));
}

#[test]
fn the_most_specific_scope_wins_and_ties_are_refused_at_write() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    v.set("TOKEN", &Scope::Global, &secret("global"), None, None)
        .unwrap();
    v.set(
        "TOKEN",
        &scope("repo:acme/*"),
        &secret("acme-any"),
        None,
        None,
    )
    .unwrap();
    v.set(
        "TOKEN",
        &scope("repo:acme/widgets"),
        &secret("widgets"),
        None,
        None,
    )
    .unwrap();
    v.set(
        "TOKEN",
        &scope("workflow:acme/widgets/.github/workflows/release.yml"),
        &secret("release"),
        None,
        None,
    )
    .unwrap();
    v.set("TOKEN", &scope("runner:gpu-*"), &secret("gpu"), None, None)
        .unwrap();
    let value = |claims: &Claims| chosen(&v, claims)[0].2.clone();
    assert_eq!(value(&job("acme/widgets", "release.yml", "r1")), "release");
    assert_eq!(value(&job("acme/widgets", "ci.yml", "r1")), "widgets");
    assert_eq!(value(&job("acme/gadgets", "ci.yml", "r1")), "acme-any");
    assert_eq!(value(&job("other/x", "ci.yml", "gpu-1")), "gpu");
    assert_eq!(value(&job("other/x", "ci.yml", "r1")), "global");
    // Ties: another glob over repositories, another runner pattern.
    for tie in ["repo:*/widgets", "runner:*-large"] {
        let err = v
            .set("TOKEN", &scope(tie), &secret("x"), None, None)
            .unwrap_err();
        assert!(matches!(err, VaultError::Tie { .. }), "{tie}: {err}");
    }
    // An exact runner label outranks the pattern; a second exact one could
    // name the same runner (a name and a label), so it ties.
    v.set(
        "TOKEN",
        &scope("runner:linux"),
        &secret("linux"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(value(&job("other/x", "ci.yml", "gpu-1")), "linux");
    let err = v
        .set("TOKEN", &scope("runner:r1"), &secret("x"), None, None)
        .unwrap_err();
    assert!(matches!(err, VaultError::Tie { .. }), "{err}");
    // The same scope again is a rotation, not a set.
    let err = v
        .set("TOKEN", &Scope::Global, &secret("x"), None, None)
        .unwrap_err();
    assert!(err.to_string().contains("creds rotate"), "{err}");
}

#[test]
fn expired_values_are_never_selected_and_rotation_keeps_a_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    v.set(
        "OLD",
        &Scope::Global,
        &secret("old"),
        Some(Duration::ZERO),
        None,
    )
    .unwrap();
    v.set("LIVE", &Scope::Global, &secret("v1"), None, None)
        .unwrap();
    let selection = v.select(&Claims::default(), None).unwrap();
    assert_eq!(selection.expired.len(), 1);
    assert_eq!(selection.expired[0].name, "OLD");
    assert_eq!(
        chosen(&v, &Claims::default()),
        [("LIVE".into(), "global".into(), "v1".into())]
    );

    let rotated = v
        .rotate(
            "LIVE",
            &Scope::Global,
            &secret("v2"),
            None,
            Duration::from_secs(3600),
        )
        .unwrap();
    assert_eq!(rotated.version, 2);
    assert_eq!(chosen(&v, &Claims::default())[0].2, "v2");
    let (list, _) = v.list().unwrap();
    let v1 = list
        .iter()
        .find(|r| r.name == "LIVE" && r.version == 1)
        .unwrap();
    assert!(
        v1.expires.is_some(),
        "the previous version expires after the grace period"
    );
    // Asked-for names that match nothing are reported.
    let missing = v
        .select(
            &Claims::default(),
            Some(&["NOPE".to_string(), "LIVE".to_string()]),
        )
        .unwrap();
    assert_eq!(missing.missing, ["NOPE"]);
    assert_eq!(missing.chosen.len(), 1);
}

#[test]
fn twenty_concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    vault(dir.path());
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let v = vault(&dir);
                v.set(
                    &format!("NAME_{i}"),
                    &Scope::Global,
                    &secret(&format!("v{i}")),
                    None,
                    None,
                )
                .unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = chosen(&vault(dir.path()), &Claims::default());
    assert_eq!(got.len(), 20);
}

#[test]
#[cfg(unix)]
fn a_key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Vault::open(&dir.path().join("vault"), &KeySource::File(key.clone())).unwrap_err();
    assert!(matches!(err, VaultError::KeyPermissions { .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Vault::open(&dir.path().join("vault"), &KeySource::File(key)).unwrap();
}

#[test]
fn a_passphrase_opens_only_its_own_vault() {
    let dir = tempfile::tempdir().unwrap();
    let pass = KeySource::Passphrase("correct horse battery staple".into());
    Vault::open(dir.path(), &pass)
        .unwrap()
        .set("X", &Scope::Global, &secret("x"), None, None)
        .unwrap();
    assert_eq!(
        Vault::open(dir.path(), &pass)
            .unwrap()
            .get("X", &Scope::Global)
            .unwrap()
            .1
            .expose_secret(),
        "x"
    );
    let wrong = KeySource::Passphrase("incorrect horse battery staple".into());
    assert!(matches!(
        Vault::open(dir.path(), &wrong),
        Err(VaultError::WrongKey { .. })
    ));
    assert!(Vault::open(dir.path(), &KeySource::Passphrase("short".into())).is_err());
}

fn entry(action: &str, name: &str) -> AuditEntry {
    AuditEntry {
        action: action.into(),
        name: name.into(),
        scope: Some("global".into()),
        version: Some(1),
        actor: job("acme/widgets", "ci.yml", "r1"),
        outcome: AuditOutcome::Ok,
    }
}

#[test]
fn audit_verify_catches_edits_removals_reordering_and_truncation() {
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        for i in 0..4 {
            log.append(entry("inject", &format!("N{i}"))).unwrap();
        }
        assert_eq!(log.verify().unwrap().lines, 4);
        let lines: Vec<String> = std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        (dir, log, lines)
    };
    let write = |log: &AuditLog, lines: &[String]| {
        std::fs::write(
            log.path(),
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    };
    let (_d, log, mut lines) = fresh();
    lines[1] = lines[1].replace("\"N1\"", "\"N9\"");
    write(&log, &lines);
    assert!(log.verify().unwrap_err().to_string().contains("line 3"));

    let (_d, log, mut lines) = fresh();
    lines.remove(1);
    write(&log, &lines);
    assert!(log.verify().is_err());

    let (_d, log, mut lines) = fresh();
    lines.swap(1, 2);
    write(&log, &lines);
    assert!(log.verify().is_err());

    let (_d, log, mut lines) = fresh();
    lines.pop();
    write(&log, &lines);
    assert!(log.verify().unwrap_err().to_string().contains("truncated"));

    let (_d, log, mut lines) = fresh();
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("\"ok\"", "\"refused\"");
    write(&log, &lines);
    assert!(log.verify().is_err(), "an edited last line");

    // Lines never hold a value, and say the claims were not verified.
    let (_d, _log, lines) = fresh();
    assert!(
        lines[0].contains("\"claims_verified\":false"),
        "{}",
        lines[0]
    );
}
