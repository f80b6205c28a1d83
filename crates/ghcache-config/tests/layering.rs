//! Configuration: precedence across the four layers and the named errors.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ghcache_config::{ConfigError, Origin, Overrides, Sources, load};

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".github")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        Workspace { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(".github").join(name), text).unwrap();
    }
    fn sources(&self, env: &[(&str, &str)]) -> Sources {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("HOME".into(), "/home/runner".into()));
        Sources {
            env,
            cwd: self.path().to_owned(),
        }
    }
}

const FILE: &str = "\
# ghcache cache configuration
cache:
  enabled: true
  max_size: 2GiB
  default_ttl: 600
  persistence: true
  dir: /srv/from-file
p2p:
  enabled: true
  listen_port: 9200
  peer_discovery: true
operation_ttls:
  /repos/*/*/actions/runners: 30
";

#[test]
fn defaults_apply_with_nothing_set() {
    let ws = Workspace::new();
    let config = load(&Overrides::default(), &ws.sources(&[])).unwrap();
    assert_eq!(config.proxy_addr.value.to_string(), "127.0.0.1:8787");
    assert_eq!(config.upstream.value.as_str(), "https://api.github.com");
    assert_eq!(config.listen_port.value.0, 9100);
    assert_eq!(config.default_ttl.value.0.as_secs(), 300);
    assert!(config.p2p_enabled.value);
    assert_eq!(
        config.state_dir.value,
        PathBuf::from("/home/runner/.local/state/ghcache")
    );
    assert_eq!(
        config.registry_dir.value,
        config.state_dir.value.join("peers")
    );
    assert!(config.cluster_secret.value.is_none());
    assert!(config.shown().iter().all(|r| r.origin == "default"));
}

#[test]
fn file_overrides_defaults_with_line_origins() {
    let ws = Workspace::new();
    ws.write("cache-config.yml", FILE);
    let config = load(&Overrides::default(), &ws.sources(&[])).unwrap();
    assert_eq!(config.listen_port.value.0, 9200);
    assert_eq!(
        config.listen_port.origin,
        Origin::File {
            path: ".github/cache-config.yml".into(),
            line: Some(10)
        }
    );
    assert_eq!(
        config.default_ttl.origin.to_string(),
        "file .github/cache-config.yml:5"
    );
    assert_eq!(config.max_size.value.0, 2 << 30);
    assert_eq!(config.state_dir.value, PathBuf::from("/srv/from-file"));
    assert_eq!(config.operation_ttls.value.len(), 1);
    assert_eq!(config.files, vec![".github/cache-config.yml".to_owned()]);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let ws = Workspace::new();
    ws.write("cache-config.yml", FILE);
    let env = [
        ("CACHE_LISTEN_PORT", "9300"),
        ("CACHE_DEFAULT_TTL", "5m"),
        ("CACHE_DIR", "/srv/from-env"),
        ("GHCACHE_PROXY_ADDR", "127.0.0.1:9999"),
        ("CACHE_ENABLE_P2P", "false"),
    ];
    let config = load(&Overrides::default(), &ws.sources(&env)).unwrap();
    assert_eq!(config.listen_port.value.0, 9300);
    assert_eq!(config.listen_port.origin, Origin::Env("CACHE_LISTEN_PORT"));
    assert_eq!(config.default_ttl.value.0.as_secs(), 300);
    assert_eq!(config.state_dir.value, PathBuf::from("/srv/from-env"));
    assert_eq!(config.state_dir.origin, Origin::Env("CACHE_DIR"));
    assert!(!config.p2p_enabled.value);

    let flags = Overrides {
        listen_port: Some("9400".parse().unwrap()),
        state_dir: Some("/srv/from-flag".into()),
        proxy_addr: Some("127.0.0.1:7000".parse().unwrap()),
        default_ttl: Some("1h".parse().unwrap()),
        ..Overrides::default()
    };
    let config = load(&flags, &ws.sources(&env)).unwrap();
    assert_eq!(config.listen_port.value.0, 9400);
    assert_eq!(config.listen_port.origin, Origin::Flag("--listen-port"));
    assert_eq!(config.state_dir.value, PathBuf::from("/srv/from-flag"));
    assert_eq!(config.proxy_addr.value.to_string(), "127.0.0.1:7000");
    assert_eq!(config.default_ttl.value.0.as_secs(), 3600);
    // Untouched by flags: still from the environment.
    assert_eq!(config.proxy_addr.origin, Origin::Flag("--proxy-addr"));
    assert!(!config.p2p_enabled.value);
}

