//! Actions: workflow runs, their jobs, repository runners, and the writes
//! (cancel a run, a runner registration token, delete a runner).

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use super::page::{link, page_of, slice};
use super::repos::RepoRead;
use crate::hub::Hub;
use crate::reply::{Reply, json_bytes};
use crate::time::iso;
use crate::world::{Repo, Run};

pub(super) fn list_runs(q: &RepoRead<'_>) -> Reply {
    let (ctx, st, ri, repo) = (q.ctx, q.st, q.ri, q.repo);
    let status = ctx.q("status");
    let branch = ctx.q("branch");
    let event = ctx.q("event");
    let actor = ctx.q("actor");
    let head_sha = ctx.q("head_sha");
    let list: Vec<usize> = (0..repo.runs.len())
        .rev()
        .filter(|k| {
            let r = &repo.runs[*k];
            status.is_none_or(|s| r.status == s || r.conclusion == Some(s))
                && branch.is_none_or(|b| r.head_branch == b)
                && event.is_none_or(|e| r.event == e)
                && actor.is_none_or(|a| st.accounts[r.actor].login.eq_ignore_ascii_case(a))
                && head_sha.is_none_or(|h| repo.commits[r.head_commit].sha == h)
        })
        .collect();
    let pg = page_of(ctx);
    let body = q.hub.cached(ctx.key(""), q.g, || {
        json!({
            "total_count": list.len(),
            "workflow_runs": slice(&list, &pg).iter().map(|k| q.rd.run(ri, &repo.runs[*k])).collect::<Vec<_>>()
        })
    });
    Reply::ok(body).link(link(q.hub, ctx, &q.lp("actions/runs"), &pg, list.len()))
}

pub(super) fn get_run(q: &RepoRead<'_>, id: &str) -> Reply {
    match find_run(q.repo, id) {
        Some(run) => {
            let body = q.hub.cached(q.ctx.key(""), q.g, || q.rd.run(q.ri, run));
            Reply::ok(body).modified(run.updated_at)
        }
        None => Reply::not_found(),
    }
}

pub(super) fn list_jobs(q: &RepoRead<'_>, id: &str) -> Reply {
    let ctx = q.ctx;
    match find_run(q.repo, id) {
        Some(run) => {
            let pg = page_of(ctx);
            let body = q.hub.cached(ctx.key(""), q.g, || {
                json!({
                    "total_count": run.jobs.len(),
                    "jobs": slice(&run.jobs, &pg).iter().map(|j| q.rd.job(q.ri, run, j)).collect::<Vec<_>>()
                })
            });
            Reply::ok(body).link(link(
                q.hub,
                ctx,
                &q.lp(&format!("actions/runs/{}/jobs", run.id)),
                &pg,
                run.jobs.len(),
            ))
        }
        None => Reply::not_found(),
    }
}

pub(super) fn list_runners(q: &RepoRead<'_>) -> Reply {
    let (ctx, repo) = (q.ctx, q.repo);
    let pg = page_of(ctx);
    let body = q.hub.cached(ctx.key(""), q.g, || {
        json!({
            "total_count": repo.runners.len(),
            "runners": slice(&repo.runners, &pg).iter().map(|x| q.rd.runner(x)).collect::<Vec<_>>()
        })
    });
    Reply::ok(body).link(link(
        q.hub,
        ctx,
        &q.lp("actions/runners"),
        &pg,
        repo.runners.len(),
    ))
}

fn find_run<'s>(repo: &'s Repo, id: &str) -> Option<&'s Run> {
    let id: u64 = id.parse().ok()?;
    repo.runs.iter().find(|r| r.id == id)
}

// ------------------------------------------------------------ writes

pub(super) fn cancel_run(hub: &Hub, ri: usize, id: &str) -> Reply {
    let now = hub.clock.now();
    let mut st = hub.state.write();
    let Some(run) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.repos[ri].runs.iter_mut().find(|r| r.id == id))
    else {
        return Reply::not_found();
    };
    if run.status == "completed" {
        return Reply::error(
            StatusCode::CONFLICT,
            "Cannot cancel a workflow run that is completed.",
            "https://docs.github.com/rest/actions/workflow-runs#cancel-a-workflow-run",
        );
    }
    run.status = "completed";
    run.conclusion = Some("cancelled");
    run.updated_at = now;
    for j in run.jobs.iter_mut().filter(|j| j.status != "completed") {
        j.status = "completed";
        j.conclusion = Some("cancelled");
        j.completed_at = Some(now);
    }
    st.generation += 1;
    Reply::json(StatusCode::ACCEPTED, Bytes::from_static(b"{}"))
}

pub(super) fn registration_token(hub: &Hub) -> Reply {
    let mut st = hub.state.write();
    let tok: String = crate::world::hex_id(&mut st.rng, 29).to_ascii_uppercase();
    let v = json!({"token": format!("A{tok}"), "expires_at": iso(hub.clock.now() + 3600)});
    Reply::json(StatusCode::CREATED, json_bytes(&v))
}

pub(super) fn delete_runner(hub: &Hub, ri: usize, id: &str) -> Reply {
    let mut st = hub.state.write();
    let Ok(id) = id.parse::<u64>() else {
        return Reply::not_found();
    };
    let runners = &mut st.repos[ri].runners;
    let before = runners.len();
    runners.retain(|r| r.id != id);
    if runners.len() == before {
        return Reply::not_found();
    }
    st.generation += 1;
    Reply::json(StatusCode::NO_CONTENT, Bytes::new())
}
