//! Routing and the REST handlers. Handlers are synchronous: they take the
//! state lock, answer, and release it; nothing here awaits.

use std::collections::BTreeSet;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::render::R;
use crate::server::{Category, Class, DOCS, Hub, Reply, Who};
use crate::time::iso;
use crate::world::{Analysis, Comment, Issue, Level, MintedToken, Principal, Role, Sarif, State};

/// One request as handlers see it.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub raw_query: Option<&'a str>,
    pub who: &'a Who,
    pub body: &'a [u8],
}

impl Ctx<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn key(&self, variant: &str) -> String {
        format!("{}?{}|{variant}", self.path, self.raw_query.unwrap_or(""))
    }
}

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
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn err(status: StatusCode, msg: &str, doc: &str) -> Reply {
    Reply::error(status, msg, doc)
}

fn requires_auth() -> Reply {
    err(StatusCode::UNAUTHORIZED, "Requires authentication", DOCS)
}

fn not_integration() -> Reply {
    err(
        StatusCode::FORBIDDEN,
        "Resource not accessible by integration",
        DOCS,
    )
}

fn parse_json_body(body: &[u8]) -> Result<Value, Reply> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|_| err(StatusCode::BAD_REQUEST, "Problems parsing JSON", DOCS))
}

fn validation(resource: &str, field: &str, code: &str) -> Reply {
    let v = json!({
        "message": "Validation Failed",
        "errors": [{"resource": resource, "code": code, "field": field}],
        "documentation_url": DOCS,
        "status": "422"
    });
    Reply::json(StatusCode::UNPROCESSABLE_ENTITY, json_bytes(&v))
}

// ------------------------------------------------------------ access

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    Admin,
}

fn integration_repos(st: &State, p: &Principal, ri: usize) -> bool {
    match p {
        Principal::GithubToken { repo, .. } => *repo == ri,
        Principal::Installation { inst, repos, .. } => {
            st.repos[ri].owner == st.installations[*inst].account
                && repos.as_ref().is_none_or(|r| r.contains(&ri))
        }
        _ => false,
    }
}

fn visible(st: &State, p: &Principal, ri: usize) -> bool {
    let private = st.repos[ri].private;
    match p {
        Principal::Anonymous | Principal::App => !private,
        Principal::User { user } => st.user_role(*user, ri) > Role::None,
        Principal::GithubToken { .. } | Principal::Installation { .. } => {
            !private || integration_repos(st, p, ri)
        }
    }
}

/// Checks `need` on `scope` for a visible repository; returns the viewer's
/// role for the `permissions` object (None for anonymous).
fn check(
    st: &State,
    p: &Principal,
    ri: usize,
    scope: &str,
    need: Need,
) -> Result<Option<Role>, Reply> {
    match p {
        Principal::Anonymous => {
            if need == Need::Read && scope != "administration" {
                Ok(None)
            } else {
                Err(requires_auth())
            }
        }
        Principal::App => Err(not_integration()),
        Principal::User { user } => {
            let role = st.user_role(*user, ri);
            let required = match (scope, need) {
                ("administration", _) | (_, Need::Admin) => Role::Admin,
                ("issues", Need::Write) => Role::Read,
                (_, Need::Write) => Role::Write,
                (_, Need::Read) => Role::Read,
            };
            if role >= required {
                Ok(Some(role))
            } else if required == Role::Admin {
                Err(err(
                    StatusCode::FORBIDDEN,
                    "Must have admin rights to Repository.",
                    DOCS,
                ))
            } else {
                Err(err(
                    StatusCode::FORBIDDEN,
                    "Must have push access to repository.",
                    DOCS,
                ))
            }
        }
        Principal::GithubToken { perms, .. } | Principal::Installation { perms, .. } => {
            let in_set = integration_repos(st, p, ri);
            let have = if in_set {
                perms.get(scope).copied()
            } else {
                None
            };
            let ok = match need {
                Need::Read => {
                    scope == "metadata" || have.is_some() || (!in_set && scope != "administration")
                }
                Need::Write | Need::Admin => have.is_some_and(|l| l >= Level::Write),
            };
            if !ok {
                return Err(not_integration());
            }
            let role = if in_set && perms.get("contents").is_some_and(|l| *l >= Level::Write) {
                Role::Write
            } else {
                Role::Read
            };
            Ok(Some(role))
        }
    }
}

