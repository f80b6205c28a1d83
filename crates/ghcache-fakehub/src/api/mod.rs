//! Routing and the REST handlers, one file per area of GitHub's API.
//! Handlers are synchronous: they take the state lock, answer, and release
//! it; nothing here awaits. The pipeline in `server` calls [`classify`] and
//! [`dispatch`]; nothing here calls back into it.

mod actions;
mod app;
mod code_scanning;
mod page;
mod pulls_issues;
mod repos;
mod users_orgs;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::gates::{self, Need, repo_permission, repo_visible};
use crate::hub::{Category, Class, Hub};
use crate::render::R;
use crate::reply::{Reply, json_bytes};

const LIST_TAILS: [&str; 10] = [
    "repos",
    "pulls",
    "issues",
    "runs",
    "jobs",
    "runners",
    "analyses",
    "comments",
    "commits",
    "installations",
];

/// Latency class and rate-limit category of a request.
pub(crate) fn classify(method: &Method, path: &str) -> (Class, Category) {
    if path == "/graphql" {
        return (Class::Graphql, Category::Graphql);
    }
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if path.starts_with("/search/") {
        return (Class::List, Category::Search);
    }
    if *method != Method::GET && *method != Method::HEAD {
        if path.ends_with("/code-scanning/sarifs") {
            return (Class::Write, Category::CodeScanningUpload);
        }
        if path.ends_with("/actions/runners/registration-token") {
            return (Class::Write, Category::ActionsRunnerRegistration);
        }
        return (Class::Write, Category::Core);
    }
    if LIST_TAILS.contains(&last) {
        (Class::List, Category::Core)
    } else {
        (Class::Read, Category::Core)
    }
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn dispatch(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    let mut segs: Vec<String> = ctx
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(pct_decode)
        .collect();
    // GitHub's id-based aliases, which its Link headers use.
    if segs.len() >= 2 && (segs[0] == "repositories" || segs[0] == "organizations") {
        let Ok(id) = segs[1].parse::<u64>() else {
            return Reply::not_found();
        };
        let st = hub.state.read();
        if segs[0] == "repositories" {
            let Some(ri) = st.repo_by_id(id) else {
                return Reply::not_found();
            };
            let r = &st.repos[ri];
            let owner = st.accounts[r.owner].login.clone();
            let name = r.name.clone();
            segs.splice(0..2, ["repos".to_string(), owner, name]);
        } else {
            let Some(ai) = st.accounts.iter().position(|a| a.is_org && a.id == id) else {
                return Reply::not_found();
            };
            let login = st.accounts[ai].login.clone();
            segs.splice(0..2, ["orgs".to_string(), login]);
        }
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let Err(r) = gates::app_scope(&ctx.who.principal, s.first().copied()) {
        return r;
    }
    match (ctx.method.as_str(), s.as_slice()) {
        ("GET", ["rate_limit"]) => rate_limit(hub, ctx),
        ("GET", ["user"]) => users_orgs::get_user(hub, ctx),
        ("GET", ["user", "repos"]) => users_orgs::user_repos(hub, ctx),
        ("GET", ["users", u]) => users_orgs::get_users(hub, ctx, u),
        ("GET", ["orgs", o]) => users_orgs::get_org(hub, ctx, o),
        ("GET", ["orgs", o, "repos"]) => users_orgs::org_repos(hub, ctx, o),
        ("GET", ["orgs", o, "actions", "runners"]) => users_orgs::org_runners(hub, ctx, o),
        ("POST", ["graphql"]) => crate::graphql::handle(hub, ctx),
        ("GET", ["app"]) => app::app_get(hub, ctx),
        ("GET", ["app", "installations"]) => app::app_installations(hub, ctx),
        ("POST", ["app", "installations", id, "access_tokens"]) => app::mint(hub, ctx, id),
        (_, ["repos", o, r, rest @ ..]) => repo_scoped(hub, ctx, o, r, rest),
        _ => Reply::not_found(),
    }
}

fn rate_limit(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    let mut resources = serde_json::Map::new();
    let cats = [
        Category::Core,
        Category::Search,
        Category::Graphql,
        Category::CodeScanningUpload,
        Category::ActionsRunnerRegistration,
    ];
    for c in cats {
        let (limit, used, reset) = hub.rate_view(ctx.who, c);
        resources.insert(
            c.name().to_string(),
            json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset": reset}),
        );
    }
    let now = hub.clock.now();
    for (name, limit) in [
        ("integration_manifest", 5000u64),
        ("source_import", 100),
        ("scim", 15000),
        ("dependency_snapshots", 100),
        ("code_search", 10),
        ("audit_log", 1750),
    ] {
        resources.insert(
            name.to_string(),
            json!({"limit": limit, "used": 0, "remaining": limit, "reset": now + 3600}),
        );
    }
    let rate = resources.get("core").cloned().unwrap_or(Value::Null);
    let mut r = Reply::json(
        StatusCode::OK,
        json_bytes(&json!({"resources": resources, "rate": rate})),
    );
    r.cost = 0;
    r
}

/// Everything under `/repos/{owner}/{repo}/`: 404 unless the repository is
/// visible to the caller, then the permission the endpoint needs, then the
/// handler of its area.
fn repo_scoped(hub: &Hub, ctx: &Ctx<'_>, owner: &str, name: &str, rest: &[&str]) -> Reply {
    let st = hub.state.read();
    let Some(ri) = st.repo_idx(owner, name) else {
        return Reply::not_found();
    };
    if !repo_visible(&st, &ctx.who.principal, ri) {
        return Reply::not_found();
    }
    let p = &ctx.who.principal;
    let m = ctx.method.as_str();
    // writes first: they need the write lock
    let write_need = match (m, rest) {
        ("POST", ["issues"]) | ("POST", ["issues", _, "comments"]) => Some(("issues", Need::Write)),
        ("POST", ["actions", "runs", _, "cancel"]) => Some(("actions", Need::Write)),
        ("POST", ["actions", "runners", "registration-token"])
        | ("DELETE", ["actions", "runners", _]) => Some(("administration", Need::Admin)),
        ("POST", ["code-scanning", "sarifs"]) => Some(("security_events", Need::Write)),
        _ => None,
    };
    if let Some((scope, need)) = write_need {
        if let Err(r) = repo_permission(&st, p, ri, scope, need) {
            return r;
        }
        drop(st);
        return match (m, rest) {
            ("POST", ["issues"]) => pulls_issues::create_issue(hub, ctx, ri),
            ("POST", ["issues", n, "comments"]) => pulls_issues::create_comment(hub, ctx, ri, n),
            ("POST", ["actions", "runs", id, "cancel"]) => actions::cancel_run(hub, ri, id),
            ("POST", ["actions", "runners", "registration-token"]) => {
                actions::registration_token(hub)
            }
            ("DELETE", ["actions", "runners", id]) => actions::delete_runner(hub, ri, id),
            ("POST", ["code-scanning", "sarifs"]) => code_scanning::upload_sarif(hub, ctx, ri),
            _ => Reply::not_found(),
        };
    }
    if m != "GET" {
        return Reply::not_found();
    }
    let scope = match rest.first().copied() {
        None => "metadata",
        Some("pulls") => "pull_requests",
        Some("issues") => "issues",
        Some("commits") | Some("compare") | Some("contents") => "contents",
        Some("actions") if rest.get(1) == Some(&"runners") => "administration",
        Some("actions") => "actions",
        Some("code-scanning") => "security_events",
        _ => "metadata",
    };
    let need = if scope == "administration" {
        Need::Admin
    } else {
        Need::Read
    };
    let role = match repo_permission(&st, p, ri, scope, need) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let q = repos::RepoRead {
        hub,
        ctx,
        st: &st,
        ri,
        repo: &st.repos[ri],
        rd: R {
            st: &st,
            base: &hub.base,
        },
        g: st.generation,
    };
    match rest {
        [] => repos::get_repo(&q, role),
        ["pulls"] => pulls_issues::list_pulls(&q),
        ["pulls", n] => pulls_issues::get_pull(&q, n),
        ["issues"] => pulls_issues::list_issues(&q),
        ["issues", n] => pulls_issues::get_issue(&q, n),
        ["issues", n, "comments"] => pulls_issues::list_comments(&q, n),
        ["commits"] => repos::list_commits(&q),
        ["commits", r] => repos::get_commit(&q, r),
        // Branch names may hold slashes: `compare/main...feature/x`.
        ["compare", bh @ ..] if !bh.is_empty() => repos::compare(&q, &bh.join("/")),
        ["contents"] => repos::contents(&q, ""),
        ["contents", path @ ..] => repos::contents(&q, &path.join("/")),
        ["actions", "runs"] => actions::list_runs(&q),
        ["actions", "runs", id] => actions::get_run(&q, id),
        ["actions", "runs", id, "jobs"] => actions::list_jobs(&q, id),
        ["actions", "runners"] => actions::list_runners(&q),
        ["code-scanning", "analyses"] => code_scanning::list_analyses(&q),
        ["code-scanning", "sarifs", id] => code_scanning::get_sarif(&q, id),
        _ => Reply::not_found(),
    }
}
