//! Per-job attribution through `/_job/<id>/`: a job's numbers are the
//! daemon's counters restricted to its requests, with no token involved.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Reply, rig, send};
use ghcache_fakehub::FakeHubConfig;
use ghcache_proxy::JobReport;

async fn job_get(rig: &common::Rig, job: &str, path: &str, token: Option<&str>) -> Reply {
    rig.get(&format!("/_job/{job}{path}"), token).await
}

async fn control(
    rig: &common::Rig,
    method: reqwest::Method,
    path: &str,
) -> (u16, serde_json::Value) {
    let r = send(
        &rig.client,
        &rig.proxy.base_url(),
        method,
        path,
        None,
        &[],
        None,
    )
    .await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

async fn report(rig: &common::Rig, job: &str) -> JobReport {
    let (status, body) = control(rig, reqwest::Method::GET, &format!("/_ghcache/jobs/{job}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn a_jobs_report_equals_the_daemons_counters() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let (alice, bob) = (world.pat("alice").to_owned(), world.pat("bob").to_owned());
    let job = "job-0123456789abcdef";
    let (status, registered) = control(
        &rig,
        reqwest::Method::POST,
        &format!("/_ghcache/jobs/{job}"),
    )
    .await;
    assert_eq!((status, registered["requests"].as_u64()), (200, Some(0)));

    let runs = format!("/repos/{}/actions/runs?per_page=30", world.public_repo());
    let mut outcomes = Vec::new();
    for token in [&alice, &alice, &alice, &bob] {
        outcomes.push(
            job_get(&rig, job, &runs, Some(token))
                .await
                .outcome()
                .to_owned(),
        );
    }
    outcomes.push(
        job_get(&rig, job, "/rate_limit", Some(&alice))
            .await
            .outcome()
            .to_owned(),
    );
    outcomes.push(
        job_get(&rig, job, "/rate_limit", Some(&alice))
            .await
            .outcome()
            .to_owned(),
    );
    let write = send(
        &rig.client,
        &rig.proxy.base_url(),
        reqwest::Method::POST,
        &format!("/_job/{job}/repos/{}/issues", world.public_repo()),
        Some(&alice),
        &[],
        Some(serde_json::json!({"title": "t"})),
    )
    .await;
    outcomes.push(write.outcome().to_owned());
    assert_eq!(
        outcomes,
        ["MISS", "HIT", "HIT", "SYNTHESIZED", "MISS", "HIT", "BYPASS"]
    );

    let stats: ghcache_proxy::StatsReport =
        ghcache_proxy::control_get_as(rig.proxy.addr(), "/_ghcache/stats")
            .await
            .unwrap();
    let job = report(&rig, job).await;
    assert_eq!(job.requests, stats.requests);
    assert_eq!(job.requests, 7);
    assert_eq!(job.hits, stats.hits);
    assert_eq!((job.misses, job.bypass), (stats.misses, stats.bypass));
    // Two fresh hits and one synthesised 304 of /repos/…; not /rate_limit.
    assert_eq!(job.units_saved, stats.rate_limit.units_saved);
    assert_eq!(job.units_saved, 3);
    assert_eq!(job.time_saved_us, stats.time_saved_us);
    // GitHub was asked four times: the first MISS, bob's conditional
    // (a free 304), /rate_limit (free) and the write.
    assert_eq!(job.upstream_requests, stats.upstream.requests);
    assert_eq!(job.upstream_requests, 4);
    assert_eq!(job.units_spent, stats.rate_limit.units_spent);
    assert_eq!(job.units_spent, 2);
    assert!(
        job.time_saved_us > 0,
        "three hits after measured upstream exchanges"
    );
    assert!(job.mean_upstream_latency_us > 0);
}

#[tokio::test]
async fn concurrent_jobs_are_attributed_apart() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let alice = world.pat("alice").to_owned();
    let repo = format!("/repos/{}", world.public_repo());
    let (a, b) = ("job-aaaaaaaa", "job-bbbbbbbb");
    let run = |job: &'static str, n: usize| {
        let (rig, alice, repo) = (&rig, &alice, &repo);
        async move {
            for _ in 0..n {
                job_get(rig, job, repo, Some(alice)).await;
            }
        }
    };
    tokio::join!(run(a, 5), run(b, 3));
    // And one request outside any job.
    rig.get(&repo, Some(&alice)).await;
    let (a, b) = (report(&rig, a).await, report(&rig, b).await);
    assert_eq!((a.requests, b.requests), (5, 3));
    let stats: ghcache_proxy::StatsReport =
        ghcache_proxy::control_get_as(rig.proxy.addr(), "/_ghcache/stats")
            .await
            .unwrap();
    assert_eq!(stats.requests, a.requests + b.requests + 1);
    assert_eq!(
        stats.hits.total + stats.misses,
        a.hits.total + a.misses + b.hits.total + b.misses + 1
    );
    // One fetch (a request between a flight's end and its answer's store
    // joins it), led by one job's request (the request outside any job
    // came last: a hit) and counted for that job alone.
    assert_eq!(stats.upstream.requests, 1);
    assert_eq!(a.upstream_requests + b.upstream_requests, 1);
    assert_eq!(a.units_spent + b.units_spent, 1);
}

/// A connection remembers its last job: requests for other jobs, and
/// outside any job, on the same connection are each counted where they
/// belong, and each job's links point under its own prefix.
#[tokio::test]
async fn jobs_that_take_turns_on_one_connection_are_attributed_apart() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let alice = world.pat("alice").to_owned();
    let repo = format!("/repos/{}", world.public_repo());
    let runs = format!("{repo}/actions/runs?per_page=1");
    let (a, b) = ("job-turns-aaaa", "job-turns-bbbb");
    // Sequential requests of one client: one keep-alive connection.
    for (job, path) in [
        (Some(a), &repo),
        (Some(b), &repo),
        (Some(a), &repo),
        (None, &repo),
    ]
    .into_iter()
    .chain([(Some(a), &runs), (Some(b), &runs), (Some(a), &runs)])
    {
        let reply = match job {
            Some(job) => job_get(&rig, job, path, Some(&alice)).await,
            None => rig.get(path, Some(&alice)).await,
        };
        assert_eq!(reply.status, 200);
        if let Some(link) = reply.header("link") {
            let prefix = format!("<{}/_job/{}/", rig.proxy.base_url(), job.unwrap());
            assert!(link.starts_with(&prefix), "{job:?}: {link}");
        }
    }
    let (a, b) = (report(&rig, a).await, report(&rig, b).await);
    assert_eq!((a.requests, b.requests), (4, 2));
    // b asks only for what a fetched already.
    assert_eq!((a.hits.total, b.hits.total), (2, 2));
    let stats: ghcache_proxy::StatsReport =
        ghcache_proxy::control_get_as(rig.proxy.addr(), "/_ghcache/stats")
            .await
            .unwrap();
    assert_eq!(stats.requests, 7);
    // The client's connection, and the one this read came on.
    assert_eq!(stats.connections.total, 2, "the client used one connection");
}