fn viewer_role(st: &State, p: &Principal, ri: usize) -> Option<Role> {
    check(st, p, ri, "metadata", Need::Read).ok().flatten()
}

// ------------------------------------------------------------ pagination

struct Page {
    per_page: usize,
    page: usize,
}

fn page_of(ctx: &Ctx<'_>) -> Page {
    let per_page = ctx
        .q("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(30, |n| n.clamp(1, 100));
    let page = ctx
        .q("page")
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(1, |n| n.max(1));
    Page { per_page, page }
}

fn slice<'t, T>(items: &'t [T], p: &Page) -> &'t [T] {
    let start = (p.page - 1).saturating_mul(p.per_page).min(items.len());
    let end = start.saturating_add(p.per_page).min(items.len());
    &items[start..end]
}

/// GitHub's `Link` header: prev, next, last, first (those that apply),
/// absolute URLs, other query parameters kept.
/// One page of `items` as a JSON array (cached per generation), with the
/// `Link` header GitHub sends for it.
fn list_reply<T>(
    hub: &Hub,
    ctx: &Ctx<'_>,
    generation: u64,
    items: &[T],
    link_path: &str,
    render: impl Fn(&T) -> Value,
) -> Reply {
    let pg = page_of(ctx);
    let body = hub.cached(ctx.key(""), generation, || {
        Value::Array(slice(items, &pg).iter().map(&render).collect())
    });
    Reply::ok(body).link(link(hub, ctx, link_path, &pg, items.len()))
}

fn link(hub: &Hub, ctx: &Ctx<'_>, link_path: &str, p: &Page, total: usize) -> Option<String> {
    let last = total.div_ceil(p.per_page).max(1);
    let others: Vec<(String, String)> = ctx
        .query
        .iter()
        .filter(|(k, _)| k != "page")
        .cloned()
        .collect();
    let url = |page: usize| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &others {
            ser.append_pair(k, v);
        }
        ser.append_pair("page", &page.to_string());
        format!("<{}{}?{}>", hub.base, link_path, ser.finish())
    };
    let mut parts = Vec::new();
    if p.page > 1 {
        parts.push(format!("{}; rel=\"prev\"", url(p.page - 1)));
    }
    if p.page < last {
        parts.push(format!("{}; rel=\"next\"", url(p.page + 1)));
        parts.push(format!("{}; rel=\"last\"", url(last)));
    }
    if p.page > 1 {
        parts.push(format!("{}; rel=\"first\"", url(1)));
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(", "))
    }
}

