//! Pagination: `per_page`/`page` and GitHub's `Link` header.

use serde_json::Value;

use crate::ctx::Ctx;
use crate::hub::Hub;
use crate::reply::Reply;

pub(super) struct Page {
    per_page: usize,
    page: usize,
}

/// `per_page` (default 30, at most 100) and `page` (from 1) of a request.
pub(super) fn page_of(ctx: &Ctx<'_>) -> Page {
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

pub(super) fn slice<'t, T>(items: &'t [T], p: &Page) -> &'t [T] {
    let start = (p.page - 1).saturating_mul(p.per_page).min(items.len());
    let end = start.saturating_add(p.per_page).min(items.len());
    &items[start..end]
}

/// One page of `items` as a JSON array (cached per generation), with the
/// `Link` header GitHub sends for it.
pub(super) fn list_reply<T>(
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

/// GitHub's `Link` header: prev, next, last, first (those that apply),
/// absolute URLs, other query parameters kept.
pub(super) fn link(
    hub: &Hub,
    ctx: &Ctx<'_>,
    link_path: &str,
    p: &Page,
    total: usize,
) -> Option<String> {
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
