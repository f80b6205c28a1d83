//! `ghcache report`: the job summary. `--job` (or `GHCACHE_JOB_ID`, which
//! setup-github-cache exports): what this job was served through its
//! `/_job/<id>/` prefix — a Markdown table and a Mermaid pie chart in
//! `GITHUB_STEP_SUMMARY` (printed outside Actions). `--state`: the cache's
//! state, which setup-github-cache writes when the job starts.

use clap::Args;
use ghcache_actions::{JobContext, Summary};
use ghcache_config::Config;
use ghcache_proxy::{JobReport, PeerStatus, StatsReport};

use crate::daemon::UsageError;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The job to report (8-64 letters, digits, '-' or '_'), as
    /// setup-github-cache minted it
    #[arg(long, value_name = "ID", env = "GHCACHE_JOB_ID")]
    pub job: Option<String>,
    /// Write the cache's state (entries, peers, hit rate so far) instead;
    /// with a job id, also register that job (so it reports zeros, not
    /// "unknown", if it makes no request)
    #[arg(long)]
    pub state: bool,
    /// Print the daemon's JSON document instead of writing Markdown
    #[arg(long)]
    pub json: bool,
    /// Proxy address of the daemon to ask [env: GHCACHE_PROXY_ADDR]
    #[arg(long, value_name = "IP:PORT", value_parser = crate::cli::parse::<ghcache_config::ListenAddr>)]
    pub proxy_addr: Option<ghcache_config::ListenAddr>,
}

pub async fn run(config: &Config, args: &ReportArgs) -> anyhow::Result<()> {
    let addr = config.proxy_addr.value.0;
    let job = args.job.as_deref().filter(|j| !j.is_empty());
    if let Some(job) = job
        && !ghcache_proxy::valid_job_id(job)
    {
        return Err(UsageError(format!(
            "invalid job id {job:?}: it must be 8-64 ASCII letters, digits, '-' or '_'"
        ))
        .into());
    }
    let summary = if args.state {
        if let Some(job) = job {
            job_request(addr, http::Method::POST, job).await?;
        }
        let stats: StatsReport = ghcache_proxy::control_get_as(addr, "/_ghcache/stats").await?;
        let peers: PeerStatus = ghcache_proxy::control_get_as(addr, "/_ghcache/peers").await?;
        if args.json {
            let both = serde_json::json!({ "stats": stats, "peers": peers });
            println!("{}", serde_json::to_string_pretty(&both)?);
            return Ok(());
        }
        state_summary(&stats, &peers)
    } else {
        let Some(job) = job else {
            return Err(UsageError(
                "no job to report: pass --job ID or set GHCACHE_JOB_ID (setup-github-cache exports it and points GHCACHE_API_URL at the job's prefix)".into(),
            )
            .into());
        };
        let report = job_request(addr, http::Method::GET, job).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        job_summary(&report)
    };
    if let Some(markdown) = summary.write(&JobContext::from_process_env())? {
        print!("{markdown}");
    }
    Ok(())
}

/// `GET` (report) or `POST` (register) `/_ghcache/jobs/<job>`.
async fn job_request(
    addr: std::net::SocketAddr,
    method: http::Method,
    job: &str,
) -> anyhow::Result<JobReport> {
    let (status, body) = ghcache_proxy::control_request(
        addr,
        method,
        &format!("/_ghcache/jobs/{job}"),
        bytes::Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        anyhow::bail!("the daemon at {addr} cannot report job {job}: {message}");
    }
    Ok(serde_json::from_slice(&body)?)
}

fn seconds(us: u64) -> String {
    format!("{:.1} s", us as f64 / 1e6)
}

/// What the job was served: a table and a Mermaid pie of the outcomes.
fn job_summary(r: &JobReport) -> Summary {
    let h = &r.hits;
    let cacheable = h.total + r.misses;
    let rate = if cacheable == 0 {
        0.0
    } else {
        h.total as f64 / cacheable as f64 * 100.0
    };
    let rows = [
        ("Requests through the cache", r.requests.to_string()),
        ("Answered from the cache (HIT)", h.hit.to_string()),
        ("Revalidated free (REVALIDATED)", h.revalidated.to_string()),
        (
            "Confirmed by a free 304 (SYNTHESIZED)",
            h.synthesized.to_string(),
        ),
        (
            "Shared another request's fetch (COALESCED)",
            h.coalesced.to_string(),
        ),
        ("Held copy while GitHub failed (STALE)", h.stale.to_string()),
        ("Fetched (MISS)", r.misses.to_string()),
        ("Passed through (BYPASS)", r.bypass.to_string()),
        ("Hit rate", format!("{rate:.1}%")),
        ("Requests sent to GitHub", r.upstream_requests.to_string()),
        ("Rate-limit units spent", r.units_spent.to_string()),
        ("Rate-limit units saved", r.units_saved.to_string()),
        ("Time saved (estimate)", seconds(r.time_saved_us)),
    ];
    let outcomes = [
        ("HIT", h.hit),
        ("REVALIDATED", h.revalidated),
        ("SYNTHESIZED", h.synthesized),
        ("COALESCED", h.coalesced),
        ("STALE", h.stale),
        ("MISS", r.misses),
        ("BYPASS", r.bypass),
    ];
    let mut s = Summary::new()
        .heading(3, "ghcache: what this job was served")
        .table(
            &["", "this job"],
            rows.into_iter().map(|(k, v)| [k.to_owned(), v]),
        );
    if r.requests > 0 {
        let mut pie = String::from("pie title Answers by outcome\n");
        for (name, n) in outcomes.iter().filter(|(_, n)| *n > 0) {
            pie.push_str(&format!("    \"{name}\" : {n}\n"));
        }
        s = s.code_block("mermaid", pie.trim_end());
    }
    s.paragraph(&format!(
        "Time saved is an estimate: each HIT (answered with no request to GitHub) counts the daemon's mean time to an upstream response head measured until then (now {:.0} ms). Units saved are the rate-limit units a cacheless client would have spent (an authenticated 304 and /rate_limit are free). Counted by the daemon for requests through this job's GHCACHE_API_URL only; no token is involved.",
        r.mean_upstream_latency_us as f64 / 1000.0
    ))
}

/// The cache's state when the job starts.
fn state_summary(stats: &StatsReport, peers: &PeerStatus) -> Summary {
    let mesh = peers.mesh.as_ref().filter(|_| peers.enabled);
    let peers_text = match mesh {
        Some(m) => {
            let members = m
                .connected_peers
                .iter()
                .filter(|p| p.member == Some(true))
                .count();
            format!("{} connected ({members} members)", m.connected_peers.len())
        }
        None => "peer-to-peer sharing off".to_owned(),
    };
    let rows = [
        ("Entries", stats.store.entries.to_string()),
        (
            "Stored bytes",
            (stats.store.bytes + stats.store.meta_bytes).to_string(),
        ),
        ("Peers", peers_text),
        ("Requests so far", stats.requests.to_string()),
        ("Hit rate so far", format!("{:.1}%", stats.hit_rate * 100.0)),
        (
            "Rate-limit units saved so far",
            stats.rate_limit.units_saved.to_string(),
        ),
        ("Time saved so far (estimate)", seconds(stats.time_saved_us)),
    ];
    Summary::new()
        .heading(3, "ghcache: the cache at job start")
        .table(
            &["", "daemon"],
            rows.into_iter().map(|(k, v)| [k.to_owned(), v]),
        )
}