// ------------------------------------------------------------ dispatch

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
    if matches!(ctx.who.principal, Principal::App)
        && s.first() != Some(&"app")
        && s.first() != Some(&"rate_limit")
    {
        return not_integration();
    }
    match (ctx.method.as_str(), s.as_slice()) {
        ("GET", ["rate_limit"]) => rate_limit(hub, ctx),
        ("GET", ["user"]) => get_user(hub, ctx),
        ("GET", ["user", "repos"]) => user_repos(hub, ctx),
        ("GET", ["users", u]) => get_users(hub, ctx, u),
        ("GET", ["orgs", o]) => get_org(hub, ctx, o),
        ("GET", ["orgs", o, "repos"]) => org_repos(hub, ctx, o),
        ("GET", ["orgs", o, "actions", "runners"]) => org_runners(hub, ctx, o),
        ("POST", ["graphql"]) => crate::graphql::handle(hub, ctx),
        ("GET", ["app"]) => app_get(hub, ctx),
        ("GET", ["app", "installations"]) => app_installations(hub, ctx),
        ("POST", ["app", "installations", id, "access_tokens"]) => mint(hub, ctx, id),
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

fn get_user(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    match &ctx.who.principal {
        Principal::Anonymous => requires_auth(),
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
        _ => not_integration(),
    }
}

fn get_users(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
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

fn get_org(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
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

fn user_repos(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    let user = match &ctx.who.principal {
        Principal::Anonymous => return requires_auth(),
        Principal::User { user } => *user,
        _ => return not_integration(),
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

fn org_repos(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
    let st = hub.state.read();
    let Some(oi) = st.account_idx(login).filter(|a| st.accounts[*a].is_org) else {
        return Reply::not_found();
    };
    let ty = ctx.q("type").unwrap_or("all");
    let list: Vec<usize> = (0..st.repos.len())
        .filter(|ri| st.repos[*ri].owner == oi && visible(&st, &ctx.who.principal, *ri))
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

fn org_runners(hub: &Hub, ctx: &Ctx<'_>, login: &str) -> Reply {
    let st = hub.state.read();
    let Some(oi) = st.account_idx(login).filter(|a| st.accounts[*a].is_org) else {
        return Reply::not_found();
    };
    let allowed = match &ctx.who.principal {
        Principal::Anonymous => return requires_auth(),
        Principal::User { user } => st.is_org_owner(*user, oi),
        Principal::Installation { inst, perms, .. } => {
            st.installations[*inst].account == oi
                && perms.contains_key("organization_self_hosted_runners")
        }
        _ => false,
    };
    if !allowed {
        return match &ctx.who.principal {
            Principal::User { user } if st.is_org_member(*user, oi) => err(
                StatusCode::FORBIDDEN,
                "You must be an org admin to access this resource.",
                DOCS,
            ),
            Principal::User { .. } => Reply::not_found(),
            _ => not_integration(),
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

// ------------------------------------------------------------ app

fn jwt_required() -> Reply {
    err(
        StatusCode::UNAUTHORIZED,
        "A JSON web token could not be decoded",
        DOCS,
    )
}

fn app_get(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    if !matches!(ctx.who.principal, Principal::App) {
        return jwt_required();
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

fn app_installations(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    if !matches!(ctx.who.principal, Principal::App) {
        return jwt_required();
    }
    let st = hub.state.read();
    let v: Vec<Value> = (0..st.installations.len())
        .map(|i| installation_json(hub, &st, i))
        .collect();
    Reply::ok(json_bytes(&Value::Array(v)))
}

fn mint(hub: &Hub, ctx: &Ctx<'_>, id: &str) -> Reply {
    if !matches!(ctx.who.principal, Principal::App) {
        return jwt_required();
    }
    let body = match parse_json_body(ctx.body) {
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
                return validation("Installation", "permissions", "invalid");
            };
            match inst.perms.get(k) {
                Some(have) if *have >= level => {
                    p.insert(k.clone(), level);
                }
                _ => {
                    return err(
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
                    return err(
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
                    return err(
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

// ------------------------------------------------------------ repository

fn repo_scoped(hub: &Hub, ctx: &Ctx<'_>, owner: &str, name: &str, rest: &[&str]) -> Reply {
    let st = hub.state.read();
    let Some(ri) = st.repo_idx(owner, name) else {
        return Reply::not_found();
    };
    if !visible(&st, &ctx.who.principal, ri) {
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
        if let Err(r) = check(&st, p, ri, scope, need) {
            return r;
        }
        drop(st);
        return match (m, rest) {
            ("POST", ["issues"]) => create_issue(hub, ctx, ri),
            ("POST", ["issues", n, "comments"]) => create_comment(hub, ctx, ri, n),
            ("POST", ["actions", "runs", id, "cancel"]) => cancel_run(hub, ri, id),
            ("POST", ["actions", "runners", "registration-token"]) => registration_token(hub),
            ("DELETE", ["actions", "runners", id]) => delete_runner(hub, ri, id),
            ("POST", ["code-scanning", "sarifs"]) => upload_sarif(hub, ctx, ri),
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
    let role = match check(&st, p, ri, scope, need) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let rd = R {
        st: &st,
        base: &hub.base,
    };
    let repo = &st.repos[ri];
    let g = st.generation;
    let lp = |tail: &str| format!("/repositories/{}/{tail}", repo.id);
    match rest {
        [] => {
            let variant = role.map_or("anon", Role::name);
            let body = hub.cached(ctx.key(variant), g, || rd.repo_full(ri, role, true));
            Reply::ok(body).modified(repo.updated_at.max(repo.pushed_at))
        }
        ["pulls"] => {
            let state = ctx.q("state").unwrap_or("open");
            let head = ctx
                .q("head")
                .map(|h| h.rsplit(':').next().unwrap_or(h).to_string());
            let base = ctx.q("base");
            let mut list: Vec<&Issue> = repo
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
            list_reply(hub, ctx, g, &list, &lp("pulls"), |i| rd.pull(ri, i, false))
        }
        ["pulls", n] => match find_issue(repo, n).filter(|i| i.pull.is_some()) {
            Some(i) => {
                let body = hub.cached(ctx.key(""), g, || rd.pull(ri, i, true));
                Reply::ok(body).modified(i.updated_at)
            }
            None => Reply::not_found(),
        },
        ["issues"] => {
            let state = ctx.q("state").unwrap_or("open");
            let labels: Vec<&str> = ctx
                .q("labels")
                .map(|l| l.split(',').collect())
                .unwrap_or_default();
            let creator = ctx.q("creator");
            let mut list: Vec<&Issue> = repo
                .issues
                .iter()
                .filter(|i| state_ok(state, i.open))
                .filter(|i| {
                    labels
                        .iter()
                        .all(|l| i.labels.iter().any(|(_, n, _)| n == l))
                })
                .filter(|i| {
                    creator.is_none_or(|c| st.accounts[i.user].login.eq_ignore_ascii_case(c))
                })
                .collect();
            sort_issues(ctx, &mut list);
            list_reply(hub, ctx, g, &list, &lp("issues"), |i| rd.issue(ri, i))
        }
        ["issues", n] => match find_issue(repo, n) {
            Some(i) => {
                let body = hub.cached(ctx.key(""), g, || rd.issue(ri, i));
                Reply::ok(body).modified(i.updated_at)
            }
            None => Reply::not_found(),
        },
        ["issues", n, "comments"] => match find_issue(repo, n) {
            Some(i) => {
                let list: Vec<&Comment> = repo
                    .comments
                    .iter()
                    .filter(|c| c.issue_number == i.number)
                    .collect();
                list_reply(
                    hub,
                    ctx,
                    g,
                    &list,
                    &lp(&format!("issues/{}/comments", i.number)),
                    |c| rd.comment(ri, c),
                )
            }
            None => Reply::not_found(),
        },
        ["commits"] => {
            let start = match ctx.q("sha") {
                Some(s) => st.resolve_ref(ri, s),
                None => st.resolve_ref(ri, &repo.default_branch),
            };
            let Some(mut c) = start else {
                return Reply::not_found();
            };
            let mut list = vec![c];
            while let Some(p) = repo.commits[c].parent {
                list.push(p);
                c = p;
            }
            list_reply(hub, ctx, g, &list, &lp("commits"), |c| {
                rd.commit(ri, *c, false)
            })
        }
        ["commits", r] => match st.resolve_ref(ri, r) {
            Some(ci) => {
                let body = hub.cached(ctx.key(""), g, || rd.commit(ri, ci, true));
                Reply::ok(body).strong().modified(repo.commits[ci].date)
            }
            None => err(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("No commit found for SHA: {r}"),
                "https://docs.github.com/rest/commits/commits#get-a-commit",
            ),
        },
        ["compare", bh] => compare(hub, ctx, &st, ri, bh),
        ["contents"] => contents(hub, ctx, &st, ri, ""),
        ["contents", path @ ..] => contents(hub, ctx, &st, ri, &path.join("/")),
        ["actions", "runs"] => {
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
            let body = hub.cached(ctx.key(""), g, || {
                json!({
                    "total_count": list.len(),
                    "workflow_runs": slice(&list, &pg).iter().map(|k| rd.run(ri, &repo.runs[*k])).collect::<Vec<_>>()
                })
            });
            Reply::ok(body).link(link(hub, ctx, &lp("actions/runs"), &pg, list.len()))
        }
        ["actions", "runs", id] => match find_run(repo, id) {
            Some(run) => {
                let body = hub.cached(ctx.key(""), g, || rd.run(ri, run));
                Reply::ok(body).modified(run.updated_at)
            }
            None => Reply::not_found(),
        },
        ["actions", "runs", id, "jobs"] => match find_run(repo, id) {
            Some(run) => {
                let pg = page_of(ctx);
                let body = hub.cached(ctx.key(""), g, || {
                    json!({
                        "total_count": run.jobs.len(),
                        "jobs": slice(&run.jobs, &pg).iter().map(|j| rd.job(ri, run, j)).collect::<Vec<_>>()
                    })
                });
                Reply::ok(body).link(link(
                    hub,
                    ctx,
                    &lp(&format!("actions/runs/{}/jobs", run.id)),
                    &pg,
                    run.jobs.len(),
                ))
            }
            None => Reply::not_found(),
        },
        ["actions", "runners"] => {
            let pg = page_of(ctx);
            let body = hub.cached(ctx.key(""), g, || {
                json!({
                    "total_count": repo.runners.len(),
                    "runners": slice(&repo.runners, &pg).iter().map(|x| rd.runner(x)).collect::<Vec<_>>()
                })
            });
            Reply::ok(body).link(link(
                hub,
                ctx,
                &lp("actions/runners"),
                &pg,
                repo.runners.len(),
            ))
        }
        ["code-scanning", "analyses"] => {
            let git_ref = ctx.q("ref").map(|r| {
                if r.starts_with("refs/") {
                    r.to_string()
                } else {
                    format!("refs/heads/{r}")
                }
            });
            let tool = ctx.q("tool_name");
            let sarif = ctx.q("sarif_id");
            let mut list: Vec<&Analysis> = repo
                .analyses
                .iter()
                .filter(|a| git_ref.as_deref().is_none_or(|r| a.git_ref == r))
                .filter(|a| tool.is_none_or(|t| a.tool_name == t))
                .filter(|a| sarif.is_none_or(|s| a.sarif_id == s))
                .collect();
            if ctx.q("direction") != Some("asc") {
                list.reverse();
            }
            list_reply(hub, ctx, g, &list, &lp("code-scanning/analyses"), |a| {
                rd.analysis(ri, a)
            })
        }
        ["code-scanning", "sarifs", id] => match repo.sarifs.iter().find(|s| s.id == *id) {
            Some(s) => {
                let v = json!({
                    "processing_status": "complete",
                    "analyses_url": format!("{}/repos/{}/code-scanning/analyses?sarif_id={}", hub.base, st.full_name(ri), s.id),
                    "errors": null
                });
                Reply::ok(json_bytes(&v))
            }
            None => Reply::not_found(),
        },
        _ => Reply::not_found(),
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

fn find_issue<'s>(repo: &'s crate::world::Repo, n: &str) -> Option<&'s Issue> {
    let n: u64 = n.parse().ok()?;
    repo.issues.iter().find(|i| i.number == n)
}

fn find_run<'s>(repo: &'s crate::world::Repo, id: &str) -> Option<&'s crate::world::Run> {
    let id: u64 = id.parse().ok()?;
    repo.runs.iter().find(|r| r.id == id)
}

fn ancestors(repo: &crate::world::Repo, mut c: usize) -> Vec<usize> {
    let mut v = vec![c];
    while let Some(p) = repo.commits[c].parent {
        v.push(p);
        c = p;
    }
    v
}

fn compare(hub: &Hub, ctx: &Ctx<'_>, st: &State, ri: usize, bh: &str) -> Reply {
    let (b, h) = match bh.split_once("...").or_else(|| bh.split_once("..")) {
        Some(x) => x,
        None => return Reply::not_found(),
    };
    let (Some(bc), Some(hc)) = (st.resolve_ref(ri, b), st.resolve_ref(ri, h)) else {
        return Reply::not_found();
    };
    let repo = &st.repos[ri];
    let base_anc = ancestors(repo, bc);
    let head_anc = ancestors(repo, hc);
    let base_set: BTreeSet<usize> = base_anc.iter().copied().collect();
    let Some(mb) = head_anc.iter().copied().find(|c| base_set.contains(c)) else {
        return Reply::not_found();
    };
    let ahead: Vec<usize> = head_anc.iter().copied().take_while(|c| *c != mb).collect();
    let behind = base_anc.iter().take_while(|c| **c != mb).count();
    let status = match (ahead.len(), behind) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let body = hub.cached(ctx.key(""), st.generation, || {
        let rd = R { st, base: &hub.base };
        let full = st.full_name(ri);
        let mut files = Vec::new();
        for c in ahead.iter().rev() {
            files.extend(rd.files_of(ri, &repo.commits[*c]));
        }
        json!({
            "url": format!("{}/repos/{full}/compare/{b}...{h}", hub.base),
            "html_url": format!("{}/{full}/compare/{b}...{h}", hub.base),
            "permalink_url": format!("{}/{full}/compare/{}...{}", hub.base, repo.commits[bc].sha, repo.commits[hc].sha),
            "diff_url": format!("{}/{full}/compare/{b}...{h}.diff", hub.base),
            "patch_url": format!("{}/{full}/compare/{b}...{h}.patch", hub.base),
            "base_commit": rd.commit(ri, bc, false),
            "merge_base_commit": rd.commit(ri, mb, false),
            "status": status,
            "ahead_by": ahead.len(),
            "behind_by": behind,
            "total_commits": ahead.len(),
            "commits": ahead.iter().rev().take(250).map(|c| rd.commit(ri, *c, false)).collect::<Vec<_>>(),
            "files": files
        })
    });
    Reply::ok(body).strong()
}

fn contents(hub: &Hub, ctx: &Ctx<'_>, st: &State, ri: usize, path: &str) -> Reply {
    let repo = &st.repos[ri];
    let git_ref = ctx.q("ref").unwrap_or(&repo.default_branch);
    let Some(ci) = st.resolve_ref(ri, git_ref) else {
        return err(
            StatusCode::NOT_FOUND,
            &format!("No commit found for the ref {git_ref}"),
            DOCS,
        );
    };
    let path = path.trim_matches('/');
    let full = st.full_name(ri);
    let b = &hub.base;
    let sha = &repo.commits[ci].sha;
    let entry = |p: &str, ty: &str, size: usize, bsha: &str| {
        let name = p.rsplit('/').next().unwrap_or(p);
        let u = format!("{b}/repos/{full}/contents/{p}?ref={git_ref}");
        let git = format!(
            "{b}/repos/{full}/git/{}/{bsha}",
            if ty == "dir" { "trees" } else { "blobs" }
        );
        let html = format!(
            "{b}/{full}/{}/{git_ref}/{p}",
            if ty == "dir" { "tree" } else { "blob" }
        );
        let dl = if ty == "file" {
            json!(format!("{b}/{full}/raw/{sha}/{p}"))
        } else {
            Value::Null
        };
        json!({"name": name, "path": p, "sha": bsha, "size": size, "url": u, "html_url": html,
               "git_url": git, "download_url": dl, "type": ty,
               "_links": {"self": u, "git": git, "html": html}})
    };
    if let Some(f) = repo.files.iter().find(|f| f.path == path) {
        let body = hub.cached(ctx.key(""), st.generation, || {
            let mut v = entry(&f.path, "file", f.content.len(), &f.sha);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&f.content);
            let wrapped: Vec<String> = b64
                .as_bytes()
                .chunks(60)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            if let Some(m) = v.as_object_mut() {
                m.insert("content".into(), json!(format!("{}\n", wrapped.join("\n"))));
                m.insert("encoding".into(), json!("base64"));
            }
            v
        });
        return Reply::ok(body).strong().modified(repo.pushed_at);
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut seen = BTreeSet::new();
    let mut items = Vec::new();
    for f in repo.files.iter().filter(|f| f.path.starts_with(&prefix)) {
        let rest = &f.path[prefix.len()..];
        match rest.split_once('/') {
            Some((dir, _)) => {
                if seen.insert(dir.to_string()) {
                    let p = format!("{prefix}{dir}");
                    items.push(entry(
                        &p,
                        "dir",
                        0,
                        &crate::world::node_id("T", p.len() as u64)[..],
                    ));
                }
            }
            None => items.push(entry(&f.path, "file", f.content.len(), &f.sha)),
        }
    }
    if items.is_empty() {
        return Reply::not_found();
    }
    let body = hub.cached(ctx.key(""), st.generation, || Value::Array(items));
    Reply::ok(body).strong().modified(repo.pushed_at)
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

fn create_issue(hub: &Hub, ctx: &Ctx<'_>, ri: usize) -> Reply {
    let v = match parse_json_body(ctx.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.is_object() {
        return err(StatusCode::BAD_REQUEST, "Problems parsing JSON", DOCS);
    }
    let Some(title) = v.get("title").and_then(|t| {
        t.as_str()
            .map(str::to_string)
            .or_else(|| t.as_u64().map(|n| n.to_string()))
    }) else {
        return validation("Issue", "title", "missing_field");
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

fn create_comment(hub: &Hub, ctx: &Ctx<'_>, ri: usize, n: &str) -> Reply {
    let v = match parse_json_body(ctx.body) {
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
        return validation("IssueComment", "body", "missing_field");
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

fn cancel_run(hub: &Hub, ri: usize, id: &str) -> Reply {
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
        return err(
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

fn registration_token(hub: &Hub) -> Reply {
    let mut st = hub.state.write();
    let tok: String = crate::world::hex_id(&mut st.rng, 29).to_ascii_uppercase();
    let v = json!({"token": format!("A{tok}"), "expires_at": iso(hub.clock.now() + 3600)});
    Reply::json(StatusCode::CREATED, json_bytes(&v))
}

fn delete_runner(hub: &Hub, ri: usize, id: &str) -> Reply {
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

fn upload_sarif(hub: &Hub, ctx: &Ctx<'_>, ri: usize) -> Reply {
    let v = match parse_json_body(ctx.body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let commit_sha = v.get("commit_sha").and_then(Value::as_str).unwrap_or("");
    if commit_sha.len() != 40 || !commit_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return validation(
            "SarifUpload",
            "commit_sha",
            if commit_sha.is_empty() {
                "missing_field"
            } else {
                "invalid"
            },
        );
    }
    let git_ref = v.get("ref").and_then(Value::as_str).unwrap_or("");
    if !(git_ref.starts_with("refs/heads/")
        || git_ref.starts_with("refs/pull/")
        || git_ref.starts_with("refs/tags/"))
    {
        return validation(
            "SarifUpload",
            "ref",
            if git_ref.is_empty() {
                "missing_field"
            } else {
                "invalid"
            },
        );
    }
    let Some(sarif_b64) = v.get("sarif").and_then(Value::as_str) else {
        return validation("SarifUpload", "sarif", "missing_field");
    };
    let Ok(gz) = base64::engine::general_purpose::STANDARD.decode(sarif_b64.trim()) else {
        return validation("SarifUpload", "sarif", "invalid");
    };
    let mut raw = Vec::new();
    if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).is_err() {
        return validation("SarifUpload", "sarif", "invalid");
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&raw) else {
        return validation("SarifUpload", "sarif", "invalid");
    };
    let Some(runs) = doc.get("runs").and_then(Value::as_array) else {
        return validation("SarifUpload", "sarif", "invalid");
    };
    let now = hub.clock.now();
    let mut st = hub.state.write();
    let sarif_id = crate::world::uuid_from(&mut st.rng);
    let mut ids = Vec::new();
    let mut new = Vec::new();
    for run in runs {
        let driver = run.pointer("/tool/driver");
        let tool_name = driver
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("CodeQL")
            .to_string();
        let tool_version = driver
            .and_then(|d| d.get("semanticVersion").or_else(|| d.get("version")))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let category = run
            .pointer("/automationDetails/id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let results = run
            .get("results")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as u64;
        let rules = driver
            .and_then(|d| d.get("rules"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as u64;
        let id = st.fresh_id() % 1_000_000_000;
        ids.push(id);
        new.push(Analysis {
            id,
            git_ref: git_ref.to_string(),
            commit_sha: commit_sha.to_ascii_lowercase(),
            analysis_key: "sarif-upload".to_string(),
            environment: "{}".to_string(),
            category,
            created_at: now,
            results_count: results,
            rules_count: rules,
            tool_name,
            tool_version,
            sarif_id: sarif_id.clone(),
        });
    }
    let repo = &mut st.repos[ri];
    repo.analyses.extend(new);
    repo.sarifs.push(Sarif {
        id: sarif_id.clone(),
        analyses: ids,
    });
    st.generation += 1;
    let body = json!({
        "id": sarif_id,
        "url": format!("{}/repos/{}/code-scanning/sarifs/{sarif_id}", hub.base, st.full_name(ri))
    });
    Reply::json(StatusCode::ACCEPTED, json_bytes(&body))
}

/// `POST /_fakehub/bump`: a new version of the resource at `path`.
pub(crate) fn bump(hub: &Hub, path: &str) -> bool {
    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let now = hub.clock.now();
    let mut st = hub.state.write();
    let found = match segs.as_slice() {
        ["users", u] | ["orgs", u] => match st.account_idx(u) {
            Some(a) => {
                st.accounts[a].updated_at = now;
                true
            }
            None => false,
        },
        ["repos", o, r, rest @ ..] => match st.repo_idx(o, r) {
            Some(ri) => {
                let repo = &mut st.repos[ri];
                match rest {
                    ["issues", n] | ["pulls", n] => match n
                        .parse::<u64>()
                        .ok()
                        .and_then(|n| repo.issues.iter_mut().find(|i| i.number == n))
                    {
                        Some(i) => {
                            i.updated_at = now;
                            true
                        }
                        None => false,
                    },
                    ["actions", "runs", id] => match id
                        .parse::<u64>()
                        .ok()
                        .and_then(|id| repo.runs.iter_mut().find(|r| r.id == id))
                    {
                        Some(r) => {
                            r.updated_at = now;
                            true
                        }
                        None => false,
                    },
                    ["actions", "runs"] => match repo.runs.last_mut() {
                        Some(r) => {
                            r.updated_at = now;
                            true
                        }
                        None => false,
                    },
                    ["issues"] | ["pulls"] => {
                        let pulls = rest == ["pulls"];
                        match repo
                            .issues
                            .iter_mut()
                            .rev()
                            .find(|i| !pulls || i.pull.is_some())
                        {
                            Some(i) => {
                                i.updated_at = now;
                                true
                            }
                            None => false,
                        }
                    }
                    _ => {
                        repo.updated_at = now;
                        true
                    }
                }
            }
            None => false,
        },
        _ => false,
    };
    if found {
        st.generation += 1;
    }
    found
}
