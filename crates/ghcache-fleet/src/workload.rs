//! The simulated fleet's traffic: autoscaler polls, CI jobs with their own
//! tokens, and a bot with a rotating App token, all through octocrab.
//!
//! The plan is drawn from the seed before anything runs, so every mode
//! replays the same requests in the same rounds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::FleetError;
use crate::config::{FleetConfig, TokenMix};

/// The repositories CI jobs build.
const REPOS: [&str; 2] = ["acme/widgets", "acme/gadgets"];
/// Pull requests a job may build, per repository (the open ones first).
const HOT_PULLS: usize = 3;

/// What a response must deserialise into (octocrab's own models): a
/// shape the client rejects would be a fidelity bug of the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Repository,
    Pull,
    Pulls,
    Compare,
    Content,
    Runs,
    Runners,
    Issues,
    Comments,
    Comment,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) path: String,
    pub(crate) shape: Shape,
    /// A write: its JSON body.
    pub(crate) post: Option<serde_json::Value>,
}

impl Call {
    fn get(path: String, shape: Shape) -> Call {
        Call {
            path,
            shape,
            post: None,
        }
    }
}

/// One actor's turn: a token and what it asks, in order.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub(crate) token: String,
    pub(crate) calls: Vec<Call>,
}

/// Every runner's turns, round by round: `rounds[k][runner]`.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) rounds: Vec<Vec<Vec<Turn>>>,
}

#[derive(Debug, Clone)]
struct PullRef {
    number: u64,
    base: String,
    head: String,
}

/// What the plan needs to know of the world, read from the fake directly
/// before the measured run (its counters are reset afterwards).
pub(crate) struct Setup {
    pulls: Vec<(String, Vec<PullRef>)>,
    autoscaler: String,
    job_tokens: Vec<String>,
    bot_tokens: Vec<String>,
}

impl Setup {
    pub(crate) async fn read(
        hub: &ghcache_fakehub::FakeHub,
        config: &FleetConfig,
    ) -> Result<Setup, FleetError> {
        let world = hub.world();
        let base = hub.base_url();
        let admin = client(&base, world.pat("alice"))?;
        let mut pulls = Vec::new();
        for repo in REPOS {
            let list: Vec<serde_json::Value> = admin
                .get(
                    format!("/repos/{repo}/pulls?state=all&per_page={HOT_PULLS}"),
                    None::<&()>,
                )
                .await
                .map_err(|e| FleetError::Setup(format!("listing {repo}'s pull requests: {e}")))?;
            let refs = list
                .iter()
                .filter_map(|p| {
                    Some(PullRef {
                        number: p.get("number")?.as_u64()?,
                        base: p.pointer("/base/ref")?.as_str()?.to_owned(),
                        head: p.pointer("/head/ref")?.as_str()?.to_owned(),
                    })
                })
                .collect::<Vec<_>>();
            if refs.is_empty() {
                return Err(FleetError::Setup(format!("{repo} has no pull requests")));
            }
            pulls.push((repo.to_owned(), refs));
        }
        let installation = world
            .installation_id("acme")
            .ok_or_else(|| FleetError::Setup("the fake has no installation on acme".into()))?;
        let app = client(&base, world.app_jwt())?;
        let jobs = config.runners * config.rounds * config.mix.jobs as usize;
        let mut job_tokens = Vec::new();
        match config.tokens {
            TokenMix::PerJob => {
                for n in 0..jobs {
                    let repo = REPOS[n % REPOS.len()];
                    let name = repo.split('/').nth(1).unwrap_or(repo);
                    job_tokens.push(mint(&app, installation, Some(name)).await?);
                }
            }
            TokenMix::Shared => {
                for n in 0..jobs {
                    job_tokens.push(world.github_token(REPOS[n % REPOS.len()]).to_owned());
                }
            }
        }
        let rotations = config.rounds / config.bot_rotation.max(1) + 1;
        let mut bot_tokens = Vec::new();
        for _ in 0..rotations {
            bot_tokens.push(mint(&app, installation, None).await?);
        }
        Ok(Setup {
            pulls,
            autoscaler: world.pat("alice").to_owned(),
            job_tokens,
            bot_tokens,
        })
    }