#[tokio::test]
async fn links_keep_the_job_prefix_so_pages_stay_attributed() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let alice = world.pat("alice").to_owned();
    let job = "job-pages-0001";
    let first = job_get(
        &rig,
        job,
        &format!("/repos/{}/actions/runs?per_page=1", world.public_repo()),
        Some(&alice),
    )
    .await;
    let link = first
        .header("link")
        .expect("a paginated list has a Link")
        .to_owned();
    let prefix = format!("<{}/_job/{job}/", rig.proxy.base_url());
    assert!(link.starts_with(&prefix), "{link}");
    let next = link[1..link.find('>').unwrap()].to_owned();
    let path = next.trim_start_matches(&rig.proxy.base_url());
    let second = rig.get(path, Some(&alice)).await;
    assert_eq!(second.status, 200);
    assert_eq!(report(&rig, job).await.requests, 2);
}

#[tokio::test]
async fn invalid_and_unknown_job_ids_are_clear_errors() {
    let rig = rig(FakeHubConfig::default()).await;
    let repo = format!("/repos/{}", rig.hub.world().public_repo());
    let bad = rig.get(&format!("/_job/bad/{repo}"), None).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .contains("invalid job id"),
        "{}",
        bad.json()
    );
    let (status, body) = control(&rig, reqwest::Method::GET, "/_ghcache/jobs/no.such").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = control(&rig, reqwest::Method::GET, "/_ghcache/jobs/job-never-seen").await;
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no record of that job")
    );
    let (status, _) = control(
        &rig,
        reqwest::Method::DELETE,
        "/_ghcache/jobs/job-never-seen",
    )
    .await;
    assert_eq!(status, 405);
    // The refused API request is marked and counted as a local refusal;
    // the control routes count nothing.
    assert_eq!(bad.header("x-ghcache"), Some("MISS"));
    let stats = rig.proxy_stats().await;
    assert_eq!(stats["requests"], 1, "{stats}");
    assert_eq!(stats["misses"], 1, "{stats}");
}

