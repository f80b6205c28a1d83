//! GitHub-shaped JSON for every object of the world.

use serde_json::{Value, json};

use crate::time::iso;
use crate::world::{
    Account, Analysis, Comment, Commit, Issue, Job, Perms, Role, Run, Runner, State,
};

/// Renders objects of one state against one base URL.
pub(crate) struct R<'a> {
    pub st: &'a State,
    pub base: &'a str,
}

fn opt_iso(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(iso(t)))
}

impl R<'_> {
    pub fn user(&self, idx: usize) -> Value {
        let a = &self.st.accounts[idx];
        let b = self.base;
        let l = &a.login;
        json!({
            "login": l,
            "id": a.id,
            "node_id": a.node_id,
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", a.id),
            "gravatar_id": "",
            "url": format!("{b}/users/{l}"),
            "html_url": format!("{b}/{l}"),
            "followers_url": format!("{b}/users/{l}/followers"),
            "following_url": format!("{b}/users/{l}/following{{/other_user}}"),
            "gists_url": format!("{b}/users/{l}/gists{{/gist_id}}"),
            "starred_url": format!("{b}/users/{l}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{b}/users/{l}/subscriptions"),
            "organizations_url": format!("{b}/users/{l}/orgs"),
            "repos_url": format!("{b}/users/{l}/repos"),
            "events_url": format!("{b}/users/{l}/events{{/privacy}}"),
            "received_events_url": format!("{b}/users/{l}/received_events"),
            "type": if a.is_org { "Organization" } else if a.login.ends_with("[bot]") { "Bot" } else { "User" },
            "user_view_type": "public",
            "site_admin": false
        })
    }

    fn public_repos(&self, idx: usize) -> usize {
        self.st
            .repos
            .iter()
            .filter(|r| r.owner == idx && !r.private)
            .count()
    }

    /// `GET /users/{u}` (public profile).
    pub fn user_full(&self, idx: usize) -> Value {
        let a: &Account = &self.st.accounts[idx];
        let mut v = self.user(idx);
        if let Some(m) = v.as_object_mut() {
            m.insert("name".into(), json!(a.name));
            m.insert("company".into(), json!(a.company));
            m.insert("blog".into(), json!(a.blog));
            m.insert("location".into(), json!(a.location));
            m.insert("email".into(), Value::Null);
            m.insert("hireable".into(), Value::Null);
            m.insert("bio".into(), json!(a.bio));
            m.insert("twitter_username".into(), Value::Null);
            m.insert("public_repos".into(), json!(self.public_repos(idx)));
            m.insert("public_gists".into(), json!(a.following % 7));
            m.insert("followers".into(), json!(a.followers));
            m.insert("following".into(), json!(a.following));
            m.insert("created_at".into(), json!(iso(a.created_at)));
            m.insert("updated_at".into(), json!(iso(a.updated_at)));
        }
        v
    }

    /// `GET /user` (private profile of the viewer).
    pub fn user_private(&self, idx: usize) -> Value {
        let mut v = self.user_full(idx);
        let owned_private = self
            .st
            .repos
            .iter()
            .filter(|r| r.owner == idx && r.private)
            .count();
        if let Some(m) = v.as_object_mut() {
            m.insert("private_gists".into(), json!(1));
            m.insert("total_private_repos".into(), json!(owned_private));
            m.insert("owned_private_repos".into(), json!(owned_private));
            m.insert(
                "disk_usage".into(),
                json!(self.st.accounts[idx].followers * 37),
            );
            m.insert("collaborators".into(), json!(1));
            m.insert("two_factor_authentication".into(), json!(true));
            m.insert(
                "plan".into(),
                json!({"name": "pro", "space": 976562499, "collaborators": 0, "private_repos": 9999}),
            );
        }
        v
    }

    /// `GET /orgs/{org}`.
    pub fn org(&self, idx: usize) -> Value {
        let a = &self.st.accounts[idx];
        let b = self.base;
        let l = &a.login;
        json!({
            "login": l,
            "id": a.id,
            "node_id": a.node_id,
            "url": format!("{b}/orgs/{l}"),
            "repos_url": format!("{b}/orgs/{l}/repos"),
            "events_url": format!("{b}/orgs/{l}/events"),
            "hooks_url": format!("{b}/orgs/{l}/hooks"),
            "issues_url": format!("{b}/orgs/{l}/issues"),
            "members_url": format!("{b}/orgs/{l}/members{{/member}}"),
            "public_members_url": format!("{b}/orgs/{l}/public_members{{/member}}"),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", a.id),
            "description": format!("{} on the fake hub", a.name),
            "name": a.name,
            "company": null,
            "blog": a.blog,
            "location": a.location,
            "email": null,
            "twitter_username": null,
            "is_verified": false,
            "has_organization_projects": true,
            "has_repository_projects": true,
            "public_repos": self.public_repos(idx),
            "public_gists": 0,
            "followers": a.followers,
            "following": 0,
            "html_url": format!("{b}/{l}"),
            "created_at": iso(a.created_at),
            "updated_at": iso(a.updated_at),
            "archived_at": null,
            "type": "Organization"
        })
    }

    /// The "minimal repository" shape (embedded in workflow runs etc.).
    pub fn repo_min(&self, ri: usize) -> Value {
        let r = &self.st.repos[ri];
        let full = self.st.full_name(ri);
        let b = self.base;
        let u = format!("{b}/repos/{full}");
        json!({
            "id": r.id,
            "node_id": r.node_id,
            "name": r.name,
            "full_name": full,
            "private": r.private,
            "owner": self.user(r.owner),
            "html_url": format!("{b}/{full}"),
            "description": r.description,
            "fork": false,
            "url": u,
            "forks_url": format!("{u}/forks"),
            "keys_url": format!("{u}/keys{{/key_id}}"),
            "collaborators_url": format!("{u}/collaborators{{/collaborator}}"),
            "teams_url": format!("{u}/teams"),
            "hooks_url": format!("{u}/hooks"),
            "issue_events_url": format!("{u}/issues/events{{/number}}"),
            "events_url": format!("{u}/events"),
            "assignees_url": format!("{u}/assignees{{/user}}"),
            "branches_url": format!("{u}/branches{{/branch}}"),
            "tags_url": format!("{u}/tags"),
            "blobs_url": format!("{u}/git/blobs{{/sha}}"),
            "git_tags_url": format!("{u}/git/tags{{/sha}}"),
            "git_refs_url": format!("{u}/git/refs{{/sha}}"),
            "trees_url": format!("{u}/git/trees{{/sha}}"),
            "statuses_url": format!("{u}/statuses/{{sha}}"),
            "languages_url": format!("{u}/languages"),
            "stargazers_url": format!("{u}/stargazers"),
            "contributors_url": format!("{u}/contributors"),
            "subscribers_url": format!("{u}/subscribers"),
            "subscription_url": format!("{u}/subscription"),
            "commits_url": format!("{u}/commits{{/sha}}"),
            "git_commits_url": format!("{u}/git/commits{{/sha}}"),
            "comments_url": format!("{u}/comments{{/number}}"),
            "issue_comment_url": format!("{u}/issues/comments{{/number}}"),
            "contents_url": format!("{u}/contents/{{+path}}"),
            "compare_url": format!("{u}/compare/{{base}}...{{head}}"),
            "merges_url": format!("{u}/merges"),
            "archive_url": format!("{u}/{{archive_format}}{{/ref}}"),
            "downloads_url": format!("{u}/downloads"),
            "issues_url": format!("{u}/issues{{/number}}"),
            "pulls_url": format!("{u}/pulls{{/number}}"),
            "milestones_url": format!("{u}/milestones{{/number}}"),
            "notifications_url": format!("{u}/notifications{{?since,all,participating}}"),
            "labels_url": format!("{u}/labels{{/name}}"),
            "releases_url": format!("{u}/releases{{/id}}"),
            "deployments_url": format!("{u}/deployments")
        })
    }

    /// The full repository shape; `role` adds the viewer's `permissions`.
    pub fn repo_full(&self, ri: usize, role: Option<Role>, detail: bool) -> Value {
        let r = &self.st.repos[ri];
        let full = self.st.full_name(ri);
        let b = self.base;
        let mut v = self.repo_min(ri);
        let open = r.open_issues();
        if let Some(m) = v.as_object_mut() {
            let mut add = |k: &str, val: Value| {
                m.insert(k.to_string(), val);
            };
            add("created_at", json!(iso(r.created_at)));
            add("updated_at", json!(iso(r.updated_at)));
            add("pushed_at", json!(iso(r.pushed_at)));
            add("git_url", json!(format!("git://{}/{full}.git", host_of(b))));
            add("ssh_url", json!(format!("git@{}:{full}.git", host_of(b))));
            add("clone_url", json!(format!("{b}/{full}.git")));
            add("svn_url", json!(format!("{b}/{full}")));
            add("homepage", json!(""));
            add("size", json!(r.size));
            add("stargazers_count", json!(r.stargazers));
            add("watchers_count", json!(r.stargazers));
            add("language", json!(r.language));
            add("has_issues", json!(true));
            add("has_projects", json!(true));
            add("has_downloads", json!(true));
            add("has_wiki", json!(!r.private));
            add("has_pages", json!(false));
            add("has_discussions", json!(false));
            add("forks_count", json!(r.forks));
            add("mirror_url", Value::Null);
            add("archived", json!(false));
            add("disabled", json!(false));
            add("open_issues_count", json!(open));
            add(
                "license",
                json!({"key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0",
                       "url": format!("{b}/licenses/apache-2.0"), "node_id": "MDc6TGljZW5zZTI="}),
            );
            add("allow_forking", json!(!r.private));
            add("is_template", json!(false));
            add("web_commit_signoff_required", json!(false));
            add("topics", json!(r.topics));
            add(
                "visibility",
                json!(if r.private { "private" } else { "public" }),
            );
            add("forks", json!(r.forks));
            add("open_issues", json!(open));
            add("watchers", json!(r.stargazers));
            add("default_branch", json!(r.default_branch));
            if let Some(role) = role {
                add(
                    "permissions",
                    json!({
                        "admin": role >= Role::Admin,
                        "maintain": role >= Role::Maintain,
                        "push": role >= Role::Write,
                        "triage": role >= Role::Triage,
                        "pull": role >= Role::Read
                    }),
                );
            }
            if detail {
                add(
                    "temp_clone_token",
                    if r.private { json!("") } else { Value::Null },
                );
                add("allow_squash_merge", json!(true));
                add("allow_merge_commit", json!(true));
                add("allow_rebase_merge", json!(true));
                add("allow_auto_merge", json!(false));
                add("delete_branch_on_merge", json!(true));
                add("network_count", json!(r.forks));
                add("subscribers_count", json!(r.stargazers / 10 + 1));
                if self.st.accounts[r.owner].is_org {
                    add("organization", self.user(r.owner));
                }
            }
        }
        v
    }

    pub fn label(&self, ri: usize, l: &(u64, String, String)) -> Value {
        json!({
            "id": l.0,
            "node_id": crate::world::node_id("LA", l.0),
            "url": format!("{}/repos/{}/labels/{}", self.base, self.st.full_name(ri), l.1.replace(' ', "%20")),
            "name": l.1,
            "color": l.2,
            "default": l.1 == "bug" || l.1 == "enhancement",
            "description": null
        })
    }

    fn reactions(&self, url: &str) -> Value {
        json!({"url": format!("{url}/reactions"), "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
               "hooray": 0, "confused": 0, "heart": 0, "rocket": 0, "eyes": 0})
    }

    fn association(&self, ri: usize, user: usize) -> &'static str {
        let r = &self.st.repos[ri];
        if r.owner == user {
            "OWNER"
        } else if self.st.accounts[r.owner].is_org && self.st.is_org_member(user, r.owner) {
            "MEMBER"
        } else if r.collaborators.iter().any(|(u, _)| *u == user) {
            "COLLABORATOR"
        } else {
            "CONTRIBUTOR"
        }
    }

    pub fn issue(&self, ri: usize, i: &Issue) -> Value {
        let full = self.st.full_name(ri);
        let b = self.base;
        let u = format!("{b}/repos/{full}/issues/{}", i.number);
        let mut v = json!({
            "url": u,
            "repository_url": format!("{b}/repos/{full}"),
            "labels_url": format!("{u}/labels{{/name}}"),
            "comments_url": format!("{u}/comments"),
            "events_url": format!("{u}/events"),
            "html_url": format!("{b}/{full}/{}/{}", if i.pull.is_some() { "pull" } else { "issues" }, i.number),
            "id": i.id,
            "node_id": i.node_id,
            "number": i.number,
            "title": i.title,
            "user": self.user(i.user),
            "labels": i.labels.iter().map(|l| self.label(ri, l)).collect::<Vec<_>>(),
            "state": if i.open { "open" } else { "closed" },
            "locked": false,
            "assignee": null,
            "assignees": [],
            "milestone": null,
            "comments": i.comments,
            "created_at": iso(i.created_at),
            "updated_at": iso(i.updated_at),
            "closed_at": opt_iso(i.closed_at),
            "author_association": self.association(ri, i.user),
            "active_lock_reason": null,
            "body": i.body,
            "closed_by": null,
            "reactions": self.reactions(&u),
            "timeline_url": format!("{u}/timeline"),
            "performed_via_github_app": null,
            "state_reason": if i.open { Value::Null } else { json!("completed") }
        });
        if let (Some(p), Some(m)) = (&i.pull, v.as_object_mut()) {
            m.insert("draft".into(), json!(p.draft));
            m.insert(
                "pull_request".into(),
                json!({
                    "url": format!("{b}/repos/{full}/pulls/{}", i.number),
                    "html_url": format!("{b}/{full}/pull/{}", i.number),
                    "diff_url": format!("{b}/{full}/pull/{}.diff", i.number),
                    "patch_url": format!("{b}/{full}/pull/{}.patch", i.number),
                    "merged_at": opt_iso(p.merged_at)
                }),
            );
        }
        v
    }

    /// A pull request; `detail` adds the single-PR fields (mergeable, stats…).
    pub fn pull(&self, ri: usize, i: &Issue, detail: bool) -> Value {
        let Some(p) = &i.pull else {
            return Value::Null;
        };
        let r = &self.st.repos[ri];
        let full = self.st.full_name(ri);
        let b = self.base;
        let u = format!("{b}/repos/{full}/pulls/{}", i.number);
        let owner = &self.st.accounts[r.owner].login;
        let head_sha = &r.commits[p.head_commit].sha;
        let mut v = json!({
            "url": u,
            "id": p.id,
            "node_id": p.node_id,
            "html_url": format!("{b}/{full}/pull/{}", i.number),
            "diff_url": format!("{b}/{full}/pull/{}.diff", i.number),
            "patch_url": format!("{b}/{full}/pull/{}.patch", i.number),
            "issue_url": format!("{b}/repos/{full}/issues/{}", i.number),
            "number": i.number,
            "state": if i.open { "open" } else { "closed" },
            "locked": false,
            "title": i.title,
            "user": self.user(i.user),
            "body": i.body,
            "created_at": iso(i.created_at),
            "updated_at": iso(i.updated_at),
            "closed_at": opt_iso(i.closed_at),
            "merged_at": opt_iso(p.merged_at),
            "merge_commit_sha": p.merged_at.map(|_| r.commits[p.head_commit].tree_sha.clone()),
            "assignee": null,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": i.labels.iter().map(|l| self.label(ri, l)).collect::<Vec<_>>(),
            "milestone": null,
            "draft": p.draft,
            "commits_url": format!("{u}/commits"),
            "review_comments_url": format!("{u}/comments"),
            "review_comment_url": format!("{b}/repos/{full}/pulls/comments{{/number}}"),
            "comments_url": format!("{b}/repos/{full}/issues/{}/comments", i.number),
            "statuses_url": format!("{b}/repos/{full}/statuses/{head_sha}"),
            "head": {
                "label": format!("{owner}:{}", p.head_ref),
                "ref": p.head_ref,
                "sha": head_sha,
                "user": self.user(r.owner),
                "repo": self.repo_full(ri, None, false)
            },
            "base": {
                "label": format!("{owner}:{}", p.base_ref),
                "ref": p.base_ref,
                "sha": r.commits[p.base_commit].sha,
                "user": self.user(r.owner),
                "repo": self.repo_full(ri, None, false)
            },
            "_links": {
                "self": {"href": u},
                "html": {"href": format!("{b}/{full}/pull/{}", i.number)},
                "issue": {"href": format!("{b}/repos/{full}/issues/{}", i.number)},
                "comments": {"href": format!("{b}/repos/{full}/issues/{}/comments", i.number)},
                "review_comments": {"href": format!("{u}/comments")},
                "review_comment": {"href": format!("{b}/repos/{full}/pulls/comments{{/number}}")},
                "commits": {"href": format!("{u}/commits")},
                "statuses": {"href": format!("{b}/repos/{full}/statuses/{head_sha}")}
            },
            "author_association": self.association(ri, i.user),
            "auto_merge": null,
            "active_lock_reason": null
        });
        if let (true, Some(m)) = (detail, v.as_object_mut()) {
            let (adds, dels, files) = r.commits[p.head_commit]
                .files
                .iter()
                .fold((0, 0, 0), |(a, d, f), x| (a + x.2, d + x.3, f + 1));
            m.insert("merged".into(), json!(p.merged_at.is_some()));
            m.insert(
                "mergeable".into(),
                if i.open { json!(true) } else { Value::Null },
            );
            m.insert(
                "rebaseable".into(),
                if i.open { json!(true) } else { Value::Null },
            );
            m.insert(
                "mergeable_state".into(),
                json!(if i.open { "clean" } else { "unknown" }),
            );
            m.insert(
                "merged_by".into(),
                if p.merged_at.is_some() {
                    self.user(r.owner)
                } else {
                    Value::Null
                },
            );
            m.insert("comments".into(), json!(i.comments));
            m.insert("review_comments".into(), json!(0));
            m.insert("maintainer_can_modify".into(), json!(false));
            m.insert("commits".into(), json!(p.commits));
            m.insert("additions".into(), json!(adds));
            m.insert("deletions".into(), json!(dels));
            m.insert("changed_files".into(), json!(files));
        }
        v
    }

    pub fn comment(&self, ri: usize, c: &Comment) -> Value {
        let full = self.st.full_name(ri);
        let b = self.base;
        let u = format!("{b}/repos/{full}/issues/comments/{}", c.id);
        json!({
            "url": u,
            "html_url": format!("{b}/{full}/issues/{}#issuecomment-{}", c.issue_number, c.id),
            "issue_url": format!("{b}/repos/{full}/issues/{}", c.issue_number),
            "id": c.id,
            "node_id": c.node_id,
            "user": self.user(c.user),
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
            "author_association": self.association(ri, c.user),
            "body": c.body,
            "reactions": self.reactions(&u),
            "performed_via_github_app": null
        })
    }

    fn git_person(&self, idx: usize, date: i64) -> Value {
        let a = &self.st.accounts[idx];
        json!({"name": a.name, "email": format!("{}@users.noreply.example.com", a.login), "date": iso(date)})
    }

    /// `GET /repos/{o}/{r}/commits/{ref}`, or a list entry when `!detail`.
    pub fn commit(&self, ri: usize, ci: usize, detail: bool) -> Value {
        let r = &self.st.repos[ri];
        let c: &Commit = &r.commits[ci];
        let full = self.st.full_name(ri);
        let b = self.base;
        let u = format!("{b}/repos/{full}/commits/{}", c.sha);
        let parents: Vec<Value> = c
            .parent
            .iter()
            .map(|p| {
                let s = &r.commits[*p].sha;
                json!({"sha": s, "url": format!("{b}/repos/{full}/commits/{s}"), "html_url": format!("{b}/{full}/commit/{s}")})
            })
            .collect();
        let mut v = json!({
            "sha": c.sha,
            "node_id": crate::world::node_id("C", u64::from_str_radix(&c.sha[..12], 16).unwrap_or(0)),
            "commit": {
                "author": self.git_person(c.author, c.date),
                "committer": self.git_person(c.author, c.date),
                "message": c.message,
                "tree": {"sha": c.tree_sha, "url": format!("{b}/repos/{full}/git/trees/{}", c.tree_sha)},
                "url": format!("{b}/repos/{full}/git/commits/{}", c.sha),
                "comment_count": 0,
                "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null}
            },
            "url": u,
            "html_url": format!("{b}/{full}/commit/{}", c.sha),
            "comments_url": format!("{u}/comments"),
            "author": self.user(c.author),
            "committer": self.user(c.author),
            "parents": parents
        });
        if let (true, Some(m)) = (detail, v.as_object_mut()) {
            let (a, d) = c.files.iter().fold((0, 0), |(a, d), f| (a + f.2, d + f.3));
            m.insert(
                "stats".into(),
                json!({"total": a + d, "additions": a, "deletions": d}),
            );
            m.insert("files".into(), Value::Array(self.files_of(ri, c)));
        }
        v
    }

    pub fn files_of(&self, ri: usize, c: &Commit) -> Vec<Value> {
        let full = self.st.full_name(ri);
        let b = self.base;
        c.files
            .iter()
            .map(|(f, status, a, d)| {
                json!({
                    "sha": crate::world::node_id("B", u64::from(f.len() as u32) + a * 1000 + d),
                    "filename": f,
                    "status": status,
                    "additions": a,
                    "deletions": d,
                    "changes": a + d,
                    "blob_url": format!("{b}/{full}/blob/{}/{f}", c.sha),
                    "raw_url": format!("{b}/{full}/raw/{}/{f}", c.sha),
                    "contents_url": format!("{b}/repos/{full}/contents/{f}?ref={}", c.sha),
                    "patch": format!("@@ -1,{d} +1,{a} @@\n-old line\n+new line")
                })
            })
            .collect()
    }

    pub fn run(&self, ri: usize, run: &Run) -> Value {
        let r = &self.st.repos[ri];
        let full = self.st.full_name(ri);
        let b = self.base;
        let u = format!("{b}/repos/{full}/actions/runs/{}", run.id);
        let wf = &r.workflows[run.workflow];
        let c = &r.commits[run.head_commit];
        let author = self.git_person(c.author, c.date);
        json!({
            "id": run.id,
            "name": wf.name,
            "node_id": run.node_id,
            "head_branch": run.head_branch,
            "head_sha": c.sha,
            "path": wf.path,
            "display_title": run.display_title,
            "run_number": run.run_number,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": wf.id,
            "check_suite_id": run.check_suite_id,
            "check_suite_node_id": crate::world::node_id("CS", run.check_suite_id),
            "url": u,
            "html_url": format!("{b}/{full}/actions/runs/{}", run.id),
            "pull_requests": [],
            "created_at": iso(run.created_at),
            "updated_at": iso(run.updated_at),
            "actor": self.user(run.actor),
            "run_attempt": run.run_attempt,
            "referenced_workflows": [],
            "run_started_at": iso(run.run_started_at),
            "triggering_actor": self.user(run.triggering_actor),
            "jobs_url": format!("{u}/jobs"),
            "logs_url": format!("{u}/logs"),
            "check_suite_url": format!("{b}/repos/{full}/check-suites/{}", run.check_suite_id),
            "artifacts_url": format!("{u}/artifacts"),
            "cancel_url": format!("{u}/cancel"),
            "rerun_url": format!("{u}/rerun"),
            "previous_attempt_url": null,
            "workflow_url": format!("{b}/repos/{full}/actions/workflows/{}", wf.id),
            "head_commit": {
                "id": c.sha,
                "tree_id": c.tree_sha,
                "message": c.message,
                "timestamp": iso(c.date),
                "author": {"name": author["name"], "email": author["email"]},
                "committer": {"name": author["name"], "email": author["email"]}
            },
            "repository": self.repo_min(ri),
            "head_repository": self.repo_min(ri)
        })
    }

    pub fn job(&self, ri: usize, run: &Run, j: &Job) -> Value {
        let r = &self.st.repos[ri];
        let full = self.st.full_name(ri);
        let b = self.base;
        let c = &r.commits[run.head_commit];
        json!({
            "id": j.id,
            "run_id": run.id,
            "workflow_name": r.workflows[run.workflow].name,
            "head_branch": run.head_branch,
            "run_url": format!("{b}/repos/{full}/actions/runs/{}", run.id),
            "run_attempt": run.run_attempt,
            "node_id": j.node_id,
            "head_sha": c.sha,
            "url": format!("{b}/repos/{full}/actions/jobs/{}", j.id),
            "html_url": format!("{b}/{full}/actions/runs/{}/job/{}", run.id, j.id),
            "status": j.status,
            "conclusion": j.conclusion,
            "created_at": iso(j.created_at),
            "started_at": iso(j.started_at),
            "completed_at": opt_iso(j.completed_at),
            "name": j.name,
            "steps": j.steps.iter().enumerate().map(|(n, s)| json!({
                "name": s.name, "status": s.status, "conclusion": s.conclusion, "number": n + 1,
                "started_at": iso(s.started_at), "completed_at": opt_iso(s.completed_at)
            })).collect::<Vec<_>>(),
            "check_run_url": format!("{b}/repos/{full}/check-runs/{}", j.id),
            "labels": j.labels,
            "runner_id": j.runner.as_ref().map(|x| x.0),
            "runner_name": j.runner.as_ref().map(|x| x.1.clone()),
            "runner_group_id": j.runner.as_ref().map(|_| 1),
            "runner_group_name": j.runner.as_ref().map(|_| "Default")
        })
    }

    pub fn runner(&self, rn: &Runner) -> Value {
        json!({
            "id": rn.id,
            "name": rn.name,
            "os": rn.os,
            "status": if rn.online { "online" } else { "offline" },
            "busy": rn.online && rn.busy,
            "ephemeral": false,
            "labels": rn.labels.iter().map(|(id, n, t)| json!({"id": id, "name": n, "type": t})).collect::<Vec<_>>()
        })
    }

    pub fn analysis(&self, ri: usize, a: &Analysis) -> Value {
        let full = self.st.full_name(ri);
        json!({
            "ref": a.git_ref,
            "commit_sha": a.commit_sha,
            "analysis_key": a.analysis_key,
            "environment": a.environment,
            "category": a.category,
            "error": "",
            "created_at": iso(a.created_at),
            "results_count": a.results_count,
            "rules_count": a.rules_count,
            "id": a.id,
            "url": format!("{}/repos/{full}/code-scanning/analyses/{}", self.base, a.id),
            "sarif_id": a.sarif_id,
            "tool": {"name": a.tool_name, "guid": null, "version": a.tool_version},
            "deletable": true,
            "warning": ""
        })
    }

    pub fn perms_json(p: &Perms) -> Value {
        Value::Object(
            p.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.name().to_string())))
                .collect(),
        )
    }
}

fn host_of(base: &str) -> &str {
    base.split("://").nth(1).unwrap_or(base)
}