    /// Draws the run from the seed.
    pub(crate) fn plan(&self, config: &FleetConfig) -> Plan {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
        let mut job = 0usize;
        let mut rounds = Vec::with_capacity(config.rounds);
        for round in 0..config.rounds {
            let mut runners = Vec::with_capacity(config.runners);
            for runner in 0..config.runners {
                let mut turns = Vec::new();
                for _ in 0..config.mix.polls {
                    turns.push(self.poll(&mut rng));
                }
                for _ in 0..config.mix.jobs {
                    let token = self.job_tokens.get(job).cloned().unwrap_or_default();
                    // The token was minted for this repository.
                    let (repo, pulls) = &self.pulls[job % self.pulls.len()];
                    job += 1;
                    let pull = &pulls[rng.gen_range(0..pulls.len())];
                    turns.push(ci_job(repo, pull, token));
                }
                if runner == round % config.runners {
                    for _ in 0..config.mix.bot {
                        turns.push(self.bot(config, round, &mut rng));
                    }
                }
                runners.push(turns);
            }
            rounds.push(runners);
        }
        Plan { rounds }
    }

    /// The autoscaler: queued runs and runner lists, with one admin token.
    fn poll(&self, rng: &mut impl Rng) -> Turn {
        let repo = &self.pulls[rng.gen_range(0..self.pulls.len())].0;
        Turn {
            token: self.autoscaler.clone(),
            calls: vec![
                Call::get(
                    format!("/repos/{repo}/actions/runs?status=queued"),
                    Shape::Runs,
                ),
                Call::get(format!("/repos/{repo}/actions/runners"), Shape::Runners),
                Call::get("/orgs/acme/actions/runners".into(), Shape::Runners),
            ],
        }
    }

    /// The bot: lists open issues and pulls; now and then comments.
    fn bot(&self, config: &FleetConfig, round: usize, rng: &mut impl Rng) -> Turn {
        let token = self
            .bot_tokens
            .get(round / config.bot_rotation.max(1))
            .cloned()
            .unwrap_or_default();
        let (repo, pulls) = &self.pulls[rng.gen_range(0..self.pulls.len())];
        let pull = &pulls[0];
        let mut calls = vec![
            Call::get(format!("/repos/{repo}/issues?state=open"), Shape::Issues),
            Call::get(format!("/repos/{repo}/pulls?state=open"), Shape::Pulls),
            Call::get(
                format!("/repos/{repo}/issues/{}/comments", pull.number),
                Shape::Comments,
            ),
        ];
        if config.bot_write_every > 0
            && round % config.bot_write_every == config.bot_write_every - 1
        {
            calls.push(Call {
                path: format!("/repos/{repo}/issues/{}/comments", pull.number),
                shape: Shape::Comment,
                post: Some(
                    serde_json::json!({ "body": format!("Build report for round {round}") }),
                ),
            });
        }
        Turn { token, calls }
    }
}

/// A CI job's reads: repository, its pull request, the compare view and
/// two files.
fn ci_job(repo: &str, pull: &PullRef, token: String) -> Turn {
    Turn {
        token,
        calls: vec![
            Call::get(format!("/repos/{repo}"), Shape::Repository),
            Call::get(format!("/repos/{repo}/pulls/{}", pull.number), Shape::Pull),
            Call::get(
                format!("/repos/{repo}/compare/{}...{}", pull.base, pull.head),
                Shape::Compare,
            ),
            Call::get(format!("/repos/{repo}/contents/README.md"), Shape::Content),
            Call::get(
                format!("/repos/{repo}/contents/.github/workflows/ci.yml"),
                Shape::Content,
            ),
        ],
    }
}

pub(crate) fn client(base: &str, token: &str) -> Result<Octocrab, FleetError> {
    Octocrab::builder()
        .base_uri(base)
        .map_err(|e| FleetError::Setup(format!("base URL {base}: {e}")))?
        .personal_token(token.to_owned())
        .build()
        .map_err(|e| FleetError::Setup(format!("building the GitHub client: {e}")))
}

