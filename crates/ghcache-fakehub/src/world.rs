//! The seeded world: accounts, repositories and everything in them, plus the
//! well-known tokens tests use. Generation is deterministic per seed.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The instant the seeded history ends (2025-01-15T12:00:00Z). Seeded
/// timestamps are before it, so bodies do not depend on the wall clock.
pub(crate) const WORLD_END: i64 = 1_736_942_400;

/// Role of a user on a repository, in increasing power (GitHub's five roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Read => "read",
            Role::Triage => "triage",
            Role::Write => "write",
            Role::Maintain => "maintain",
            Role::Admin => "admin",
        }
    }
}

/// Access level of an integration (GITHUB_TOKEN / installation) permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Level> {
        match s {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }
}

pub(crate) type Perms = BTreeMap<String, Level>;

fn perms(list: &[(&str, Level)]) -> Perms {
    list.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
}

/// Who is making a request, once the token has been looked up.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    Anonymous,
    User {
        user: usize,
    },
    GithubToken {
        repo: usize,
        perms: Perms,
    },
    Installation {
        inst: usize,
        perms: Perms,
        repos: Option<Vec<usize>>,
    },
    App,
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub id: u64,
    pub login: String,
    pub node_id: String,
    pub is_org: bool,
    pub name: String,
    pub company: Option<String>,
    pub location: Option<String>,
    pub bio: Option<String>,
    pub blog: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub followers: u64,
    pub following: u64,
    /// For orgs: (user index, is owner).
    pub members: Vec<(usize, bool)>,
    /// For orgs: org-level self-hosted runners.
    pub runners: Vec<Runner>,
}