/// Clients reaching the daemon under different bases (directly, or under
/// a job's prefix) each get links under their own base, hit after hit, in
/// any order: nothing rewritten for one client may reach another.
#[tokio::test]
async fn every_hit_links_under_the_base_its_client_reached() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let alice = world.pat("alice").to_owned();
    let path = format!("/repos/{}/actions/runs?per_page=1", world.public_repo());
    let direct = rig.proxy.base_url();
    let jobs = ["job-links-0001", "job-links-0002"];
    let mut seen = Vec::new();
    for round in 0..2 {
        for base in [None, Some(jobs[0]), Some(jobs[1])] {
            let reply = match base {
                None => rig.get(&path, Some(&alice)).await,
                Some(job) => job_get(&rig, job, &path, Some(&alice)).await,
            };
            let link = reply.header("link").expect("a paginated list has a Link");
            let wanted = match base {
                None => format!("<{direct}/"),
                Some(job) => format!("<{direct}/_job/{job}/"),
            };
            let own = link
                .split(", ")
                .all(|l| l.starts_with(&wanted) && (base.is_some() || !l.contains("/_job/")));
            assert!(own, "round {round}, {base:?}: {link}");
            seen.push(reply.outcome().to_owned());
        }
    }
    // The first request stored it; every later one was a hit.
    assert_eq!(seen[0], "MISS");
    assert!(seen[1..].iter().all(|o| o == "HIT"), "{seen:?}");
}

/// An entry without links is the same answer under every base: the same
/// header lines, in the same order, as the first hit.
#[tokio::test]
async fn a_hit_without_links_is_the_same_answer_under_every_base() {
    let rig = rig(FakeHubConfig::default()).await;
    let world = rig.hub.world();
    let alice = world.pat("alice").to_owned();
    let path = format!("/repos/{}", world.public_repo());
    assert_eq!(rig.get(&path, Some(&alice)).await.outcome(), "MISS");
    let lines = |reply: &Reply| -> Vec<(String, String)> {
        reply
            .headers
            .iter()
            .filter(|(name, _)| *name != "age" && *name != "date")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect()
    };
    let first = rig.get(&path, Some(&alice)).await;
    assert_eq!(first.outcome(), "HIT");
    let in_job = job_get(&rig, "job-nolinks-01", &path, Some(&alice)).await;
    let again = rig.get(&path, Some(&alice)).await;
    for reply in [&in_job, &again] {
        assert_eq!(reply.outcome(), "HIT");
        assert_eq!(lines(reply), lines(&first));
        assert_eq!(reply.body, first.body);
    }
    assert!(first.header("x-ratelimit-remaining").is_some());
    assert!(
        first.headers.iter().all(|(_, v)| !v.is_empty()),
        "no placeholder left"
    );
}
