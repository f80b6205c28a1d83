//! Link pagination, and writes that change versions.
#![allow(clippy::unwrap_used)]

mod common;
use std::collections::HashSet;

use base64::Engine as _;
use common::*;
use ghcache_fakehub::{FakeHub, FakeHubConfig};
use serde_json::json;

#[tokio::test]
async fn link_headers_walk_every_page_without_duplicates() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let repo = w.private_repo();
    let mut url = format!("{}/repos/{repo}/actions/runs?per_page=40", hub.base_url());
    let mut seen = HashSet::new();
    let mut pages = 0;
    let mut total;
    loop {
        let r = get(&c, &url, Some(t)).await;
        assert_eq!(r.status, 200, "{url}");
        let j = r.json();
        total = j["total_count"].as_u64().unwrap();
        let runs = j["workflow_runs"].as_array().unwrap();
        for run in runs {
            assert!(seen.insert(run["id"].as_u64().unwrap()), "duplicate run");
        }
        let link = r.h("link");
        if pages == 0 {
            assert!(rel(&link, "next").is_some() && rel(&link, "last").is_some());
            assert!(rel(&link, "prev").is_none() && rel(&link, "first").is_none());
            assert!(runs.len() == 40);
            assert!(
                r.body.len() > 60_000,
                "a page of runs is big: {}",
                r.body.len()
            );
        }
        pages += 1;
        match rel(&link, "next") {
            Some(next) => {
                assert!(next.starts_with(&hub.base_url()), "absolute: {next}");
                assert!(next.contains("per_page=40"));
                url = next;
            }
            None => {
                assert!(rel(&link, "prev").is_some() && rel(&link, "first").is_some());
                break;
            }
        }
    }
    assert_eq!(seen.len() as u64, total);
    assert_eq!(total as usize, w.repo(repo).unwrap().workflow_runs);
    assert_eq!(pages, total.div_ceil(40) as usize);
    // per_page is capped at 100, default 30
    let big = get(
        &c,
        &format!("{}/repos/{repo}/actions/runs?per_page=500", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(big.json()["workflow_runs"].as_array().unwrap().len(), 100);
    let def = get(
        &c,
        &format!("{}/repos/{repo}/issues?state=all", hub.base_url()),
        Some(t),
    )
    .await;
    assert_eq!(def.json().as_array().unwrap().len(), 30);
    assert!(
        def.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.get("pull_request").is_some()),
        "issues include PRs"
    );
}

#[tokio::test]
async fn filters_on_runs_and_analyses() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let repo = w.private_repo();
    let r = get(
        &c,
        &format!(
            "{}/repos/{repo}/actions/runs?status=completed&branch=main&per_page=100",
            hub.base_url()
        ),
        Some(t),
    )
    .await;
    for run in r.json()["workflow_runs"].as_array().unwrap() {
        assert_eq!(run["status"], "completed");
        assert_eq!(run["head_branch"], "main");
    }
    let a = get(
        &c,
        &format!(
            "{}/repos/{repo}/code-scanning/analyses?tool_name=CodeQL&ref=main",
            hub.base_url()
        ),
        Some(t),
    )
    .await;
    assert_eq!(a.status, 200);
    let list = a.json();
    assert!(!list.as_array().unwrap().is_empty());
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|x| x["ref"] == "refs/heads/main")
    );
}

