//! A sliver of GitHub's GraphQL API: enough for `viewer`, `rateLimit` and
//! `repository(owner:, name:)`, with point accounting and GraphQL-style
//! errors. No ETags (GitHub sends none for GraphQL).

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::ctx::Ctx;
use crate::hub::{Category, Hub};
use crate::reply::Reply;
use crate::time::iso;
use crate::world::{Principal, Role};

#[derive(Debug)]
struct Field {
    alias: Option<String>,
    name: String,
    args: Vec<(String, Value)>,
    sel: Vec<Field>,
    line: usize,
    col: usize,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    vars: &'a Map<String, Value>,
}

impl Parser<'_> {
    fn pos(&self) -> (usize, usize) {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        (line, col)
    }
    fn ws(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b' ' | b'\n' | b'\r' | b'\t' | b',' => self.i += 1,
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> Option<String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b'"' {
                    self.i += if self.s[self.i] == b'\\' { 2 } else { 1 };
                }
                let v =
                    String::from_utf8_lossy(&self.s[start..self.i.min(self.s.len())]).into_owned();
                self.i += 1;
                Ok(Value::String(v))
            }
            Some(b'$') => {
                self.i += 1;
                let n = self.name().ok_or("expected variable name")?;
                Ok(self.vars.get(&n).cloned().unwrap_or(Value::Null))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.')
                {
                    self.i += 1;
                }
                let t = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                Ok(t.parse::<i64>().map(Value::from).unwrap_or(Value::Null))
            }
            _ => {
                let n = self.name().ok_or("expected value")?;
                Ok(match n.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => Value::String(n),
                })
            }
        }
    }
    fn selection(&mut self) -> Result<Vec<Field>, String> {
        if !self.eat(b'{') {
            return Err("expected '{'".into());
        }
        let mut out = Vec::new();
        loop {
            if self.eat(b'}') {
                return Ok(out);
            }
            self.ws();
            let (line, col) = self.pos();
            let first = self
                .name()
                .ok_or_else(|| format!("unexpected character at {line}:{col}"))?;
            let (alias, name) = if self.eat(b':') {
                (
                    Some(first),
                    self.name().ok_or("expected field name after alias")?,
                )
            } else {
                (None, first)
            };
            let mut args = Vec::new();
            if self.eat(b'(') {
                while !self.eat(b')') {
                    let k = self.name().ok_or("expected argument name")?;
                    if !self.eat(b':') {
                        return Err("expected ':'".into());
                    }
                    args.push((k, self.value()?));
                }
            }
            let sel = if self.peek() == Some(b'{') {
                self.selection()?
            } else {
                Vec::new()
            };
            out.push(Field {
                alias,
                name,
                args,
                sel,
                line,
                col,
            });
        }
    }
    fn document(&mut self) -> Result<Vec<Field>, String> {
        if self.peek() != Some(b'{') {
            let kw = self.name().ok_or("expected query")?;
            if kw != "query" {
                return Err(format!(
                    "unsupported operation type {kw:?} (the fake supports queries only)"
                ));
            }
            let _ = self.name();
            if self.eat(b'(') {
                let mut depth = 1;
                while depth > 0 && self.i < self.s.len() {
                    match self.s[self.i] {
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                }
            }
        }
        let sel = self.selection()?;
        if self.peek().is_some() {
            return Err("unexpected content after the query".into());
        }
        Ok(sel)
    }
}

fn undefined(f: &Field, ty: &str, path: &[&str]) -> Value {
    json!({
        "path": path,
        "extensions": {"code": "undefinedField", "typeName": ty, "fieldName": f.name},
        "locations": [{"line": f.line, "column": f.col}],
        "message": format!("Field '{}' doesn't exist on type '{ty}'", f.name)
    })
}

fn key(f: &Field) -> String {
    f.alias.clone().unwrap_or_else(|| f.name.clone())
}

