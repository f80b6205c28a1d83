//! Pull requests, issues and issue comments (one number space, as on
//! GitHub): lists, single items, and the two writes.

use http::StatusCode;
use serde_json::Value;

use super::page::list_reply;
use super::repos::RepoRead;
use crate::ctx::Ctx;
use crate::hub::Hub;
use crate::render::R;
use crate::reply::{DOCS, Reply, json_bytes};
use crate::world::{Comment, Issue, Principal, Repo, State};

pub(super) fn list_pulls(q: &RepoRead<'_>) -> Reply {
    let (ctx, ri) = (q.ctx, q.ri);
    let state = ctx.q("state").unwrap_or("open");
    let head = ctx
        .q("head")
        .map(|h| h.rsplit(':').next().unwrap_or(h).to_string());
    let base = ctx.q("base");
    let mut list: Vec<&Issue> = q
        .repo
        .issues
        .iter()
        .filter(|i| i.pull.is_some())
        .filter(|i| state_ok(state, i.open))
        .filter(|i| {
            head.as_deref()
                .is_none_or(|h| i.pull.as_ref().is_some_and(|p| p.head_ref == h))
        })
        .filter(|i| base.is_none_or(|b| i.pull.as_ref().is_some_and(|p| p.base_ref == b)))
        .collect();
    sort_issues(ctx, &mut list);
    list_reply(q.hub, ctx, q.g, &list, &q.lp("pulls"), |i| {
        q.rd.pull(ri, i, false)
    })
}

pub(super) fn get_pull(q: &RepoRead<'_>, n: &str) -> Reply {
    match find_issue(q.repo, n).filter(|i| i.pull.is_some()) {
        Some(i) => {
            let body = q
                .hub
                .cached(q.ctx.key(""), q.g, || q.rd.pull(q.ri, i, true));
            Reply::ok(body).modified(i.updated_at)
        }
        None => Reply::not_found(),
    }
}

pub(super) fn list_issues(q: &RepoRead<'_>) -> Reply {
    let (ctx, st, ri) = (q.ctx, q.st, q.ri);
    let state = ctx.q("state").unwrap_or("open");
    let labels: Vec<&str> = ctx
        .q("labels")
        .map(|l| l.split(',').collect())
        .unwrap_or_default();
    let creator = ctx.q("creator");
    let mut list: Vec<&Issue> = q
        .repo
        .issues
        .iter()
        .filter(|i| state_ok(state, i.open))
        .filter(|i| {
            labels
                .iter()
                .all(|l| i.labels.iter().any(|(_, n, _)| n == l))
        })
        .filter(|i| creator.is_none_or(|c| st.accounts[i.user].login.eq_ignore_ascii_case(c)))
        .collect();
    sort_issues(ctx, &mut list);
    list_reply(q.hub, ctx, q.g, &list, &q.lp("issues"), |i| {
        q.rd.issue(ri, i)
    })
}

pub(super) fn get_issue(q: &RepoRead<'_>, n: &str) -> Reply {
    match find_issue(q.repo, n) {
        Some(i) => {
            let body = q.hub.cached(q.ctx.key(""), q.g, || q.rd.issue(q.ri, i));
            Reply::ok(body).modified(i.updated_at)
        }
        None => Reply::not_found(),
    }
}

pub(super) fn list_comments(q: &RepoRead<'_>, n: &str) -> Reply {
    match find_issue(q.repo, n) {
        Some(i) => {
            let list: Vec<&Comment> = q
                .repo
                .comments
                .iter()
                .filter(|c| c.issue_number == i.number)
                .collect();
            list_reply(
                q.hub,
                q.ctx,
                q.g,
                &list,
                &q.lp(&format!("issues/{}/comments", i.number)),
                |c| q.rd.comment(q.ri, c),
            )
        }
        None => Reply::not_found(),
    }
}

fn state_ok(state: &str, open: bool) -> bool {
    match state {
        "closed" => !open,
        "all" => true,
        _ => open,
    }
}

