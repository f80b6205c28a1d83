//! Code scanning: analyses, SARIF uploads and their processing status.

use base64::Engine as _;
use http::StatusCode;
use serde_json::{Value, json};

use super::page::list_reply;
use super::repos::RepoRead;
use crate::ctx::Ctx;
use crate::hub::Hub;
use crate::reply::{Reply, json_bytes};
use crate::world::{Analysis, Sarif};

pub(super) fn list_analyses(q: &RepoRead<'_>) -> Reply {
    let ctx = q.ctx;
    let git_ref = ctx.q("ref").map(|r| {
        if r.starts_with("refs/") {
            r.to_string()
        } else {
            format!("refs/heads/{r}")
        }
    });
    let tool = ctx.q("tool_name");
    let sarif = ctx.q("sarif_id");
    let mut list: Vec<&Analysis> = q
        .repo
        .analyses
        .iter()
        .filter(|a| git_ref.as_deref().is_none_or(|r| a.git_ref == r))
        .filter(|a| tool.is_none_or(|t| a.tool_name == t))
        .filter(|a| sarif.is_none_or(|s| a.sarif_id == s))
        .collect();
    if ctx.q("direction") != Some("asc") {
        list.reverse();
    }
    list_reply(
        q.hub,
        ctx,
        q.g,
        &list,
        &q.lp("code-scanning/analyses"),
        |a| q.rd.analysis(q.ri, a),
    )
}

pub(super) fn get_sarif(q: &RepoRead<'_>, id: &str) -> Reply {
    match q.repo.sarifs.iter().find(|s| s.id == id) {
        Some(s) => {
            let v = json!({
                "processing_status": "complete",
                "analyses_url": format!("{}/repos/{}/code-scanning/analyses?sarif_id={}", q.hub.base, q.st.full_name(q.ri), s.id),
                "errors": null
            });
            Reply::ok(json_bytes(&v))
        }
        None => Reply::not_found(),
    }
}

pub(super) fn upload_sarif(hub: &Hub, ctx: &Ctx<'_>, ri: usize) -> Reply {
    let v = match ctx.json_body() {
        Ok(v) => v,
        Err(r) => return r,
    };
    let commit_sha = v.get("commit_sha").and_then(Value::as_str).unwrap_or("");
    if commit_sha.len() != 40 || !commit_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Reply::validation(
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
        return Reply::validation(
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
        return Reply::validation("SarifUpload", "sarif", "missing_field");
    };
    let Ok(gz) = base64::engine::general_purpose::STANDARD.decode(sarif_b64.trim()) else {
        return Reply::validation("SarifUpload", "sarif", "invalid");
    };
    let mut raw = Vec::new();
    if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).is_err() {
        return Reply::validation("SarifUpload", "sarif", "invalid");
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&raw) else {
        return Reply::validation("SarifUpload", "sarif", "invalid");
    };
    let Some(runs) = doc.get("runs").and_then(Value::as_array) else {
        return Reply::validation("SarifUpload", "sarif", "invalid");
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