pub(crate) fn handle(hub: &Hub, ctx: &Ctx<'_>) -> Reply {
    if matches!(ctx.who.principal, Principal::Anonymous) {
        let mut r = Reply::error(
            StatusCode::UNAUTHORIZED,
            "This endpoint requires you to be authenticated.",
            "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql",
        );
        r.cost = 0;
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(ctx.body) else {
        let mut r = Reply::error(
            StatusCode::BAD_REQUEST,
            "Problems parsing JSON",
            "https://docs.github.com/graphql",
        );
        r.cost = 0;
        return r;
    };
    let Some(q) = body.get("query").and_then(Value::as_str) else {
        let v = json!({"errors": [{"message": "A query attribute must be specified and must be a string."}]});
        let mut r = Reply::json(StatusCode::OK, Bytes::from(v.to_string()));
        r.cost = 0;
        return r;
    };
    let empty = Map::new();
    let vars = body
        .get("variables")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut p = Parser {
        s: q.as_bytes(),
        i: 0,
        vars,
    };
    let fields = match p.document() {
        Ok(f) => f,
        Err(e) => {
            let (line, col) = p.pos();
            let v = json!({"errors": [{"message": format!("Parse error: {e}"), "locations": [{"line": line, "column": col}]}]});
            let mut r = Reply::json(StatusCode::OK, Bytes::from(v.to_string()));
            r.cost = 0;
            return r;
        }
    };
    // validation: unknown fields make the whole query fail, as in GitHub
    let mut errors = Vec::new();
    for f in &fields {
        let allowed: &[&str] = match f.name.as_str() {
            "viewer" => &["login", "id", "databaseId", "name", "url", "__typename"],
            "rateLimit" => &["limit", "cost", "remaining", "resetAt", "used", "nodeCount"],
            "repository" => &[
                "id",
                "databaseId",
                "name",
                "nameWithOwner",
                "isPrivate",
                "description",
                "url",
                "stargazerCount",
                "forkCount",
                "createdAt",
                "updatedAt",
                "pushedAt",
                "defaultBranchRef",
                "viewerPermission",
                "visibility",
            ],
            _ => {
                errors.push(undefined(f, "Query", &["query", &f.name]));
                continue;
            }
        };
        let ty = match f.name.as_str() {
            "viewer" => "User",
            "rateLimit" => "RateLimit",
            _ => "Repository",
        };
        for s in &f.sel {
            if !allowed.contains(&s.name.as_str()) {
                errors.push(undefined(s, ty, &["query", &f.name, &s.name]));
            }
        }
    }
    if !errors.is_empty() {
        let mut r = Reply::json(
            StatusCode::OK,
            Bytes::from(json!({"errors": errors}).to_string()),
        );
        r.cost = 0;
        return r;
    }
    let st = hub.state.read();
    let mut data = Map::new();
    let mut exec_errors = Vec::new();
    for f in &fields {
        let v = match f.name.as_str() {
            "viewer" => {
                let (login, id, name) = match &ctx.who.principal {
                    Principal::User { user } => {
                        let a = &st.accounts[*user];
                        (a.login.clone(), a.id, a.name.clone())
                    }
                    Principal::GithubToken { .. } => (
                        "github-actions[bot]".to_string(),
                        41_898_282,
                        "GitHub Actions".to_string(),
                    ),
                    _ => (
                        "ghcache-fake-app[bot]".to_string(),
                        st.app_id,
                        "ghcache fake app".to_string(),
                    ),
                };
                let mut m = Map::new();
                for s in &f.sel {
                    let v = match s.name.as_str() {
                        "login" => json!(login),
                        "id" => json!(crate::world::node_id("U", id)),
                        "databaseId" => json!(id),
                        "name" => json!(name),
                        "url" => json!(format!("{}/{login}", hub.base)),
                        _ => json!("User"),
                    };
                    m.insert(key(s), v);
                }
                Value::Object(m)
            }
            "rateLimit" => {
                let (limit, used, reset) = hub.rate_view(ctx.who, Category::Graphql);
                let mut m = Map::new();
                for s in &f.sel {
                    let v = match s.name.as_str() {
                        "limit" => json!(limit),
                        "cost" => json!(1),
                        "remaining" => json!(limit.saturating_sub(used)),
                        "resetAt" => json!(iso(reset)),
                        "used" => json!(used),
                        _ => json!(0),
                    };
                    m.insert(key(s), v);
                }
                Value::Object(m)
            }
            _ => {
                let arg = |n: &str| {
                    f.args
                        .iter()
                        .find(|(k, _)| k == n)
                        .and_then(|(_, v)| v.as_str().map(str::to_string))
                };
                let (owner, name) = (
                    arg("owner").unwrap_or_default(),
                    arg("name").unwrap_or_default(),
                );
                let ri = st
                    .repo_idx(&owner, &name)
                    .filter(|ri| match &ctx.who.principal {
                        Principal::User { user } => st.user_role(*user, *ri) > Role::None,
                        Principal::GithubToken { repo, .. } => {
                            *repo == *ri || !st.repos[*ri].private
                        }
                        Principal::Installation { inst, .. } => {
                            st.repos[*ri].owner == st.installations[*inst].account
                                || !st.repos[*ri].private
                        }
                        _ => !st.repos[*ri].private,
                    });
                match ri {
                    None => {
                        exec_errors.push(json!({
                            "type": "NOT_FOUND",
                            "path": [key(f)],
                            "locations": [{"line": f.line, "column": f.col}],
                            "message": format!("Could not resolve to a Repository with the name '{owner}/{name}'.")
                        }));
                        Value::Null
                    }
                    Some(ri) => {
                        let r = &st.repos[ri];
                        let mut m = Map::new();
                        for s in &f.sel {
                            let v = match s.name.as_str() {
                                "id" => json!(r.node_id),
                                "databaseId" => json!(r.id),
                                "name" => json!(r.name),
                                "nameWithOwner" => json!(st.full_name(ri)),
                                "isPrivate" => json!(r.private),
                                "description" => json!(r.description),
                                "url" => json!(format!("{}/{}", hub.base, st.full_name(ri))),
                                "stargazerCount" => json!(r.stargazers),
                                "forkCount" => json!(r.forks),
                                "createdAt" => json!(iso(r.created_at)),
                                "updatedAt" => json!(iso(r.updated_at)),
                                "pushedAt" => json!(iso(r.pushed_at)),
                                "defaultBranchRef" => json!({"name": r.default_branch}),
                                "visibility" => json!(if r.private { "PRIVATE" } else { "PUBLIC" }),
                                _ => match &ctx.who.principal {
                                    Principal::User { user } => {
                                        json!(st.user_role(*user, ri).name().to_ascii_uppercase())
                                    }
                                    _ => json!("READ"),
                                },
                            };
                            m.insert(key(s), v);
                        }
                        Value::Object(m)
                    }
                }
            }
        };
        data.insert(key(f), v);
    }
    let mut out = json!({"data": data});
    if !exec_errors.is_empty()
        && let Some(m) = out.as_object_mut()
    {
        m.insert("errors".into(), Value::Array(exec_errors));
    }
    let mut r = Reply::json(StatusCode::OK, Bytes::from(out.to_string()));
    r.cost = 1;
    r
}