fn sort_issues(ctx: &Ctx<'_>, list: &mut [&Issue]) {
    match ctx.q("sort") {
        Some("updated") => list.sort_by_key(|i| (i.updated_at, i.number)),
        Some("comments") => list.sort_by_key(|i| (i.comments, i.number)),
        _ => list.sort_by_key(|i| i.number),
    }
    if ctx.q("direction") != Some("asc") {
        list.reverse();
    }
}

fn find_issue<'s>(repo: &'s Repo, n: &str) -> Option<&'s Issue> {
    let n: u64 = n.parse().ok()?;
    repo.issues.iter().find(|i| i.number == n)
}

// ------------------------------------------------------------ writes

fn author_of(st: &State, p: &Principal) -> usize {
    let bot = |name: &str| st.account_idx(name).unwrap_or(0);
    match p {
        Principal::User { user } => *user,
        Principal::Installation { .. } => bot("ghcache-fake-app[bot]"),
        _ => bot("github-actions[bot]"),
    }
}

pub(super) fn create_issue(hub: &Hub, ctx: &Ctx<'_>, ri: usize) -> Reply {
    let v = match ctx.json_body() {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.is_object() {
        return Reply::error(StatusCode::BAD_REQUEST, "Problems parsing JSON", DOCS);
    }
    let Some(title) = v.get("title").and_then(|t| {
        t.as_str()
            .map(str::to_string)
            .or_else(|| t.as_u64().map(|n| n.to_string()))
    }) else {
        return Reply::validation("Issue", "title", "missing_field");
    };
    let body = v
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let labels: Vec<String> = v
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let now = hub.clock.now();
    let mut st = hub.state.write();
    let user = author_of(&st, &ctx.who.principal);
    let id = st.fresh_id();
    let label_ids: Vec<u64> = labels.iter().map(|_| st.fresh_id()).collect();
    let repo = &mut st.repos[ri];
    let number = repo.issues.iter().map(|i| i.number).max().unwrap_or(0) + 1;
    repo.issues.push(Issue {
        id,
        node_id: crate::world::node_id("I", id),
        number,
        title,
        body,
        user,
        open: true,
        labels: labels
            .into_iter()
            .zip(label_ids)
            .map(|(l, id)| (id, l, "ededed".to_string()))
            .collect(),
        comments: 0,
        created_at: now,
        updated_at: now,
        closed_at: None,
        pull: None,
    });
    st.generation += 1;
    let rd = R {
        st: &st,
        base: &hub.base,
    };
    let issue = st.repos[ri]
        .issues
        .last()
        .map(|i| rd.issue(ri, i))
        .unwrap_or(Value::Null);
    let mut r = Reply::json(StatusCode::CREATED, json_bytes(&issue));
    r.headers.push((
        "location",
        format!("{}/repos/{}/issues/{number}", hub.base, st.full_name(ri)),
    ));
    r
}

pub(super) fn create_comment(hub: &Hub, ctx: &Ctx<'_>, ri: usize, n: &str) -> Reply {
    let v = match ctx.json_body() {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(number) = n.parse::<u64>() else {
        return Reply::not_found();
    };
    let now = hub.clock.now();
    let mut st = hub.state.write();
    if !st.repos[ri].issues.iter().any(|i| i.number == number) {
        return Reply::not_found();
    }
    let Some(text) = v.get("body").and_then(Value::as_str).map(str::to_string) else {
        return Reply::validation("IssueComment", "body", "missing_field");
    };
    let user = author_of(&st, &ctx.who.principal);
    let id = st.fresh_id();
    let c = Comment {
        id,
        node_id: crate::world::node_id("IC", id),
        issue_number: number,
        user,
        body: text,
        created_at: now,
        updated_at: now,
    };
    let repo = &mut st.repos[ri];
    if let Some(i) = repo.issues.iter_mut().find(|i| i.number == number) {
        i.comments += 1;
        i.updated_at = now;
    }
    repo.comments.push(c.clone());
    st.generation += 1;
    let body = R {
        st: &st,
        base: &hub.base,
    }
    .comment(ri, &c);
    let mut r = Reply::json(StatusCode::CREATED, json_bytes(&body));
    r.headers.push((
        "location",
        format!(
            "{}/repos/{}/issues/comments/{id}",
            hub.base,
            st.full_name(ri)
        ),
    ));
    r
}
