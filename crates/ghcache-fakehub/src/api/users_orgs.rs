//! Users and organisations: `/user`, `/user/repos`, `/users/{u}`,
//! `/orgs/{org}`, `/orgs/{org}/repos`, `/orgs/{org}/actions/runners`.

use http::StatusCode;
use serde_json::{Value, json};

use super::page::{link, page_of, slice};
use crate::ctx::Ctx;
use crate::gates::{repo_visible, viewer_role};
use crate::hub::Hub;
use crate::render::R;
use crate::reply::{DOCS, Reply};
use crate::world::{Principal, State};

pub(super) fn get_user(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    match &ctx.who.principal {
        Principal::Anonymous => Reply::requires_auth(),
        Principal::User { user } => {
            let st = hub.state.read();
            let body = hub.cached(ctx.key(&ctx.who.label), st.generation, || {
                R {
                    st: &st,
                    base: &hub.base,
                }
                .user_private(*user)
            });
            Reply::ok(body).modified(st.accounts[*user].updated_at)
        }
        _ => Reply::not_integration(),
    }
}

pub(super) fn get_users(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
    let st = hub.state.read();
    let Some(ai) = st.account_idx(login) else {
        return Reply::not_found();
    };
    let body = hub.cached(ctx.key(""), st.generation, || {
        let r = R {
            st: &st,
            base: &hub.base,
        };
        if st.accounts[ai].is_org {
            r.org(ai)
        } else {
            r.user_full(ai)
        }
    });
    Reply::ok(body).modified(st.accounts[ai].updated_at)
}

pub(super) fn get_org(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
    let st = hub.state.read();
    let Some(ai) = st.account_idx(login).filter(|a| st.accounts[*a].is_org) else {
        return Reply::not_found();
    };
    let body = hub.cached(ctx.key(""), st.generation, || {
        R {
            st: &st,
            base: &hub.base,
        }
        .org(ai)
    });
    Reply::ok(body).modified(st.accounts[ai].updated_at)
}

fn repo_list_reply(
    hub: &Hub,
    ctx: &Ctx<'_>,
    st: &State,
    mut list: Vec<usize>,
    sort_default: &str,
    link_path: &str,
) -> Reply {
    let sort = ctx.q("sort").unwrap_or(sort_default);
    match sort {
        "full_name" => list.sort_by_key(|ri| st.full_name(*ri).to_ascii_lowercase()),
        "updated" => list.sort_by_key(|ri| st.repos[*ri].updated_at),
        "pushed" => list.sort_by_key(|ri| st.repos[*ri].pushed_at),
        _ => list.sort_by_key(|ri| st.repos[*ri].created_at),
    }
    let asc_default = sort == "full_name";
    let desc = match ctx.q("direction") {
        Some("asc") => false,
        Some("desc") => true,
        _ => !asc_default,
    };
    if desc {
        list.reverse();
    }
    let p = page_of(ctx);
    let body = hub.cached(ctx.key(&ctx.who.label), st.generation, || {
        let r = R {
            st,
            base: &hub.base,
        };
        Value::Array(
            slice(&list, &p)
                .iter()
                .map(|ri| r.repo_full(*ri, viewer_role(st, &ctx.who.principal, *ri), false))
                .collect(),
        )
    });
    Reply::ok(body).link(link(hub, ctx, link_path, &p, list.len()))
}

pub(super) fn user_repos(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    let user = match &ctx.who.principal {
        Principal::Anonymous => return Reply::requires_auth(),
        Principal::User { user } => *user,
        _ => return Reply::not_integration(),
    };
    let st = hub.state.read();
    let visibility = ctx.q("visibility").unwrap_or("all");
    let affiliation = ctx
        .q("affiliation")
        .unwrap_or("owner,collaborator,organization_member");
    let list: Vec<usize> = (0..st.repos.len())
        .filter(|ri| {
            let r = &st.repos[*ri];
            let owner = r.owner == user;
            let collab = r.collaborators.iter().any(|(u, _)| *u == user);
            let member = st.accounts[r.owner].is_org && st.is_org_member(user, r.owner);
            let aff = (owner && affiliation.contains("owner"))
                || (collab && affiliation.contains("collaborator"))
                || (member && affiliation.contains("organization_member"));
            let vis = match visibility {
                "public" => !r.private,
                "private" => r.private,
                _ => true,
            };
            aff && vis
        })
        .collect();
    repo_list_reply(hub, ctx, &st, list, "full_name", "/user/repos")
}

pub(super) fn org_repos(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
    let st = hub.state.read();
    let Some(oi) = st.account_idx(login).filter(|a| st.accounts[*a].is_org) else {
        return Reply::not_found();
    };
    let ty = ctx.q("type").unwrap_or("all");
    let list: Vec<usize> = (0..st.repos.len())
        .filter(|ri| st.repos[*ri].owner == oi && repo_visible(&st, &ctx.who.principal, *ri))
        .filter(|ri| match ty {
            "public" => !st.repos[*ri].private,
            "private" => st.repos[*ri].private,
            "forks" => false,
            _ => true,
        })
        .collect();
    let lp = format!("/organizations/{}/repos", st.accounts[oi].id);
    repo_list_reply(hub, ctx, &st, list, "created", &lp)
}

pub(super) fn org_runners(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
    let st = hub.state.read();
    let Some(oi) = st.account_idx(login).filter(|a| st.accounts[*a].is_org) else {
        return Reply::not_found();
    };
    let allowed = match &ctx.who.principal {
        Principal::Anonymous => return Reply::requires_auth(),
        Principal::User { user } => st.is_org_owner(*user, oi),
        Principal::Installation { inst, perms, .. } => {
            st.installations[*inst].account == oi
                && perms.contains_key("organization_self_hosted_runners")
        }
        _ => false,
    };
    if !allowed {
        return match &ctx.who.principal {
            Principal::User { user } if st.is_org_member(*user, oi) => Reply::error(
                StatusCode::FORBIDDEN,
                "You must be an org admin to access this resource.",
                DOCS,
            ),
            Principal::User { .. } => Reply::not_found(),
            _ => Reply::not_integration(),
        };
    }
    let runners = &st.accounts[oi].runners;
    let p = page_of(ctx);
    let body = hub.cached(ctx.key(""), st.generation, || {
        let r = R { st: &st, base: &hub.base };
        json!({"total_count": runners.len(), "runners": slice(runners, &p).iter().map(|x| r.runner(x)).collect::<Vec<_>>()})
    });
    let lp = format!("/organizations/{}/actions/runners", st.accounts[oi].id);
    Reply::ok(body).link(link(hub, ctx, &lp, &p, runners.len()))
}