#[test]
fn state_dir_aliases_in_order() {
    let ws = Workspace::new();
    let config = load(
        &Overrides::default(),
        &ws.sources(&[("IPFS_ACCELERATE_CACHE_DIR", "/a"), ("CACHE_DIR", "/b")]),
    )
    .unwrap();
    assert_eq!(config.state_dir.value, PathBuf::from("/b"));
    let config = load(
        &Overrides::default(),
        &ws.sources(&[
            ("IPFS_ACCELERATE_CACHE_DIR", "/a"),
            ("GHCACHE_STATE_DIR", "/c"),
        ]),
    )
    .unwrap();
    assert_eq!(config.state_dir.value, PathBuf::from("/c"));
}

#[test]
fn empty_environment_values_count_as_unset() {
    let ws = Workspace::new();
    let config = load(
        &Overrides::default(),
        &ws.sources(&[("CACHE_LISTEN_PORT", "")]),
    )
    .unwrap();
    assert_eq!(config.listen_port.value.0, 9100);
}

fn error(ws: &Workspace, env: &[(&str, &str)]) -> String {
    let err = load(&Overrides::default(), &ws.sources(env)).unwrap_err();
    err.to_string()
}

#[test]
fn bad_port_in_env_names_the_variable() {
    let ws = Workspace::new();
    assert_eq!(
        error(&ws, &[("CACHE_LISTEN_PORT", "70000")]),
        "CACHE_LISTEN_PORT=70000 (environment): port must be 1-65535"
    );
}

#[test]
fn unknown_key_names_the_line_and_suggests() {
    let ws = Workspace::new();
    ws.write(
        "cache-config.yml",
        "# comment\n\n# more\n\ncache:\n  enabled: true\n  defualt_ttl: 600\n",
    );
    let err = error(&ws, &[]);
    assert!(
        err.starts_with(
            ".github/cache-config.yml:7: unknown key \"defualt_ttl\" (did you mean \"default_ttl\"?)"
        ),
        "{err}"
    );
    assert!(err.contains("in `cache`"), "{err}");
}

#[test]
fn unknown_top_level_section() {
    let ws = Workspace::new();
    ws.write("p2p-config.yml", "netwrok:\n  network_id: x\n");
    let err = error(&ws, &[]);
    assert!(
        err.starts_with(
            ".github/p2p-config.yml:1: unknown key \"netwrok\" (did you mean \"network\"?)"
        ),
        "{err}"
    );
}

#[test]
fn bad_multiaddr_shows_the_offending_item() {
    let ws = Workspace::new();
    let err = error(
        &ws,
        &[(
            "CACHE_BOOTSTRAP_PEERS",
            "/ip4/10.0.0.1/tcp/9100,/ip4/10.0.0.2/tcpp/9100",
        )],
    );
    assert!(
        err.starts_with("CACHE_BOOTSTRAP_PEERS (environment): item 2 \"/ip4/10.0.0.2/tcpp/9100\""),
        "{err}"
    );
}

#[test]
fn bad_values_in_files_name_file_line_and_rule() {
    let ws = Workspace::new();
    ws.write(
        "cache-config.yml",
        "cache:\n  enabled: true\np2p:\n  listen_port: 70000\n",
    );
    let err = error(&ws, &[]);
    assert!(err.starts_with(".github/cache-config.yml:4"), "{err}");
    assert!(err.contains("port must be 1-65535"), "{err}");

    ws.write("cache-config.yml", "cache:\n  enabled: maybe\n");
    let err = error(&ws, &[]);
    assert!(err.starts_with(".github/cache-config.yml:2"), "{err}");
    assert!(err.contains("boolean"), "{err}");

    ws.write("cache-config.yml", "cache:\n  max_size: 12 parsecs\n");
    let err = error(&ws, &[]);
    assert!(err.contains("unknown size unit"), "{err}");

    ws.write("cache-config.yml", "cache: [\n");
    let err = error(&ws, &[]);
    assert!(err.starts_with(".github/cache-config.yml:"), "{err}");
}

