//! What a fleet run is: how many runners, how long, which tokens, which
//! cache design.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The cache designs compared side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every client talks to GitHub directly.
    NoCache,
    /// A cache per host, each token only its own entries, no mesh (Prow
    /// ghproxy's design).
    PerHost,
    /// Caches meshed together, each token still only its own entries.
    Mesh,
    /// ghcache's default: mesh, and other tokens' copies confirmed with a
    /// synthesised ETag (a free `304`).
    MeshSynthesis,
    /// Mesh + synthesis + `fleet_trust` and `peer_trust: members`: fresh
    /// copies served across tokens and peers without asking GitHub.
    FleetTrust,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::NoCache,
        Mode::PerHost,
        Mode::Mesh,
        Mode::MeshSynthesis,
        Mode::FleetTrust,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::NoCache => "no-cache",
            Mode::PerHost => "per-host",
            Mode::Mesh => "mesh",
            Mode::MeshSynthesis => "mesh-synthesis",
            Mode::FleetTrust => "fleet-trust",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Mode::NoCache => "no cache",
            Mode::PerHost => "per-host cache",
            Mode::Mesh => "mesh",
            Mode::MeshSynthesis => "mesh + ETag synthesis",
            Mode::FleetTrust => "fleet trust",
        }
    }

    pub(crate) fn meshed(self) -> bool {
        matches!(self, Mode::Mesh | Mode::MeshSynthesis | Mode::FleetTrust)
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mode `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// Which token each CI job reads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenMix {
    /// A fresh installation token per job, scoped to its repository, as
    /// GitHub mints a `GITHUB_TOKEN` per job.
    PerJob,
    /// Every job uses its repository's one long-lived token.
    Shared,
}

impl std::str::FromStr for TokenMix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-job" => Ok(TokenMix::PerJob),
            "shared" => Ok(TokenMix::Shared),
            _ => Err(format!(
                "unknown token mix `{s}`; expected per-job or shared"
            )),
        }
    }
}

/// How much of each actor a round holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mix {
    /// CI jobs per runner per round.
    pub jobs: u32,
    /// Autoscaler polls per runner per round.
    pub polls: u32,
    /// Bot passes per round (on one runner, turn about).
    pub bot: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            jobs: 1,
            polls: 1,
            bot: 1,
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;
    /// `jobs=1,polls=1,bot=1` (any subset; the rest keep their default).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = Mix::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected NAME=COUNT (jobs, polls, bot)"))?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the count must be a whole number"))?;
            match name.trim() {
                "jobs" => mix.jobs = value,
                "polls" => mix.polls = value,
                "bot" => mix.bot = value,
                other => {
                    return Err(format!(
                        "unknown actor `{other}`; expected jobs, polls or bot"
                    ));
                }
            }
        }
        Ok(mix)
    }
}

/// Latency the fake GitHub adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Latency {
    None,
    /// Shaped like api.github.com (reads 90–170 ms, lists 140–280 ms).
    Realistic,
}

impl std::str::FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Latency::None),
            "realistic" => Ok(Latency::Realistic),
            _ => Err(format!("unknown latency `{s}`; expected none or realistic")),
        }
    }
}

/// One fleet run. Sized in rounds rather than seconds: a run bounded by
/// time would spend units in proportion to the machine's speed, and the
/// modes could not be compared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetConfig {
    /// Runner hosts, one daemon each.
    pub runners: usize,
    pub rounds: usize,
    pub seed: u64,
    pub latency: Latency,
    pub tokens: TokenMix,
    pub mix: Mix,
    /// The bot's App installation token is replaced every this many rounds.
    pub bot_rotation: usize,
    /// The bot comments on a pull request every this many rounds (0: never).
    pub bot_write_every: usize,
    /// Longest a daemon waits for its peers (production default 50 ms).
    #[serde(with = "ghcache_fakehub::duration_ms")]
    pub peer_deadline: Duration,
}

impl FleetConfig {
    /// What a run needs of its settings: checked by [`crate::run`], and by
    /// the CLI before it prints anything.
    pub fn validate(&self) -> Result<(), String> {
        if self.runners == 0 || self.rounds == 0 {
            return Err("runners and rounds must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            runners: 5,
            rounds: 4,
            seed: 42,
            latency: Latency::Realistic,
            tokens: TokenMix::PerJob,
            mix: Mix::default(),
            bot_rotation: 2,
            bot_write_every: 2,
            peer_deadline: Duration::from_millis(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_needs_a_runner_and_a_round() {
        assert_eq!(FleetConfig::default().validate(), Ok(()));
        for config in [
            FleetConfig {
                runners: 0,
                ..FleetConfig::default()
            },
            FleetConfig {
                rounds: 0,
                ..FleetConfig::default()
            },
        ] {
            assert_eq!(
                config.validate(),
                Err("runners and rounds must be at least 1".to_owned())
            );
        }
    }
}
