#![allow(dead_code)]

use bytes::Bytes;
use ghcache_core::{ContentId, ResourceId, ResourceKey};
use ghcache_store::EntryMeta;

pub fn rid(n: u64) -> ResourceId {
    let path = format!("/repos/o/r/issues/{n}");
    ResourceId::compute(&ResourceKey {
        host: "api.github.com",
        method: "GET",
        path: &path,
        query: "",
        accept: Some("application/vnd.github+json"),
        api_version: None,
    })
}

pub fn meta_for(body: &[u8]) -> EntryMeta {
    EntryMeta {
        headers: vec![("content-type".into(), "application/json".into())].into(),
        etag: Some(format!("\"{}\"", ContentId::of(body))),
        stored_at_ms: 1_700_000_000_000,
        ttl_ms: 60_000,
        ..EntryMeta::for_body(body)
    }
}

pub fn body(n: u64, len: usize) -> Bytes {
    let mut v = format!("{{\"n\":{n},\"pad\":\"").into_bytes();
    while v.len() + 2 < len {
        v.push(b'a' + (n % 26) as u8);
    }
    v.extend_from_slice(b"\"}");
    Bytes::from(v)
}
