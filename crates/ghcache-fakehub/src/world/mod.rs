//! The seeded world: accounts, repositories and everything in them, plus the
//! well-known tokens tests use. Generation (deterministic per seed) is in
//! `generate.rs`.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

mod generate;
mod material;

pub(crate) use generate::generate;
pub(crate) use material::{gh_token, hex_id, node_id, uuid_from};

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
