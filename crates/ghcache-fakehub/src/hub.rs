//! The shared core of a running hub and the identity a request is
//! accounted to. A leaf: it knows the world, the configuration, the clock and
//! the counters, never the HTTP pipeline or the handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rand_chacha::ChaCha8Rng;

use crate::config::{FakeHubConfig, FaultConfig, LatencyProfile};
use crate::stats::Stats;
use crate::time::Clock;
use crate::world::{Principal, State, World};

/// Rate-limit categories (`x-ratelimit-resource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    Core,
    Search,
    Graphql,
    CodeScanningUpload,
    ActionsRunnerRegistration,
}

impl Category {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Category::Core => "core",
            Category::Search => "search",
            Category::Graphql => "graphql",
            Category::CodeScanningUpload => "code_scanning_upload",
            Category::ActionsRunnerRegistration => "actions_runner_registration",
        }
    }
}

/// Endpoint class, for latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Read,
    List,
    Write,
    Graphql,
}

/// One primary-limit window of one bucket.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Window {
    pub start: Option<i64>,
    pub used: u64,
}

/// The identity a request is accounted to.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub principal: Principal,
    /// Stats / in-flight / rate-limit bucket label (never a token).
    pub label: String,
    pub authenticated: bool,
    /// Number used in "API rate limit exceeded for user ID N." style messages.
    pub subject: String,
}

/// The shared core of a running hub.
#[derive(Debug)]
pub(crate) struct Hub {
    pub base: String,
    pub cfg: FakeHubConfig,
    pub state: RwLock<State>,
    pub tokens: HashMap<String, Principal>,
    pub app_jwt: String,
    pub world: World,
    pub clock: Clock,
    pub rate: Mutex<HashMap<(String, Category), Window>>,
    pub inflight: Mutex<HashMap<String, usize>>,
    pub stats: Stats,
    pub faults: RwLock<FaultConfig>,
    pub latency: RwLock<LatencyProfile>,
    pub rng: Mutex<ChaCha8Rng>,
    pub cache: RwLock<HashMap<String, (u64, Bytes)>>,
    pub seq: AtomicU64,
}

impl Hub {
    /// Serialises with the body cache: `render` runs only when `key` has no
    /// body rendered at the current generation.
    pub(crate) fn cached(
        &self,
        key: String,
        generation: u64,
        render: impl FnOnce() -> serde_json::Value,
    ) -> Bytes {
        if let Some((g, b)) = self.cache.read().get(&key)
            && *g == generation
        {
            return b.clone();
        }
        let bytes = Bytes::from(serde_json::to_vec(&render()).unwrap_or_default());
        let mut c = self.cache.write();
        if c.len() > 20_000 {
            c.clear();
        }
        c.insert(key, (generation, bytes.clone()));
        bytes
    }

    /// A new version of the resource at `path` (see [`State::bump`]).
    pub(crate) fn bump(&self, path: &str) -> bool {
        let now = self.clock.now();
        self.state.write().bump(path, now)
    }

    pub(crate) fn limit_for(&self, who: &Who, cat: Category) -> u64 {
        let l = &self.cfg.limits;
        match cat {
            Category::Search => {
                if who.authenticated {
                    l.search_authenticated
                } else {
                    l.search_anonymous
                }
            }
            Category::CodeScanningUpload => l.code_scanning_upload,
            Category::ActionsRunnerRegistration => l.actions_runner_registration,
            Category::Core | Category::Graphql => match &who.principal {
                Principal::Anonymous => {
                    if cat == Category::Graphql {
                        0
                    } else {
                        l.anonymous
                    }
                }
                Principal::User { .. } => l.pat,
                Principal::GithubToken { .. } => l.github_token,
                Principal::Installation { .. } | Principal::App => l.installation,
            },
        }
    }

    fn window_len(&self, cat: Category) -> i64 {
        let d = if cat == Category::Search {
            self.cfg.limits.search_window
        } else {
            self.cfg.limits.window
        };
        i64::try_from(d.as_secs()).unwrap_or(3600).max(1)
    }

    /// (limit, used, reset) of a bucket now, rolling an expired window.
    pub(crate) fn rate_view(&self, who: &Who, cat: Category) -> (u64, u64, i64) {
        let now = self.clock.now();
        let len = self.window_len(cat);
        let limit = self.limit_for(who, cat);
        let mut rate = self.rate.lock();
        let w = rate.entry((who.label.clone(), cat)).or_default();
        roll(w, now, len);
        (limit, w.used, w.start.map_or(now + len, |s| s + len))
    }

    /// Takes `n` units if available. Returns false when exhausted.
    pub(crate) fn take(&self, who: &Who, cat: Category, n: u64) -> bool {
        let now = self.clock.now();
        let len = self.window_len(cat);
        let limit = self.limit_for(who, cat);
        let mut rate = self.rate.lock();
        let w = rate.entry((who.label.clone(), cat)).or_default();
        roll(w, now, len);
        if w.used + n > limit {
            return false;
        }
        if w.start.is_none() {
            w.start = Some(now);
        }
        w.used += n;
        true
    }

    pub(crate) fn refund(&self, who: &Who, cat: Category, n: u64) {
        let mut rate = self.rate.lock();
        if let Some(w) = rate.get_mut(&(who.label.clone(), cat)) {
            w.used = w.used.saturating_sub(n);
        }
    }

    pub(crate) fn request_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let s = self.cfg.seed;
        format!(
            "{:04X}:{:05X}:{:06X}:{:07X}:{:08X}",
            (s & 0xFFFF) as u16,
            (n >> 20) & 0xFFFFF,
            n & 0xFFFFFF,
            (n.wrapping_mul(2_654_435_761)) & 0xFFF_FFFF,
            (self.clock.now() as u64) & 0xFFFF_FFFF
        )
    }
}

fn roll(w: &mut Window, now: i64, len: i64) {
    if let Some(s) = w.start
        && now >= s + len
    {
        *w = Window::default();
    }
}