#[test]
fn p2p_config_shapes_are_understood() {
    let ws = Workspace::new();
    ws.write(
        "p2p-config.yml",
        "network:\n  protocol_version: \"1.0.0\"\n  network_id: acme-ci\ndiscovery:\n  methods:\n    mdns: false\n    dht: true\nsecurity:\n  encryption:\n    enabled: true\n    algorithm: AES-256-GCM\n",
    );
    let config = load(&Overrides::default(), &ws.sources(&[])).unwrap();
    assert_eq!(config.network_id.value, "acme-ci");
    assert!(!config.mdns.value);
    assert_eq!(
        config.mdns.origin.to_string(),
        "file .github/p2p-config.yml:6"
    );

    ws.write(
        "p2p-config.yml",
        "security:\n  encryption:\n    enabled: false\n",
    );
    assert!(error(&ws, &[]).contains("always encrypts"));
    ws.write(
        "p2p-config.yml",
        "security:\n  encryption:\n    algorithm: rot13\n",
    );
    assert!(error(&ws, &[]).contains("only algorithm is aes-256-gcm"));
}

#[test]
fn explicit_config_file_replaces_discovery() {
    let ws = Workspace::new();
    ws.write("cache-config.yml", FILE);
    let other = ws.path().join("mine.yml");
    std::fs::write(&other, "p2p:\n  listen_port: 9555\n").unwrap();
    let flags = Overrides {
        config_file: Some(other.clone()),
        ..Overrides::default()
    };
    let config = load(&flags, &ws.sources(&[])).unwrap();
    assert_eq!(config.listen_port.value.0, 9555);
    assert_eq!(
        config.default_ttl.value.0.as_secs(),
        300,
        "discovered file ignored"
    );

    let flags = Overrides {
        config_file: Some(ws.path().join("missing.yml")),
        ..Overrides::default()
    };
    let err = load(&flags, &ws.sources(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("missing.yml"));
}

#[test]
fn secrets_are_redacted_everywhere() {
    let ws = Workspace::new();
    let secret = "correct-horse-battery-staple-42";
    let config = load(
        &Overrides::default(),
        &ws.sources(&[("GHCACHE_CLUSTER_SECRET", secret)]),
    )
    .unwrap();
    assert_eq!(
        config.cluster_secret.value.as_ref().unwrap().expose(),
        secret
    );
    let shown = format!(
        "{}{}{:?}",
        config.render_text(),
        config.render_json(),
        config
    );
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("<redacted>"));

    let err = error(&ws, &[("GHCACHE_CLUSTER_SECRET", "short")]);
    assert!(err.contains("at least 16"), "{err}");
    assert!(!err.contains("short\""), "{err}");
}

#[test]
fn github_token_fallback_warns_loudly() {
    let ws = Workspace::new();
    let config = load(
        &Overrides::default(),
        &ws.sources(&[("GITHUB_TOKEN", "ghs_0123456789abcdefghij0123456789abcdef")]),
    )
    .unwrap();
    assert_eq!(config.cluster_secret.origin, Origin::Env("GITHUB_TOKEN"));
    assert!(config.warnings[0].contains("GHCACHE_CLUSTER_SECRET"));
    assert!(!config.render_text().contains("ghs_0123"));
}

#[test]
fn show_text_has_origins() {
    let ws = Workspace::new();
    ws.write("cache-config.yml", FILE);
    let config = load(
        &Overrides::default(),
        &ws.sources(&[("CACHE_LISTEN_PORT", "9300")]),
    )
    .unwrap();
    let text = config.render_text();
    assert!(
        text.lines().any(
            |l| l.starts_with("env CACHE_LISTEN_PORT") && l.ends_with("p2p.listen_port = 9300")
        ),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("file .github/cache-config.yml:5")
                && l.ends_with("cache.default_ttl = 600s")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("default") && l.ends_with("proxy.addr = 127.0.0.1:8787")),
        "{text}"
    );
    let json = config.render_json();
    assert_eq!(json["settings"]["p2p.listen_port"]["value"], 9300);
    assert_eq!(
        json["settings"]["p2p.listen_port"]["origin"],
        "env CACHE_LISTEN_PORT"
    );
}