#[derive(Debug, Clone)]
pub(crate) struct Commit {
    pub sha: String,
    pub tree_sha: String,
    pub message: String,
    pub author: usize,
    pub date: i64,
    pub parent: Option<usize>,
    pub files: Vec<(String, &'static str, u64, u64)>,
}

#[derive(Debug, Clone)]
pub(crate) struct PullData {
    pub id: u64,
    pub node_id: String,
    pub head_ref: String,
    pub head_commit: usize,
    pub base_ref: String,
    pub base_commit: usize,
    pub merged_at: Option<i64>,
    pub draft: bool,
    pub commits: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub id: u64,
    pub node_id: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub user: usize,
    pub open: bool,
    pub labels: Vec<(u64, String, String)>,
    pub comments: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub pull: Option<PullData>,
}

#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub id: u64,
    pub node_id: String,
    pub issue_number: u64,
    pub user: usize,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    pub id: u64,
    #[allow(dead_code)]
    pub node_id: String,
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub name: String,
    pub status: &'static str,
    pub conclusion: Option<&'static str>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: u64,
    pub node_id: String,
    pub name: String,
    pub status: &'static str,
    pub conclusion: Option<&'static str>,
    pub created_at: i64,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub steps: Vec<Step>,
    pub runner: Option<(u64, String)>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub id: u64,
    pub node_id: String,
    pub workflow: usize,
    pub run_number: u64,
    pub event: &'static str,
    pub status: &'static str,
    pub conclusion: Option<&'static str>,
    pub head_branch: String,
    pub head_commit: usize,
    pub actor: usize,
    pub triggering_actor: usize,
    pub created_at: i64,
    pub updated_at: i64,
    pub run_started_at: i64,
    pub run_attempt: u64,
    pub check_suite_id: u64,
    pub display_title: String,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub id: u64,
    pub name: String,
    pub os: &'static str,
    pub online: bool,
    pub busy: bool,
    pub labels: Vec<(u64, String, &'static str)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    pub id: u64,
    pub git_ref: String,
    pub commit_sha: String,
    pub analysis_key: String,
    pub environment: String,
    pub category: String,
    pub created_at: i64,
    pub results_count: u64,
    pub rules_count: u64,
    pub tool_name: String,
    pub tool_version: String,
    pub sarif_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Sarif {
    pub id: String,
    #[allow(dead_code)]
    pub analyses: Vec<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct File {
    pub path: String,
    pub content: Vec<u8>,
    pub sha: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub id: u64,
    pub node_id: String,
    pub owner: usize,
    pub name: String,
    pub private: bool,
    pub description: String,
    pub language: &'static str,
    pub default_branch: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub pushed_at: i64,
    pub size: u64,
    pub stargazers: u64,
    pub forks: u64,
    pub topics: Vec<String>,
    pub collaborators: Vec<(usize, Role)>,
    pub commits: Vec<Commit>,
    pub branches: Vec<(String, usize)>,
    pub issues: Vec<Issue>,
    pub comments: Vec<Comment>,
    pub workflows: Vec<Workflow>,
    pub runs: Vec<Run>,
    pub runners: Vec<Runner>,
    pub analyses: Vec<Analysis>,
    pub sarifs: Vec<Sarif>,
    pub files: Vec<File>,
}

impl Repo {
    pub(crate) fn open_issues(&self) -> u64 {
        self.issues.iter().filter(|i| i.open).count() as u64
    }

    /// [`State::bump`] below a repository: `rest` is the path after
    /// `/repos/o/r`; anything unrecognised bumps the repository itself.
    fn bump(&mut self, rest: &[&str], now: i64) -> bool {
        match rest {
            ["issues", n] | ["pulls", n] => match n
                .parse::<u64>()
                .ok()
                .and_then(|n| self.issues.iter_mut().find(|i| i.number == n))
            {
                Some(i) => {
                    i.updated_at = now;
                    true
                }
                None => false,
            },
            ["actions", "runs", id] => match id
                .parse::<u64>()
                .ok()
                .and_then(|id| self.runs.iter_mut().find(|r| r.id == id))
            {
                Some(r) => {
                    r.updated_at = now;
                    true
                }
                None => false,
            },
            ["actions", "runs"] => match self.runs.last_mut() {
                Some(r) => {
                    r.updated_at = now;
                    true
                }
                None => false,
            },
            ["issues"] | ["pulls"] => {
                let pulls = rest == ["pulls"];
                match self
                    .issues
                    .iter_mut()
                    .rev()
                    .find(|i| !pulls || i.pull.is_some())
                {
                    Some(i) => {
                        i.updated_at = now;
                        true
                    }
                    None => false,
                }
            }
            _ => {
                self.updated_at = now;
                true
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Installation {
    pub id: u64,
    pub account: usize,
    pub perms: Perms,
}

#[derive(Debug, Clone)]
pub(crate) struct MintedToken {
    pub inst: usize,
    pub expires_at: i64,
    pub perms: Perms,
    pub repos: Option<Vec<usize>>,
}

/// Mutable world state, behind the hub's lock.
#[derive(Debug)]
pub(crate) struct State {
    pub accounts: Vec<Account>,
    pub repos: Vec<Repo>,
    pub installations: Vec<Installation>,
    pub minted: HashMap<String, MintedToken>,
    pub app_id: u64,
    /// Bumped by every state change; cached bodies carry the generation they
    /// were rendered at.
    pub generation: u64,
    pub next_id: u64,
    pub rng: ChaCha8Rng,
}

impl State {
    pub(crate) fn account_idx(&self, login: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.login.eq_ignore_ascii_case(login))
    }
    pub(crate) fn repo_idx(&self, owner: &str, name: &str) -> Option<usize> {
        self.repos.iter().position(|r| {
            r.name.eq_ignore_ascii_case(name)
                && self.accounts[r.owner].login.eq_ignore_ascii_case(owner)
        })
    }
    pub(crate) fn repo_by_id(&self, id: u64) -> Option<usize> {
        self.repos.iter().position(|r| r.id == id)
    }
    pub(crate) fn full_name(&self, repo: usize) -> String {
        let r = &self.repos[repo];
        format!("{}/{}", self.accounts[r.owner].login, r.name)
    }
    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.next_id += self.rng.gen_range(1..50);
        self.next_id
    }

    /// A user's role on a repository (GitHub's role resolution, simplified:
    /// owner, org owner, explicit collaborator, org base permission `read`).
    pub(crate) fn user_role(&self, user: usize, repo: usize) -> Role {
        let r = &self.repos[repo];
        if r.owner == user {
            return Role::Admin;
        }
        let owner = &self.accounts[r.owner];
        let mut role = Role::None;
        if owner.is_org
            && let Some((_, is_owner)) = owner.members.iter().find(|(u, _)| *u == user)
        {
            role = if *is_owner { Role::Admin } else { Role::Read };
        }
        if let Some((_, c)) = r.collaborators.iter().find(|(u, _)| *u == user) {
            role = role.max(*c);
        }
        if role == Role::None && !r.private {
            role = Role::Read;
        }
        role
    }

    pub(crate) fn is_org_owner(&self, user: usize, org: usize) -> bool {
        self.accounts[org]
            .members
            .iter()
            .any(|(u, o)| *u == user && *o)
    }
    pub(crate) fn is_org_member(&self, user: usize, org: usize) -> bool {
        self.accounts[org].members.iter().any(|(u, _)| *u == user)
    }

    /// Resolves a commit-ish (full sha, unique prefix of ≥ 7, branch name,
    /// `refs/heads/x`, `HEAD`) to a commit index.
    pub(crate) fn resolve_ref(&self, repo: usize, r: &str) -> Option<usize> {
        let rp = &self.repos[repo];
        let name = r.strip_prefix("refs/heads/").unwrap_or(r);
        let name = if name == "HEAD" {
            rp.default_branch.as_str()
        } else {
            name
        };
        if let Some((_, c)) = rp.branches.iter().find(|(b, _)| b == name) {
            return Some(*c);
        }
        if name.len() >= 7 && name.len() <= 40 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let lower = name.to_ascii_lowercase();
            let mut hits = rp
                .commits
                .iter()
                .enumerate()
                .filter(|(_, c)| c.sha.starts_with(&lower));
            let first = hits.next()?;
            if hits.next().is_none() {
                return Some(first.0);
            }
        }
        None
    }

    /// A new version of the resource at `path` (`/users/u`, `/orgs/o`,
    /// `/repos/o/r`, `…/issues[/N]`, `…/pulls[/N]`, `…/actions/runs[/ID]`):
    /// its `updated_at` becomes `now` and the generation moves, so bodies and
    /// ETags change. False if no such resource exists.
    pub(crate) fn bump(&mut self, path: &str, now: i64) -> bool {
        let segs: Vec<&str> = path
            .split('?')
            .next()
            .unwrap_or("")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let found = match segs.as_slice() {
            ["users", u] | ["orgs", u] => match self.account_idx(u) {
                Some(a) => {
                    self.accounts[a].updated_at = now;
                    true
                }
                None => false,
            },
            ["repos", o, r, rest @ ..] => match self.repo_idx(o, r) {
                Some(ri) => self.repos[ri].bump(rest, now),
                None => false,
            },
            _ => false,
        };
        if found {
            self.generation += 1;
        }
        found
    }
}

// ---------------------------------------------------------------- public catalog

/// Kind of a well-known token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Classic personal access token (`ghp_…`), 5,000/h per user.
    Pat,
    /// An Actions `GITHUB_TOKEN` (`ghs_…`), 1,000/h per repository.
    GithubToken,
    /// An App installation token (`ghs_…`), 5,000/h per installation.
    Installation,
}

/// Access of a token to one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepoAccess {
    /// `owner/name`.
    pub full_name: String,
    /// GitHub role name: `admin`, `maintain`, `write`, `triage`, `read`.
    pub role: String,
}

/// A well-known token of the seeded world.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    /// The secret itself (fake, but shaped like GitHub's).
    pub token: String,
    /// What kind of token it is.
    pub kind: TokenKind,
    /// Rate-limit / stats identity: `user:alice`, `repo:acme/widgets`, `installation:N`.
    pub identity: String,
    /// Repositories it can read, with the role it has there. For users this
    /// lists private repositories and those where the user has more than read.
    pub repos: Vec<RepoAccess>,
    /// Integration permissions (`issues: write`, …); empty for PATs.
    pub permissions: BTreeMap<String, String>,
    /// Is this the read-only variant of a GITHUB_TOKEN.
    pub read_only: bool,
}

/// A seeded user or organisation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountInfo {
    /// Login.
    pub login: String,
    /// Numeric id.
    pub id: u64,
    /// Organisation rather than user.
    pub is_org: bool,
}

