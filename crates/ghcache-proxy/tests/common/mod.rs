//! A fake GitHub and a proxy in front of it, both on loopback sockets.
#![allow(dead_code, clippy::unwrap_used)]

pub mod npm;
pub mod origin;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ghcache_core::PartitionSecret;
use ghcache_fakehub::{FakeHub, FakeHubConfig};
use ghcache_proxy::{Proxy, ProxyConfig, RunningProxy};
use ghcache_store::{Store, StoreConfig};
use reqwest::header::HeaderMap;

pub struct Rig {
    pub hub: FakeHub,
    pub proxy: RunningProxy,
    pub store: Arc<Store>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn outcome(&self) -> &str {
        self.headers
            .get("x-ghcache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<none>")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub async fn rig(hub_config: FakeHubConfig) -> Rig {
    rig_with(hub_config, |_| {}).await
}

pub async fn rig_with(hub_config: FakeHubConfig, tweak: impl FnOnce(&mut ProxyConfig)) -> Rig {
    let hub = FakeHub::start(hub_config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (proxy, store) = start_proxy(&hub.base_url(), dir.path(), tweak).await;
    Rig {
        hub,
        proxy,
        store,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        dir,
    }
}

pub async fn start_proxy(
    upstream: &str,
    state: &std::path::Path,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> (RunningProxy, Arc<Store>) {
    let store = Arc::new(Store::open(&state.join("cache"), StoreConfig::default()).unwrap());
    let secret = PartitionSecret::load_or_create(&state.join("partition.key")).unwrap();
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
    config.upstream_timeout = Duration::from_secs(5);
    tweak(&mut config);
    let proxy = Proxy::new(config, store.clone(), secret).unwrap();
    (proxy.serve().await.unwrap(), store)
}

impl Rig {
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(reqwest::Method::GET, path, token, &[]).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        send(
            &self.client,
            &self.proxy.base_url(),
            method,
            path,
            token,
            headers,
            None,
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, body: serde_json::Value) -> Reply {
        send(
            &self.client,
            &self.proxy.base_url(),
            reqwest::Method::POST,
            path,
            Some(token),
            &[],
            Some(body),
        )
        .await
    }

    pub async fn proxy_stats(&self) -> serde_json::Value {
        ghcache_proxy::control_get(self.proxy.addr(), "/_ghcache/stats")
            .await
            .unwrap()
    }
}

pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Reply {
    let mut request = client
        .request(method, format!("{base}{path}"))
        .header("accept", "application/vnd.github+json")
        .header("user-agent", "ghcache-tests");
    if let Some(token) = token {
        request = request.header("authorization", format!("token {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap(),
    }
}