#[test]
fn credentials_in_an_upstream_url_are_never_echoed() {
    let ws = Workspace::new();
    let err = error(
        &ws,
        &[(
            "GHCACHE_UPSTREAM",
            "https://bot:hunter2@ghe.example.com/api/v3",
        )],
    );
    assert!(
        err.starts_with("GHCACHE_UPSTREAM=https://***@ghe.example.com"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_proxy_reachable_from_other_hosts_warns_and_refuses_fleet_trust_unless_acknowledged() {
    let ws = Workspace::new();
    let open = load(
        &Overrides::default(),
        &ws.sources(&[("GHCACHE_PROXY_ADDR", "0.0.0.0:8787")]),
    )
    .unwrap();
    assert!(
        open.warnings
            .iter()
            .any(|w| w.contains("0.0.0.0:8787") && w.contains("127.0.0.1")),
        "{:?}",
        open.warnings
    );
    let refused = load(
        &Overrides::default(),
        &ws.sources(&[
            ("GHCACHE_PROXY_ADDR", "0.0.0.0:8787"),
            ("GHCACHE_FLEET_TRUST", "true"),
        ]),
    )
    .unwrap_err();
    let text = refused.to_string();
    assert!(text.contains("GHCACHE_FLEET_TRUST_NON_LOOPBACK"), "{text}");
    assert!(text.contains("env GHCACHE_FLEET_TRUST"), "{text}");
    let acknowledged = load(
        &Overrides::default(),
        &ws.sources(&[
            ("GHCACHE_PROXY_ADDR", "0.0.0.0:8787"),
            ("GHCACHE_FLEET_TRUST", "true"),
            ("GHCACHE_FLEET_TRUST_NON_LOOPBACK", "yes"),
        ]),
    )
    .unwrap();
    assert!(acknowledged.fleet_trust.value);
    // On loopback, fleet trust needs no acknowledgement and nothing warns.
    let local = load(
        &Overrides::default(),
        &ws.sources(&[("GHCACHE_FLEET_TRUST", "true")]),
    )
    .unwrap();
    assert!(local.warnings.is_empty());
}

#[test]
fn peer_trust_is_verify_unless_members_is_asked_for() {
    let ws = Workspace::new();
    let config = load(&Overrides::default(), &ws.sources(&[])).unwrap();
    assert_eq!(config.peer_trust.value, ghcache_config::PeerTrust::Verify);
    let members = load(
        &Overrides::default(),
        &ws.sources(&[("GHCACHE_PEER_TRUST", "members")]),
    )
    .unwrap();
    assert_eq!(members.peer_trust.value, ghcache_config::PeerTrust::Members);
    let wrong = load(
        &Overrides::default(),
        &ws.sources(&[("GHCACHE_PEER_TRUST", "everyone")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        wrong.contains("GHCACHE_PEER_TRUST") && wrong.contains("verify"),
        "{wrong}"
    );
}

#[test]
fn protocol_version_is_accepted_but_ignored_with_a_warning() {
    let ws = Workspace::new();
    ws.write(
        "p2p-config.yml",
        "network:\n  protocol_version: \"1.0.0\"\n  network_id: acme-ci\n",
    );
    let config = load(&Overrides::default(), &ws.sources(&[])).unwrap();
    assert_eq!(config.network_id.value, "acme-ci");
    assert!(
        config.warnings.iter().any(|w| w
            .starts_with(".github/p2p-config.yml:2: network.protocol_version is ignored")),
        "{:?}",
        config.warnings
    );
    assert!(!config.render_text().contains("protocol_version ="));
}

#[test]
fn network_ids_follow_one_rule_in_every_layer() {
    let ws = Workspace::new();
    let err = error(&ws, &[("GHCACHE_NETWORK_ID", "../bad")]);
    assert!(
        err.starts_with("GHCACHE_NETWORK_ID=../bad (environment): network id \"../bad\""),
        "{err}"
    );
    ws.write("p2p-config.yml", "network:\n  network_id: \"a b\"\n");
    let err = error(&ws, &[]);
    assert!(
        err.starts_with(".github/p2p-config.yml:2: network.network_id: network id \"a b\""),
        "{err}"
    );
    assert!(ghcache_config::validate_network_id(&"x".repeat(65)).is_err());
    assert!(ghcache_config::validate_network_id("acme-ci_1.0").is_ok());
}

#[test]
fn disabling_encryption_names_the_line() {
    let ws = Workspace::new();
    ws.write(
        "p2p-config.yml",
        "security:\n  encryption:\n    enabled: false\n",
    );
    let err = error(&ws, &[]);
    assert!(
        err.starts_with(
            ".github/p2p-config.yml:3: security.encryption.enabled: false is not supported"
        ),
        "{err}"
    );
}

#[test]
fn a_section_that_is_not_a_mapping_is_named() {
    let ws = Workspace::new();
    ws.write("cache-config.yml", "cache: 5\n");
    let err = error(&ws, &[]);
    assert!(
        err.starts_with(".github/cache-config.yml:1: cache: expected a mapping"),
        "{err}"
    );
}