/// A new installation token (`POST /app/installations/{id}/access_tokens`),
/// down-scoped to one repository when named.
async fn mint(app: &Octocrab, installation: u64, repo: Option<&str>) -> Result<String, FleetError> {
    let body = match repo {
        Some(name) => serde_json::json!({ "repositories": [name] }),
        None => serde_json::json!({}),
    };
    let answer: serde_json::Value = app
        .post(
            format!("/app/installations/{installation}/access_tokens"),
            Some(&body),
        )
        .await
        .map_err(|e| FleetError::Setup(format!("minting an installation token: {e}")))?;
    answer
        .get("token")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| FleetError::Setup("the fake minted no token".into()))
}

/// One request as the client saw it.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// When the request started and ended, since the run began.
    pub(crate) started: Duration,
    pub(crate) ended: Duration,
    /// Which runner (daemon) asked.
    pub(crate) runner: usize,
    pub(crate) latency: Duration,
    pub(crate) status: u16,
    pub(crate) path: String,
    /// `X-Ghcache`, when a daemon answered.
    pub(crate) outcome: Option<String>,
    /// A successful read: the path and the hash of the body it got.
    pub(crate) version: Option<(String, [u8; 32])>,
    pub(crate) write: bool,
    /// The body did not deserialise into octocrab's model.
    pub(crate) shape_error: Option<String>,
}

/// Plays one turn through the daemon at `base` (or GitHub itself).
pub(crate) async fn play(
    base: &str,
    runner: usize,
    turn: &Turn,
    run_start: Instant,
) -> Result<Vec<Sample>, FleetError> {
    let github = client(base, &turn.token)?;
    let mut samples = Vec::with_capacity(turn.calls.len());
    for call in &turn.calls {
        let url = format!("{base}{}", call.path);
        let started = Instant::now();
        let response = match &call.post {
            Some(body) => github._post(url.as_str(), Some(body)).await,
            None => github._get(url.as_str()).await,
        }
        .map_err(|e| FleetError::Request(format!("{}: {e}", call.path)))?;
        let status = response.status().as_u16();
        let outcome = response
            .headers()
            .get("x-ghcache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| FleetError::Request(format!("{}: reading the body: {e}", call.path)))?
            .to_bytes();
        let latency = started.elapsed();
        let ok = (200..300).contains(&status);
        let shape_error = if ok {
            check_shape(call.shape, &body)
        } else {
            None
        };
        let write = call.post.is_some();
        samples.push(Sample {
            started: started.duration_since(run_start),
            ended: run_start.elapsed(),
            runner,
            latency,
            status,
            path: call.path.clone(),
            outcome,
            version: (ok && !write).then(|| (call.path.clone(), Sha256::digest(&body).into())),
            write,
            shape_error,
        });
    }
    Ok(samples)
}

fn check_shape(shape: Shape, body: &[u8]) -> Option<String> {
    use octocrab::models;
    fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<T>(body)
            .err()
            .map(|e| format!("{}: {e}", std::any::type_name::<T>()))
    }
    #[derive(serde::Deserialize)]
    struct RunList {
        #[allow(dead_code)]
        workflow_runs: Vec<models::workflows::Run>,
    }
    #[derive(serde::Deserialize)]
    struct RunnerList {
        #[allow(dead_code)]
        runners: Vec<models::actions::SelfHostedRunner>,
    }
    match shape {
        Shape::Repository => parse::<models::Repository>(body),
        Shape::Pull => parse::<models::pulls::PullRequest>(body),
        Shape::Pulls => parse::<Vec<models::pulls::PullRequest>>(body),
        Shape::Compare => parse::<models::commits::CommitComparison>(body),
        Shape::Content => parse::<models::repos::Content>(body),
        Shape::Runs => parse::<RunList>(body),
        Shape::Runners => parse::<RunnerList>(body),
        Shape::Issues => parse::<Vec<models::issues::Issue>>(body),
        Shape::Comments => parse::<Vec<models::issues::Comment>>(body),
        Shape::Comment => parse::<models::issues::Comment>(body),
    }
}