/// A seeded repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoInfo {
    /// `owner/name`.
    pub full_name: String,
    /// Numeric id.
    pub id: u64,
    /// Private repository.
    pub private: bool,
    /// Default branch name.
    pub default_branch: String,
    /// Sha of the default branch head.
    pub head_sha: String,
    /// Number of workflow runs at start.
    pub workflow_runs: usize,
    /// Ids of the workflow runs at start, newest first.
    pub run_ids: Vec<u64>,
    /// Number of issues + pull requests at start.
    pub issues_and_pulls: usize,
    /// Number of pull requests at start.
    pub pulls: usize,
    /// Number of repository-level self-hosted runners at start.
    pub runners: usize,
}

/// The seeded data a test can know about: tokens, accounts, repositories.
/// Immutable snapshot of the world at start; the server's state evolves with
/// writes.
#[derive(Debug, Clone)]
pub struct World {
    seed: u64,
    tokens: Vec<TokenInfo>,
    accounts: Vec<AccountInfo>,
    repos: Vec<RepoInfo>,
    app_id: u64,
    app_jwt: String,
    installations: Vec<(String, u64)>,
}

const PRIVATE_REPO: &str = "acme/widgets";
const PUBLIC_REPO: &str = "acme/gadgets";
const OUTSIDER: &str = "judy";

impl World {
    /// Seed the world was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Every well-known token.
    pub fn tokens(&self) -> &[TokenInfo] {
        &self.tokens
    }
    /// Users and organisations.
    pub fn accounts(&self) -> &[AccountInfo] {
        &self.accounts
    }
    /// Repositories.
    pub fn repos(&self) -> &[RepoInfo] {
        &self.repos
    }
    /// A repository by `owner/name`.
    pub fn repo(&self, full_name: &str) -> Option<&RepoInfo> {
        self.repos.iter().find(|r| r.full_name == full_name)
    }
    /// PAT of a user, if the user exists.
    pub fn try_pat(&self, login: &str) -> Option<&str> {
        let id = format!("user:{login}");
        self.tokens
            .iter()
            .find(|t| t.kind == TokenKind::Pat && t.identity == id)
            .map(|t| t.token.as_str())
    }
    /// PAT of a seeded user. Panics on an unknown login (a test bug).
    pub fn pat(&self, login: &str) -> &str {
        match self.try_pat(login) {
            Some(t) => t,
            None => panic!("fakehub world has no user {login:?}"),
        }
    }
    /// The GITHUB_TOKEN of a repository with the permissive default
    /// permissions (contents/issues/pull_requests/actions/security_events
    /// write). Panics on an unknown repository.
    pub fn github_token(&self, full_name: &str) -> &str {
        self.gh_token(full_name, false)
    }
    /// The GITHUB_TOKEN of a repository with the restricted default
    /// (contents read, metadata read). Panics on an unknown repository.
    pub fn github_token_read_only(&self, full_name: &str) -> &str {
        self.gh_token(full_name, true)
    }
    fn gh_token(&self, full_name: &str, ro: bool) -> &str {
        let id = format!("repo:{full_name}");
        match self
            .tokens
            .iter()
            .find(|t| t.kind == TokenKind::GithubToken && t.identity == id && t.read_only == ro)
        {
            Some(t) => &t.token,
            None => panic!("fakehub world has no repository {full_name:?}"),
        }
    }
    /// Login of a user with no access to any private repository but their own.
    pub fn outsider_login(&self) -> &str {
        OUTSIDER
    }
    /// PAT of [`World::outsider_login`].
    pub fn outsider_pat(&self) -> &str {
        self.pat(OUTSIDER)
    }
    /// A busy private repository (`owner/name`).
    pub fn private_repo(&self) -> &str {
        PRIVATE_REPO
    }
    /// A busy public repository (`owner/name`).
    pub fn public_repo(&self) -> &str {
        PUBLIC_REPO
    }
    /// The fake App's id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }
    /// The fake App's JWT (accepted as `Bearer` on `/app/...`).
    pub fn app_jwt(&self) -> &str {
        &self.app_jwt
    }
    /// Installation id of the App on an organisation.
    pub fn installation_id(&self, org: &str) -> Option<u64> {
        self.installations
            .iter()
            .find(|(o, _)| o == org)
            .map(|(_, id)| *id)
    }
    /// Installations: (account login, installation id).
    pub fn installations(&self) -> &[(String, u64)] {
        &self.installations
    }
}

