//! A repository (`/repos/{owner}/{repo}`), its commits, comparisons and
//! contents; and [`RepoRead`], what every handler under a repository gets.

use std::collections::BTreeSet;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{Value, json};

use super::page::list_reply;
use crate::ctx::Ctx;
use crate::hub::Hub;
use crate::render::R;
use crate::reply::{DOCS, Reply};
use crate::world::{Repo, Role, State};

/// A read of one repository, past the visibility and permission gates, with
/// the state lock held.
pub(super) struct RepoRead<'a> {
    pub hub: &'a Hub,
    pub ctx: &'a Ctx<'a>,
    pub st: &'a State,
    pub ri: usize,
    pub repo: &'a Repo,
    pub rd: R<'a>,
    /// The generation cached bodies are keyed on.
    pub g: u64,
}

impl RepoRead<'_> {
    /// The id-based path GitHub's `Link` headers use for a list here.
    pub(super) fn lp(&self, tail: &str) -> String {
        format!("/repositories/{}/{tail}", self.repo.id)
    }
}

pub(super) fn get_repo(q: &RepoRead<'_>, role: Option<Role>) -> Reply {
    let variant = role.map_or("anon", Role::name);
    let body = q
        .hub
        .cached(q.ctx.key(variant), q.g, || q.rd.repo_full(q.ri, role, true));
    Reply::ok(body).modified(q.repo.updated_at.max(q.repo.pushed_at))
}

pub(super) fn list_commits(q: &RepoRead<'_>) -> Reply {
    let (st, ri, repo) = (q.st, q.ri, q.repo);
    let start = match q.ctx.q("sha") {
        Some(s) => st.resolve_ref(ri, s),
        None => st.resolve_ref(ri, &repo.default_branch),
    };
    let Some(c) = start else {
        return Reply::not_found();
    };
    let list = ancestors(repo, c);
    list_reply(q.hub, q.ctx, q.g, &list, &q.lp("commits"), |c| {
        q.rd.commit(ri, *c, false)
    })
}

pub(super) fn get_commit(q: &RepoRead<'_>, r: &str) -> Reply {
    match q.st.resolve_ref(q.ri, r) {
        Some(ci) => {
            let body = q
                .hub
                .cached(q.ctx.key(""), q.g, || q.rd.commit(q.ri, ci, true));
            Reply::ok(body).strong().modified(q.repo.commits[ci].date)
        }
        None => Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("No commit found for SHA: {r}"),
            "https://docs.github.com/rest/commits/commits#get-a-commit",
        ),
    }
}

/// Commit `c` and its first-parent ancestors, newest first.
fn ancestors(repo: &Repo, mut c: usize) -> Vec<usize> {
    let mut v = vec![c];
    while let Some(p) = repo.commits[c].parent {
        v.push(p);
        c = p;
    }
    v
}

pub(super) fn compare(q: &RepoRead<'_>, bh: &str) -> Reply {
    let (hub, ctx, st, ri) = (q.hub, q.ctx, q.st, q.ri);
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
        let rd = &q.rd;
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

pub(super) fn contents(q: &RepoRead<'_>, path: &str) -> Reply {
    let (hub, ctx, st, ri) = (q.hub, q.ctx, q.st, q.ri);
    let repo = &st.repos[ri];
    let git_ref = ctx.q("ref").unwrap_or(&repo.default_branch);
    let Some(ci) = st.resolve_ref(ri, git_ref) else {
        return Reply::error(
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