#[tokio::test]
async fn issue_write_changes_resource_and_collection_etags() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("carol");
    let repo = w.private_repo();
    let base = hub.base_url();
    let list_url = format!("{base}/repos/{repo}/issues");
    let repo_url = format!("{base}/repos/{repo}");
    let l1 = get(&c, &list_url, Some(t)).await;
    let r1 = get(&c, &repo_url, Some(t)).await;
    let created = post(
        &c,
        &list_url,
        Some(t),
        &json!({"title": "New flaky test", "body": "x", "labels": ["bug"]}),
    )
    .await;
    assert_eq!(created.status, 201);
    let n = created.json()["number"].as_u64().unwrap();
    assert_eq!(created.json()["user"]["login"], "carol");
    let l2 = get_h(&c, &list_url, Some(t), &[("if-none-match", &l1.h("etag"))]).await;
    assert_eq!(l2.status, 200, "collection changed");
    assert_eq!(l2.json()[0]["number"], n);
    let r2 = get_h(&c, &repo_url, Some(t), &[("if-none-match", &r1.h("etag"))]).await;
    assert_eq!(r2.status, 200, "open_issues_count changed");
    assert_eq!(
        r2.json()["open_issues_count"].as_u64().unwrap(),
        r1.json()["open_issues_count"].as_u64().unwrap() + 1
    );

    let issue_url = format!("{base}/repos/{repo}/issues/{n}");
    let i1 = get(&c, &issue_url, Some(t)).await;
    hub.advance_clock(std::time::Duration::from_secs(5));
    let cm = post(
        &c,
        &format!("{issue_url}/comments"),
        Some(t),
        &json!({"body": "me too"}),
    )
    .await;
    assert_eq!(cm.status, 201);
    let i2 = get_h(&c, &issue_url, Some(t), &[("if-none-match", &i1.h("etag"))]).await;
    assert_eq!(i2.status, 200);
    assert_eq!(i2.json()["comments"], 1);
    assert_ne!(i2.json()["updated_at"], i1.json()["updated_at"]);

    // malformed and invalid input
    let bad = send(
        &c,
        reqwest::Method::POST,
        &list_url,
        Some(t),
        &[],
        Some(b"{oops".to_vec()),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["message"], "Problems parsing JSON");
    let inv = post(&c, &list_url, Some(t), &json!({"body": "no title"})).await;
    assert_eq!(inv.status, 422);
    assert_eq!(inv.json()["message"], "Validation Failed");
    // permissions
    let ro = post(
        &c,
        &list_url,
        Some(w.github_token_read_only(repo)),
        &json!({"title": "x"}),
    )
    .await;
    assert_eq!(ro.status, 403);
    assert_eq!(
        ro.json()["message"],
        "Resource not accessible by integration"
    );
    let gt = post(
        &c,
        &list_url,
        Some(w.github_token(repo)),
        &json!({"title": "from CI"}),
    )
    .await;
    assert_eq!(gt.status, 201);
    assert_eq!(gt.json()["user"]["login"], "github-actions[bot]");
    assert_eq!(
        post(
            &c,
            &list_url,
            Some(w.outsider_pat()),
            &json!({"title": "x"})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        post(&c, &list_url, None, &json!({"title": "x"}))
            .await
            .status,
        404
    );
    let pub_issues = format!("{base}/repos/{}/issues", w.public_repo());
    assert_eq!(
        post(&c, &pub_issues, None, &json!({"title": "x"}))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn cancel_run_changes_run_and_list() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("carol");
    let repo = w.private_repo();
    let base = hub.base_url();
    let runs_url = format!("{base}/repos/{repo}/actions/runs?status=in_progress");
    let l1 = get(&c, &runs_url, Some(t)).await;
    let run = l1.json()["workflow_runs"][0].clone();
    let id = run["id"].as_u64().unwrap();
    let run_url = format!("{base}/repos/{repo}/actions/runs/{id}");
    let r1 = get(&c, &run_url, Some(t)).await;
    let all1 = get(&c, &format!("{base}/repos/{repo}/actions/runs"), Some(t)).await;
    let x = post(&c, &format!("{run_url}/cancel"), Some(t), &json!({})).await;
    assert_eq!(x.status, 202);
    let r2 = get_h(&c, &run_url, Some(t), &[("if-none-match", &r1.h("etag"))]).await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.json()["conclusion"], "cancelled");
    assert_eq!(r2.json()["status"], "completed");
    let all2 = get_h(
        &c,
        &format!("{base}/repos/{repo}/actions/runs"),
        Some(t),
        &[("if-none-match", &all1.h("etag"))],
    )
    .await;
    assert_eq!(all2.status, 200);
    let l2 = get(&c, &runs_url, Some(t)).await;
    assert_eq!(
        l2.json()["total_count"].as_u64().unwrap(),
        l1.json()["total_count"].as_u64().unwrap() - 1
    );
    let again = post(&c, &format!("{run_url}/cancel"), Some(t), &json!({})).await;
    assert_eq!(again.status, 409);
    // a reader cannot cancel
    let bob = post(
        &c,
        &format!(
            "{base}/repos/{repo}/actions/runs/{}/cancel",
            w.repo(repo).unwrap().run_ids[0]
        ),
        Some(w.pat("bob")),
        &json!({}),
    )
    .await;
    assert_eq!(bob.status, 403);
    let jobs = get(&c, &format!("{run_url}/jobs"), Some(t)).await;
    assert!(
        jobs.json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "completed")
    );
}

#[tokio::test]
async fn runners_admin_only_and_delete() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let repo = w.private_repo();
    let base = hub.base_url();
    let admin = w.pat("alice");
    let url = format!("{base}/repos/{repo}/actions/runners");
    let l = get(&c, &url, Some(admin)).await;
    assert_eq!(l.status, 200);
    let n = l.json()["total_count"].as_u64().unwrap();
    assert!(n >= 3);
    assert_eq!(get(&c, &url, Some(w.pat("bob"))).await.status, 403);
    assert_eq!(get(&c, &url, Some(w.github_token(repo))).await.status, 403);
    let tok = post(
        &c,
        &format!("{url}/registration-token"),
        Some(admin),
        &json!({}),
    )
    .await;
    assert_eq!(tok.status, 201);
    assert_eq!(tok.h("x-ratelimit-resource"), "actions_runner_registration");
    let id = l.json()["runners"][0]["id"].as_u64().unwrap();
    let d = send(
        &c,
        reqwest::Method::DELETE,
        &format!("{url}/{id}"),
        Some(admin),
        &[],
        None,
    )
    .await;
    assert_eq!(d.status, 204);
    let l2 = get_h(&c, &url, Some(admin), &[("if-none-match", &l.h("etag"))]).await;
    assert_eq!(l2.status, 200);
    assert_eq!(l2.json()["total_count"].as_u64().unwrap(), n - 1);
    let org = get(
        &c,
        &format!("{base}/orgs/acme/actions/runners"),
        Some(admin),
    )
    .await;
    assert_eq!(org.status, 200);
    assert_eq!(
        get(
            &c,
            &format!("{base}/orgs/acme/actions/runners"),
            Some(w.pat("bob"))
        )
        .await
        .status,
        403
    );
}