// ---------------------------------------------------------------- generation

const USERS: [(&str, &str); 10] = [
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
const ORGS: [(&str, &str, &[&str], &[&str]); 3] = [
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
const REPOS: [(&str, &str, bool, bool, &str); 12] = [
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
const COLLABORATORS: [(&str, &str, Role); 4] = [
    ("acme/widgets", "carol", Role::Write),
    ("acme/gadgets", "bob", Role::Write),
    ("alice/secret-notes", "bob", Role::Read),
    ("globex/api", "frank", Role::Maintain),
];

const WORDS: [&str; 24] = [
    "cache", "runner", "flaky", "timeout", "parser", "config", "deploy", "docs", "memory", "retry",
    "token", "build", "release", "arm64", "metrics", "logging", "queue", "upload", "schema",
    "index", "backoff", "webhook", "quota", "proxy",
];
const VERBS: [&str; 10] = [
    "Fix", "Add", "Remove", "Refactor", "Update", "Speed up", "Document", "Harden", "Rename",
    "Bump",
];

fn sentence(rng: &mut ChaCha8Rng) -> String {
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

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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

fn blob_sha(content: &[u8]) -> String {
    // Git would use SHA-1 over "blob <len>\0<content>"; we have SHA-256 at
    // hand and keep 40 hex digits so the shape matches.
    let mut h = Sha256::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    let mut s = hex::encode(h.finalize());
    s.truncate(40);
    s
}

/// Everything generated from a seed.
pub(crate) struct Generated {
    pub state: State,
    pub world: World,
    pub tokens: HashMap<String, Principal>,
    pub app_jwt: String,
}

pub(crate) fn generate(seed: u64, busy_runs: usize) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut accounts = Vec::new();
    for (login, name) in USERS {
        let id = rng.gen_range(1_000_000..90_000_000);
        let created_at = WORLD_END - rng.gen_range(400..4000) * 86_400;
        accounts.push(Account {
            id,
            login: login.to_string(),
            node_id: node_id("U", id),
            is_org: false,
            name: name.to_string(),
            company: Some(format!("@{}", ORGS[rng.gen_range(0..ORGS.len())].0)),
            location: Some(
                ["Berlin", "Lisbon", "Toronto", "Osaka", "Nairobi"][rng.gen_range(0..5)]
                    .to_string(),
            ),
            bio: Some(format!("Works on {}", WORDS[rng.gen_range(0..WORDS.len())])),
            blog: format!("https://{login}.example.com"),
            created_at,
            updated_at: WORLD_END - rng.gen_range(1..100) * 86_400,
            followers: rng.gen_range(0..500),
            following: rng.gen_range(0..100),
            members: Vec::new(),
            runners: Vec::new(),
        });
    }
    let user_idx = |accounts: &Vec<Account>, l: &str| accounts.iter().position(|a| a.login == l);
    for (login, name, owners, members) in ORGS {
        let id = rng.gen_range(1_000_000..90_000_000);
        let mut m = Vec::new();
        for o in owners {
            if let Some(i) = user_idx(&accounts, o) {
                m.push((i, true));
            }
        }
        for o in members {
            if let Some(i) = user_idx(&accounts, o) {
                m.push((i, false));
            }
        }
        accounts.push(Account {
            id,
            login: login.to_string(),
            node_id: node_id("O", id),
            is_org: true,
            name: name.to_string(),
            company: None,
            location: Some("Earth".to_string()),
            bio: None,
            blog: format!("https://{login}.example.com"),
            created_at: WORLD_END - rng.gen_range(1000..3000) * 86_400,
            updated_at: WORLD_END - rng.gen_range(1..50) * 86_400,
            followers: rng.gen_range(0..2000),
            following: 0,
            members: m,
            runners: Vec::new(),
        });
    }
    for (login, name) in [
        ("github-actions[bot]", "GitHub Actions"),
        ("ghcache-fake-app[bot]", "ghcache fake app"),
    ] {
        let id = rng.gen_range(40_000_000..50_000_000);
        accounts.push(Account {
            id,
            login: login.to_string(),
            node_id: node_id("BOT", id),
            is_org: false,
            name: name.to_string(),
            company: None,
            location: None,
            bio: None,
            blog: String::new(),
            created_at: WORLD_END - 2000 * 86_400,
            updated_at: WORLD_END - 2000 * 86_400,
            followers: 0,
            following: 0,
            members: Vec::new(),
            runners: Vec::new(),
        });
    }
    let mut next_id: u64 = 3_000_000_000 + rng.gen_range(0..1_000_000);
    let mut fresh = |rng: &mut ChaCha8Rng| {
        next_id += rng.gen_range(1..5000);
        next_id
    };
    // org runners
    for a in accounts.iter_mut().filter(|a| a.is_org) {
        let n = rng.gen_range(4..10);
        a.runners = make_runners(&mut rng, &mut fresh, &a.login, n);
    }

    let mut repos = Vec::new();
    for (owner, name, private, busy, language) in REPOS {
        let owner_idx = accounts.iter().position(|a| a.login == owner).unwrap_or(0);
        let full = format!("{owner}/{name}");
        let collaborators: Vec<(usize, Role)> = COLLABORATORS
            .iter()
            .filter(|(r, _, _)| *r == full)
            .filter_map(|(_, u, role)| user_idx(&accounts, u).map(|i| (i, *role)))
            .collect();
        let mut contributors: Vec<usize> = if accounts[owner_idx].is_org {
            accounts[owner_idx]
                .members
                .iter()
                .map(|(u, _)| *u)
                .collect()
        } else {
            vec![owner_idx]
        };
        contributors.extend(collaborators.iter().map(|(u, _)| *u));
        let pick = |rng: &mut ChaCha8Rng| contributors[rng.gen_range(0..contributors.len())];
        let id = rng.gen_range(100_000_000..900_000_000);
        let created_at = WORLD_END - rng.gen_range(200..1500) * 86_400;

        // files
        let mut files = vec![
            (
                "README.md".to_string(),
                format!("# {name}\n\n{} for the {owner} fleet.\n", sentence(&mut rng)).into_bytes(),
            ),
            (
                ".github/workflows/ci.yml".to_string(),
                b"name: CI\non: [push, pull_request]\njobs:\n  build:\n    runs-on: [self-hosted, linux]\n    steps:\n      - uses: actions/checkout@v4\n      - run: make test\n".to_vec(),
            ),
            (
                ".github/workflows/codeql.yml".to_string(),
                b"name: CodeQL\non: [push]\njobs:\n  analyze:\n    runs-on: [self-hosted, linux]\n    steps:\n      - uses: actions/checkout@v4\n      - uses: github/codeql-action/analyze@v3\n".to_vec(),
            ),
            (
                "src/main.rs".to_string(),
                format!("fn main() {{\n    println!(\"{name} {}\");\n}}\n", rng.r#gen::<u32>()).into_bytes(),
            ),
            (
                "docs/guide.md".to_string(),
                format!("# Guide\n\n{}.\n", sentence(&mut rng)).into_bytes(),
            ),
        ];
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let files: Vec<File> = files
            .into_iter()
            .map(|(path, content)| File {
                sha: blob_sha(&content),
                path,
                content,
            })
            .collect();

        // commits on main
        let n_commits = if busy { 120 } else { 30 };
        let mut commits = Vec::new();
        let mut t = created_at;
        let span = (WORLD_END - 86_400 - created_at) / n_commits as i64;
        let file_names: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        for i in 0..n_commits {
            t += rng.gen_range(span / 2..span.max(span / 2 + 1) + 1);
            let author = pick(&mut rng);
            commits.push(make_commit(
                &mut rng,
                author,
                t,
                if i == 0 { None } else { Some(i - 1) },
                &file_names,
            ));
        }
        let mut branches = vec![("main".to_string(), commits.len() - 1)];

        // issues and pulls share the number space
        let n_items = if busy { 65 } else { 8 };
        let mut issues = Vec::new();
        let mut comments = Vec::new();
        let mut it = created_at + 86_400;
        let ispan = (WORLD_END - it) / n_items as i64;
        let label_defs = [
            ("bug", "d73a4a"),
            ("enhancement", "a2eeef"),
            ("ci", "0e8a16"),
            ("good first issue", "7057ff"),
        ];
        for number in 1..=n_items as u64 {
            it += rng.gen_range(ispan / 2..ispan.max(ispan / 2 + 1) + 1);
            let is_pr = rng.gen_bool(0.4);
            let open = rng.gen_bool(if is_pr { 0.3 } else { 0.45 });
            let user = pick(&mut rng);
            let created = it;
            let updated = (created + rng.gen_range(600..20 * 86_400)).min(WORLD_END);
            let closed_at = if open { None } else { Some(updated) };
            let n_labels = rng.gen_range(0..3);
            let mut labels = Vec::new();
            for _ in 0..n_labels {
                let (l, c) = label_defs[rng.gen_range(0..label_defs.len())];
                if !labels
                    .iter()
                    .any(|(_, n, _): &(u64, String, String)| n == l)
                {
                    labels.push((
                        rng.gen_range(1_000_000_000..9_000_000_000),
                        l.to_string(),
                        c.to_string(),
                    ));
                }
            }
            let n_comments = rng.gen_range(0..4);
            for k in 0..n_comments {
                let cid = rng.gen_range(1_000_000_000..3_000_000_000);
                let ct = created + (k + 1) * 3600;
                comments.push(Comment {
                    id: cid,
                    node_id: node_id("IC", cid),
                    issue_number: number,
                    user: pick(&mut rng),
                    body: format!("{}?", sentence(&mut rng)),
                    created_at: ct,
                    updated_at: ct,
                });
            }
            let pull = if is_pr {
                let base_commit = rng.gen_range(commits.len() / 2..commits.len());
                let n = rng.gen_range(1..4);
                let mut parent = base_commit;
                let mut ct = commits[base_commit].date;
                for _ in 0..n {
                    ct += rng.gen_range(600..7200);
                    commits.push(make_commit(&mut rng, user, ct, Some(parent), &file_names));
                    parent = commits.len() - 1;
                }
                let head_ref = format!("feature/{}-{number}", WORDS[rng.gen_range(0..WORDS.len())]);
                branches.push((head_ref.clone(), parent));
                let pid = rng.gen_range(1_000_000_000..2_500_000_000);
                Some(PullData {
                    id: pid,
                    node_id: node_id("PR", pid),
                    head_ref,
                    head_commit: parent,
                    base_ref: "main".to_string(),
                    base_commit,
                    merged_at: if !open && rng.gen_bool(0.8) {
                        closed_at
                    } else {
                        None
                    },
                    draft: open && rng.gen_bool(0.2),
                    commits: n as u64,
                })
            } else {
                None
            };
            let iid = rng.gen_range(1_000_000_000..3_000_000_000);
            issues.push(Issue {
                id: iid,
                node_id: node_id(if is_pr { "PR" } else { "I" }, iid),
                number,
                title: sentence(&mut rng),
                body: format!(
                    "{}.\n\nSteps:\n1. {}\n2. {}\n",
                    sentence(&mut rng),
                    sentence(&mut rng),
                    sentence(&mut rng)
                ),
                user,
                open,
                labels,
                comments: n_comments as u64,
                created_at: created,
                updated_at: updated,
                closed_at,
                pull,
            });
        }

        // workflows and runs
        let workflows: Vec<Workflow> = [
            ("CI", ".github/workflows/ci.yml"),
            ("CodeQL", ".github/workflows/codeql.yml"),
            ("Release", ".github/workflows/release.yml"),
        ]
        .iter()
        .map(|(n, p)| {
            let wid = rng.gen_range(10_000_000..200_000_000);
            Workflow {
                id: wid,
                node_id: node_id("W", wid),
                name: n.to_string(),
                path: p.to_string(),
            }
        })
        .collect();
        let n_runs = if busy {
            busy_runs
        } else {
            rng.gen_range(12..40)
        };
        let mut runs = Vec::new();
        let mut run_id = rng.gen_range(5_000_000_000u64..9_000_000_000);
        let mut job_id = run_id * 3;
        let mut rt = WORLD_END - (n_runs as i64) * 1800 - 3600;
        let mut run_numbers = [0u64; 3];
        let runner_pool: Vec<(u64, String)> = (1..=6)
            .map(|i| (rng.gen_range(1..500), format!("{owner}-runner-{i:02}")))
            .collect();
        for k in 0..n_runs {
            rt += rng.gen_range(300..3000);
            run_id += rng.gen_range(1..40_000);
            let wf = if rng.gen_bool(0.7) {
                0
            } else if rng.gen_bool(0.8) {
                1
            } else {
                2
            };
            run_numbers[wf] += 1;
            let (event, branch, head_commit) =
                if rng.gen_bool(0.35) && issues.iter().any(|i| i.pull.is_some()) {
                    let prs: Vec<&Issue> = issues.iter().filter(|i| i.pull.is_some()).collect();
                    let pr = prs[rng.gen_range(0..prs.len())];
                    let p = pr.pull.as_ref();
                    (
                        "pull_request",
                        p.map(|p| p.head_ref.clone()).unwrap_or_default(),
                        p.map(|p| p.head_commit).unwrap_or(0),
                    )
                } else if wf == 1 && rng.gen_bool(0.3) {
                    ("schedule", "main".to_string(), n_commits - 1)
                } else {
                    (
                        "push",
                        "main".to_string(),
                        rng.gen_range(n_commits / 2..n_commits),
                    )
                };
            let remaining = n_runs - k;
            let (status, conclusion) = if remaining <= 2 {
                ("queued", None)
            } else if remaining <= 5 {
                ("in_progress", None)
            } else {
                let x: f64 = rng.r#gen();
                (
                    "completed",
                    Some(if x < 0.8 {
                        "success"
                    } else if x < 0.95 {
                        "failure"
                    } else {
                        "cancelled"
                    }),
                )
            };
            let actor = pick(&mut rng);
            let n_jobs = rng.gen_range(1..5);
            let mut jobs = Vec::new();
            let mut duration = 0;
            for j in 0..n_jobs {
                job_id += rng.gen_range(1..100);
                let started = rt + rng.gen_range(2..60);
                let d = rng.gen_range(30..900);
                duration = duration.max(d + 60);
                let (js, jc) = match status {
                    "completed" => (
                        "completed",
                        if conclusion == Some("failure") && j == 0 {
                            Some("failure")
                        } else if conclusion == Some("cancelled") {
                            Some("cancelled")
                        } else {
                            Some("success")
                        },
                    ),
                    "in_progress" => (if j == 0 { "in_progress" } else { "queued" }, None),
                    _ => ("queued", None),
                };
                let steps = [
                    "Set up job",
                    "Run actions/checkout@v4",
                    "Build",
                    "Test",
                    "Complete job",
                ]
                .iter()
                .enumerate()
                .map(|(si, n)| Step {
                    name: n.to_string(),
                    status: if js == "completed" || (js == "in_progress" && si == 0) {
                        "completed"
                    } else {
                        "queued"
                    },
                    conclusion: if js == "completed" {
                        jc
                    } else if js == "in_progress" && si == 0 {
                        Some("success")
                    } else {
                        None
                    },
                    started_at: started + (si as i64) * d / 5,
                    completed_at: if js == "completed" {
                        Some(started + (si as i64 + 1) * d / 5)
                    } else {
                        None
                    },
                })
                .collect();
                let arch = if rng.gen_bool(0.5) { "X64" } else { "ARM64" };
                jobs.push(Job {
                    id: job_id,
                    node_id: node_id("CR", job_id),
                    name: ["build", "test", "lint", "analyze"][j % 4].to_string(),
                    status: js,
                    conclusion: jc,
                    created_at: rt,
                    started_at: started,
                    completed_at: if js == "completed" {
                        Some(started + d)
                    } else {
                        None
                    },
                    steps,
                    runner: if js == "queued" {
                        None
                    } else {
                        Some(runner_pool[rng.gen_range(0..runner_pool.len())].clone())
                    },
                    labels: vec![
                        "self-hosted".to_string(),
                        "linux".to_string(),
                        arch.to_string(),
                    ],
                });
            }
            let check_suite_id = rng.gen_range(10_000_000_000u64..40_000_000_000);
            let display_title = commits[head_commit]
                .message
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            runs.push(Run {
                id: run_id,
                node_id: node_id("WFR", run_id),
                workflow: wf,
                run_number: run_numbers[wf],
                event,
                status,
                conclusion,
                head_branch: branch,
                head_commit,
                actor,
                triggering_actor: actor,
                created_at: rt,
                updated_at: if status == "completed" {
                    rt + duration
                } else {
                    rt + 5
                },
                run_started_at: rt,
                run_attempt: 1,
                check_suite_id,
                display_title,
                jobs,
            });
        }

        let runners = if busy {
            let n = rng.gen_range(3..7);
            make_runners(&mut rng, &mut fresh, &full, n)
        } else {
            Vec::new()
        };

        let mut analyses = Vec::new();
        if language != "Markdown" {
            let n_an = if busy { 40 } else { 6 };
            let mut at = WORLD_END - (n_an as i64) * 3 * 3600;
            for _ in 0..n_an {
                at += rng.gen_range(3600..3 * 3600);
                let c = rng.gen_range(n_commits / 2..n_commits);
                let aid = rng.gen_range(100_000_000..999_999_999);
                analyses.push(Analysis {
                    id: aid,
                    git_ref: "refs/heads/main".to_string(),
                    commit_sha: commits[c].sha.clone(),
                    analysis_key: ".github/workflows/codeql.yml:analyze".to_string(),
                    environment: format!("{{\"language\":\"{}\"}}", language.to_ascii_lowercase()),
                    category: format!(
                        ".github/workflows/codeql.yml:analyze/language:{}",
                        language.to_ascii_lowercase()
                    ),
                    created_at: at,
                    results_count: rng.gen_range(0..20),
                    rules_count: rng.gen_range(50..300),
                    tool_name: "CodeQL".to_string(),
                    tool_version: "2.20.1".to_string(),
                    sarif_id: uuid_from(&mut rng),
                });
            }
            analyses.sort_by_key(|a| a.created_at);
        }

        let pushed_at = commits.iter().map(|c| c.date).max().unwrap_or(created_at);
        repos.push(Repo {
            id,
            node_id: node_id("R", id),
            owner: owner_idx,
            name: name.to_string(),
            private,
            description: format!("{} — {}", name, sentence(&mut rng)),
            language,
            default_branch: "main".to_string(),
            created_at,
            updated_at: pushed_at + rng.gen_range(0..86_400),
            pushed_at,
            size: rng.gen_range(100..90_000),
            stargazers: if private {
                rng.gen_range(0..10)
            } else {
                rng.gen_range(5..4000)
            },
            forks: rng.gen_range(0..200),
            topics: vec![
                WORDS[rng.gen_range(0..WORDS.len())].to_string(),
                "github-actions".to_string(),
            ],
            collaborators,
            commits,
            branches,
            issues,
            comments,
            workflows,
            runs,
            runners,
            analyses,
            sarifs: Vec::new(),
            files,
        });
    }

    // App and installations (one per org)
    let app_id = rng.gen_range(100_000..999_999);
    let inst_perms = perms(&[
        ("actions", Level::Write),
        ("administration", Level::Write),
        ("contents", Level::Read),
        ("issues", Level::Write),
        ("metadata", Level::Read),
        ("pull_requests", Level::Write),
        ("security_events", Level::Write),
    ]);
    let installations: Vec<Installation> = accounts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_org)
        .map(|(i, _)| Installation {
            id: rng.gen_range(10_000_000..70_000_000),
            account: i,
            perms: inst_perms.clone(),
        })
        .collect();
    let jwt_header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let jwt_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        format!(
            r#"{{"iat":{},"exp":{},"iss":"{app_id}"}}"#,
            WORLD_END,
            WORLD_END + 600
        )
        .as_bytes(),
    );
    let sig: Vec<u8> = (0..256).map(|_| rng.r#gen::<u8>()).collect();
    let app_jwt = format!(
        "{jwt_header}.{jwt_payload}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    );

    let mut state = State {
        accounts,
        repos,
        installations,
        minted: HashMap::new(),
        app_id,
        generation: 1,
        next_id,
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed),
    };

    // tokens
    let mut tokens = HashMap::new();
    let mut infos = Vec::new();
    for (ui, a) in state
        .accounts
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.is_org && !a.login.ends_with("[bot]"))
    {
        let t = gh_token(&mut rng, "ghp_");
        let repos = (0..state.repos.len())
            .filter_map(|ri| {
                let role = state.user_role(ui, ri);
                (role > Role::Read || (role == Role::Read && state.repos[ri].private)).then(|| {
                    RepoAccess {
                        full_name: state.full_name(ri),
                        role: role.name().to_string(),
                    }
                })
            })
            .collect();
        tokens.insert(t.clone(), Principal::User { user: ui });
        infos.push(TokenInfo {
            token: t,
            kind: TokenKind::Pat,
            identity: format!("user:{}", a.login),
            repos,
            permissions: BTreeMap::new(),
            read_only: false,
        });
    }
    let permissive = perms(&[
        ("actions", Level::Write),
        ("checks", Level::Write),
        ("contents", Level::Write),
        ("deployments", Level::Write),
        ("issues", Level::Write),
        ("metadata", Level::Read),
        ("packages", Level::Write),
        ("pull_requests", Level::Write),
        ("security_events", Level::Write),
        ("statuses", Level::Write),
    ]);
    let restricted = perms(&[
        ("contents", Level::Read),
        ("metadata", Level::Read),
        ("packages", Level::Read),
    ]);
    for ri in 0..state.repos.len() {
        for (ro, p) in [(false, &permissive), (true, &restricted)] {
            let t = gh_token(&mut rng, "ghs_");
            tokens.insert(
                t.clone(),
                Principal::GithubToken {
                    repo: ri,
                    perms: p.clone(),
                },
            );
            infos.push(TokenInfo {
                token: t,
                kind: TokenKind::GithubToken,
                identity: format!("repo:{}", state.full_name(ri)),
                repos: vec![RepoAccess {
                    full_name: state.full_name(ri),
                    role: if ro { "read" } else { "write" }.to_string(),
                }],
                permissions: p
                    .iter()
                    .map(|(k, v)| (k.clone(), v.name().to_string()))
                    .collect(),
                read_only: ro,
            });
        }
    }
    // one pre-minted installation token per installation, valid for the
    // configured ttl from start (the hub sets expiry at start)
    for (ii, inst) in state.installations.iter().enumerate() {
        let t = gh_token(&mut rng, "ghs_");
        state.minted.insert(
            t.clone(),
            MintedToken {
                inst: ii,
                expires_at: i64::MAX,
                perms: inst.perms.clone(),
                repos: None,
            },
        );
        infos.push(TokenInfo {
            token: t,
            kind: TokenKind::Installation,
            identity: format!("installation:{}", inst.id),
            repos: state
                .repos
                .iter()
                .enumerate()
                .filter(|(_, r)| r.owner == inst.account)
                .map(|(ri, _)| RepoAccess {
                    full_name: state.full_name(ri),
                    role: "write".to_string(),
                })
                .collect(),
            permissions: inst
                .perms
                .iter()
                .map(|(k, v)| (k.clone(), v.name().to_string()))
                .collect(),
            read_only: false,
        });
    }
    state.generation = 1;

    let world = World {
        seed,
        tokens: infos,
        accounts: state
            .accounts
            .iter()
            .map(|a| AccountInfo {
                login: a.login.clone(),
                id: a.id,
                is_org: a.is_org,
            })
            .collect(),
        repos: state
            .repos
            .iter()
            .enumerate()
            .map(|(ri, r)| {
                let mut run_ids: Vec<u64> = r.runs.iter().map(|x| x.id).collect();
                run_ids.reverse();
                RepoInfo {
                    full_name: state.full_name(ri),
                    id: r.id,
                    private: r.private,
                    default_branch: r.default_branch.clone(),
                    head_sha: r
                        .branches
                        .first()
                        .map(|(_, c)| r.commits[*c].sha.clone())
                        .unwrap_or_default(),
                    workflow_runs: r.runs.len(),
                    run_ids,
                    issues_and_pulls: r.issues.len(),
                    pulls: r.issues.iter().filter(|i| i.pull.is_some()).count(),
                    runners: r.runners.len(),
                }
            })
            .collect(),
        app_id,
        app_jwt: app_jwt.clone(),
        installations: state
            .installations
            .iter()
            .map(|i| (state.accounts[i.account].login.clone(), i.id))
            .collect(),
    };
    Generated {
        state,
        world,
        tokens,
        app_jwt,
    }
}

pub(crate) fn uuid_from(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.r#gen();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn make_commit(
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

fn make_runners(
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
