//! `/_fakehub/*`: stats, reset, bump, clock, faults, world. Never rate
//! limited, never counted as API traffic.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::config::FaultConfig;
use crate::hub::Hub;

fn resp(status: StatusCode, v: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    if let Ok(h) = http::HeaderValue::from_str("application/json; charset=utf-8") {
        r.headers_mut().insert(http::header::CONTENT_TYPE, h);
    }
    r
}

fn bad(msg: &str) -> Response<Full<Bytes>> {
    resp(StatusCode::BAD_REQUEST, json!({"message": msg}))
}

pub(crate) fn handle(hub: &Hub, method: &Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let parsed: Option<Value> = if body.is_empty() {
        Some(json!({}))
    } else {
        serde_json::from_slice(body).ok()
    };
    match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/_fakehub/stats") => resp(
            StatusCode::OK,
            serde_json::to_value(hub.stats.snapshot()).unwrap_or(Value::Null),
        ),
        ("POST", "/_fakehub/reset") => {
            hub.stats.reset();
            resp(StatusCode::OK, json!({"reset": true}))
        }
        ("POST", "/_fakehub/clock") => {
            let Some(n) = parsed
                .as_ref()
                .and_then(|v| v.get("advance_secs"))
                .and_then(Value::as_u64)
            else {
                return bad("expected {\"advance_secs\": N}");
            };
            hub.clock.advance(Duration::from_secs(n));
            resp(StatusCode::OK, json!({"now": hub.clock.now()}))
        }
        ("GET", "/_fakehub/clock") => resp(StatusCode::OK, json!({"now": hub.clock.now()})),
        ("POST", "/_fakehub/bump") => {
            let Some(p) = parsed
                .as_ref()
                .and_then(|v| v.get("path"))
                .and_then(Value::as_str)
            else {
                return bad("expected {\"path\": \"/repos/o/r\"}");
            };
            if hub.bump(p) {
                resp(StatusCode::OK, json!({"bumped": p}))
            } else {
                resp(
                    StatusCode::NOT_FOUND,
                    json!({"message": "no such resource", "path": p}),
                )
            }
        }
        ("GET", "/_fakehub/faults") => resp(
            StatusCode::OK,
            serde_json::to_value(hub.faults.read().clone()).unwrap_or(Value::Null),
        ),
        ("POST", "/_fakehub/faults") => match serde_json::from_slice::<FaultConfig>(body) {
            Ok(f) => {
                *hub.faults.write() = f.clone();
                resp(
                    StatusCode::OK,
                    serde_json::to_value(f).unwrap_or(Value::Null),
                )
            }
            Err(e) => bad(&format!("invalid fault config: {e}")),
        },
        ("GET", "/_fakehub/world") => resp(
            StatusCode::OK,
            json!({
                "seed": hub.world.seed(),
                "base_url": hub.base,
                "tokens": hub.world.tokens(),
                "accounts": hub.world.accounts(),
                "repos": hub.world.repos(),
                "app_id": hub.world.app_id(),
                "app_jwt": hub.world.app_jwt(),
                "installations": hub.world.installations(),
            }),
        ),
        _ => resp(
            StatusCode::NOT_FOUND,
            json!({"message": "unknown fakehub endpoint"}),
        ),
    }
}
