//! Generating the seeded world: fixed accounts and repositories, then
//! their history drawn from one ChaCha8 stream, so a seed always gives the
//! same world (the order of draws is part of that contract).

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::material::*;
use super::*;

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
