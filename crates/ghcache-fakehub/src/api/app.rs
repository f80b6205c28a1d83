//! The GitHub App: `GET /app`, `GET /app/installations`, and minting
//! installation tokens (`POST /app/installations/{id}/access_tokens`).

use http::StatusCode;
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::gates::require_app;
use crate::hub::Hub;
use crate::render::R;
use crate::reply::{DOCS, Reply, json_bytes};
use crate::time::iso;
use crate::world::{Level, MintedToken, State};

pub(super) fn app_get(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    if let Err(r) = require_app(&ctx.who.principal) {
        return r;
    }
    let st = hub.state.read();
    let owner = st.account_idx("acme").unwrap_or(0);
    let v = json!({
        "id": st.app_id,
        "slug": "ghcache-fake-app",
        "node_id": crate::world::node_id("A", st.app_id),
        "owner": R { st: &st, base: &hub.base }.user(owner),
        "name": "ghcache fake app",
        "description": "The App of the fake hub",
        "external_url": hub.base,
        "html_url": format!("{}/apps/ghcache-fake-app", hub.base),
        "created_at": iso(crate::world::WORLD_END - 500 * 86_400),
        "updated_at": iso(crate::world::WORLD_END - 100 * 86_400),
        "permissions": R::perms_json(&st.installations.first().map(|i| i.perms.clone()).unwrap_or_default()),
        "events": ["workflow_run", "check_run"],
        "installations_count": st.installations.len()
    });
    Reply::ok(json_bytes(&v))
}

fn installation_json(hub: &Hub, st: &State, ii: usize) -> Value {
    let inst = &st.installations[ii];
    let a = &st.accounts[inst.account];
    json!({
        "id": inst.id,
        "account": R { st, base: &hub.base }.user(inst.account),
        "repository_selection": "all",
        "access_tokens_url": format!("{}/app/installations/{}/access_tokens", hub.base, inst.id),
        "repositories_url": format!("{}/installation/repositories", hub.base),
        "html_url": format!("{}/organizations/{}/settings/installations/{}", hub.base, a.login, inst.id),
        "app_id": st.app_id,
        "app_slug": "ghcache-fake-app",
        "target_id": a.id,
        "target_type": "Organization",
        "permissions": R::perms_json(&inst.perms),
        "events": ["workflow_run", "check_run"],
        "created_at": iso(crate::world::WORLD_END - 300 * 86_400),
        "updated_at": iso(crate::world::WORLD_END - 30 * 86_400),
        "single_file_name": null,
        "suspended_at": null
    })
}

pub(super) fn app_installations(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    if let Err(r) = require_app(&ctx.who.principal) {
        return r;
    }
    let st = hub.state.read();
    let v: Vec<Value> = (0..st.installations.len())
        .map(|i| installation_json(hub, &st, i))
        .collect();
    Reply::ok(json_bytes(&Value::Array(v)))
}

pub(super) fn mint(hub: &Hub, ctx: &Ctx<'_>, id: &str) -> Reply {
    if let Err(r) = require_app(&ctx.who.principal) {
        return r;
    }
    let body = match ctx.json_body() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = hub.state.write();
    let Some(ii) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.installations.iter().position(|i| i.id == id))
    else {
        return Reply::not_found();
    };
    let inst = st.installations[ii].clone();
    let mut perms = inst.perms.clone();
    if let Some(req) = body.get("permissions").and_then(Value::as_object) {
        let mut p = crate::world::Perms::new();
        for (k, v) in req {
            let Some(level) = v.as_str().and_then(Level::parse) else {
                return Reply::validation("Installation", "permissions", "invalid");
            };
            match inst.perms.get(k) {
                Some(have) if *have >= level => {
                    p.insert(k.clone(), level);
                }
                _ => {
                    return Reply::error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "The permissions requested are not granted to this installation.",
                        DOCS,
                    );
                }
            }
        }
        perms = p;
    }
    let mut repos: Option<Vec<usize>> = None;
    let names = body.get("repositories").and_then(Value::as_array);
    let ids = body.get("repository_ids").and_then(Value::as_array);
    if names.is_some() || ids.is_some() {
        let mut v = Vec::new();
        for n in names.into_iter().flatten() {
            let owner = st.accounts[inst.account].login.clone();
            match n.as_str().and_then(|n| st.repo_idx(&owner, n)) {
                Some(ri) => v.push(ri),
                None => {
                    return Reply::error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "There is at least one repository that does not exist or is not accessible to the parent installation.",
                        DOCS,
                    );
                }
            }
        }
        for n in ids.into_iter().flatten() {
            match n
                .as_u64()
                .and_then(|id| st.repo_by_id(id))
                .filter(|ri| st.repos[*ri].owner == inst.account)
            {
                Some(ri) => v.push(ri),
                None => {
                    return Reply::error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "There is at least one repository that does not exist or is not accessible to the parent installation.",
                        DOCS,
                    );
                }
            }
        }
        repos = Some(v);
    }
    let token = crate::world::gh_token(&mut st.rng, "ghs_");
    let ttl = i64::try_from(hub.cfg.token_ttl.as_secs()).unwrap_or(3600);
    let expires_at = hub.clock.now() + ttl;
    st.minted.insert(
        token.clone(),
        MintedToken {
            inst: ii,
            expires_at,
            perms: perms.clone(),
            repos: repos.clone(),
        },
    );
    let mut v = json!({
        "token": token,
        "expires_at": iso(expires_at),
        "permissions": R::perms_json(&perms),
        "repository_selection": if repos.is_some() { "selected" } else { "all" }
    });
    if let (Some(list), Some(m)) = (&repos, v.as_object_mut()) {
        let r = R {
            st: &st,
            base: &hub.base,
        };
        m.insert(
            "repositories".into(),
            Value::Array(
                list.iter()
                    .map(|ri| r.repo_full(*ri, None, false))
                    .collect(),
            ),
        );
    }
    let mut reply = Reply::json(StatusCode::CREATED, json_bytes(&v));
    reply.cost = 1;
    reply
}