#[tokio::test]
async fn sarif_upload_and_lookup() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let repo = w.private_repo();
    let base = hub.base_url();
    let t = w.github_token(repo);
    let sarif = json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "CodeQL", "semanticVersion": "2.20.1", "rules": []}},
        "results": [{"ruleId": "x"}], "automationDetails": {"id": "ci/"}}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, sarif.to_string().as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let sha = w.repo(repo).unwrap().head_sha.clone();
    let up = post(
        &c,
        &format!("{base}/repos/{repo}/code-scanning/sarifs"),
        Some(t),
        &json!({"commit_sha": sha, "ref": "refs/heads/main", "sarif": b64}),
    )
    .await;
    assert_eq!(up.status, 202);
    assert_eq!(up.h("x-ratelimit-resource"), "code_scanning_upload");
    let id = up.json()["id"].as_str().unwrap().to_string();
    assert!(up.json()["url"].as_str().unwrap().ends_with(&id));
    let st = get(
        &c,
        &format!("{base}/repos/{repo}/code-scanning/sarifs/{id}"),
        Some(t),
    )
    .await;
    assert_eq!(st.json()["processing_status"], "complete");
    let a = get(
        &c,
        &format!("{base}/repos/{repo}/code-scanning/analyses?sarif_id={id}"),
        Some(t),
    )
    .await;
    let a = a.json();
    assert_eq!(a.as_array().unwrap().len(), 1);
    assert_eq!(a[0]["commit_sha"], sha.as_str());
    assert_eq!(a[0]["results_count"], 1);
    let bad = post(
        &c,
        &format!("{base}/repos/{repo}/code-scanning/sarifs"),
        Some(t),
        &json!({"commit_sha": "nothex", "ref": "refs/heads/main", "sarif": b64}),
    )
    .await;
    assert_eq!(bad.status, 422);
    let ro = post(
        &c,
        &format!("{base}/repos/{repo}/code-scanning/sarifs"),
        Some(w.github_token_read_only(repo)),
        &json!({"commit_sha": sha, "ref": "refs/heads/main", "sarif": "x"}),
    )
    .await;
    assert_eq!(ro.status, 403);
}

#[tokio::test]
async fn compare_and_pulls() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let repo = w.private_repo();
    let base = hub.base_url();
    let pulls = get(
        &c,
        &format!("{base}/repos/{repo}/pulls?state=all&per_page=100"),
        Some(t),
    )
    .await;
    let pr = pulls.json()[0].clone();
    assert_eq!(
        pulls.json().as_array().unwrap().len(),
        w.repo(repo).unwrap().pulls
    );
    let n = pr["number"].as_u64().unwrap();
    let one = get(&c, &format!("{base}/repos/{repo}/pulls/{n}"), Some(t)).await;
    assert_eq!(one.status, 200);
    assert!(one.json()["mergeable_state"].is_string());
    let head = pr["head"]["sha"].as_str().unwrap();
    let basesha = pr["base"]["sha"].as_str().unwrap();
    let cmp = get(
        &c,
        &format!("{base}/repos/{repo}/compare/{basesha}...{head}"),
        Some(t),
    )
    .await;
    assert_eq!(cmp.status, 200);
    let j = cmp.json();
    assert_eq!(j["status"], "ahead");
    assert!(j["ahead_by"].as_u64().unwrap() >= 1);
    assert_eq!(j["merge_base_commit"]["sha"], basesha);
    // Branch names hold slashes (`feature/x`); GitHub compares them by name.
    let (base_ref, head_ref) = (
        pr["base"]["ref"].as_str().unwrap(),
        pr["head"]["ref"].as_str().unwrap(),
    );
    assert!(head_ref.contains('/'), "{head_ref}");
    let by_name = get(
        &c,
        &format!("{base}/repos/{repo}/compare/{base_ref}...{head_ref}"),
        Some(t),
    )
    .await;
    assert_eq!(by_name.status, 200);
    assert_eq!(by_name.json()["ahead_by"], j["ahead_by"]);
}
