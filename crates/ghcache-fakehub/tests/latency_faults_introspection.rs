//! Latency injection, faults, and the `/_fakehub` introspection endpoints.
#![allow(clippy::unwrap_used)]

mod common;
use std::time::{Duration, Instant};

use common::*;
use ghcache_fakehub::{
    FakeHub, FakeHubConfig, FaultConfig, LatencyProfile, LatencyRange, OutageWindow,
};
use serde_json::json;

#[tokio::test]
async fn latency_within_configured_bounds_per_class() {
    let lp = LatencyProfile {
        read: LatencyRange::new(Duration::from_millis(120), Duration::from_millis(60)),
        list: LatencyRange::new(Duration::from_millis(250), Duration::from_millis(50)),
        ..LatencyProfile::zero()
    };
    let hub = FakeHub::start(FakeHubConfig {
        latency: lp,
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let read = format!("{}/repos/{}", hub.base_url(), w.private_repo());
    let list = format!("{}/repos/{}/issues", hub.base_url(), w.private_repo());
    get(&c, &read, Some(t)).await; // warm the connection
    for _ in 0..4 {
        let s = Instant::now();
        assert_eq!(get(&c, &read, Some(t)).await.status, 200);
        let e = s.elapsed();
        assert!(
            e >= Duration::from_millis(120) && e < Duration::from_millis(180 + 150),
            "read took {e:?}"
        );
        let s = Instant::now();
        get(&c, &list, Some(t)).await;
        let e = s.elapsed();
        assert!(
            e >= Duration::from_millis(250) && e < Duration::from_millis(300 + 150),
            "list took {e:?}"
        );
    }
    hub.set_latency(LatencyProfile::zero());
    let s = Instant::now();
    get(&c, &read, Some(t)).await;
    assert!(
        s.elapsed() < Duration::from_millis(100),
        "runtime change applies"
    );
    // introspection is never delayed
    hub.set_latency(LatencyProfile::uniform(
        Duration::from_secs(2),
        Duration::ZERO,
    ));
    let s = Instant::now();
    get(&c, &format!("{}/_fakehub/stats", hub.base_url()), None).await;
    assert!(s.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn outage_errors_resets_and_timeouts() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let url = format!("{}/repos/{}", hub.base_url(), w.private_repo());
    hub.set_faults(FaultConfig::outage());
    let r = get(&c, &url, Some(t)).await;
    assert_eq!(r.status, 503);
    assert!(r.json()["message"].is_string());
    hub.set_faults(FaultConfig::none());
    assert_eq!(get(&c, &url, Some(t)).await.status, 200);
    let s = hub.stats().identity("user:alice");
    assert_eq!(
        (s.status_5xx, s.units_consumed),
        (1, 1),
        "a 5xx costs no unit"
    );

    hub.set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::none()
    });
    for _ in 0..4 {
        let r = get(&c, &url, Some(t)).await;
        assert!(r.status == 502 || r.status == 503, "{}", r.status);
    }
    hub.set_faults(FaultConfig {
        reset_rate: 1.0,
        ..FaultConfig::none()
    });
    let e = c
        .get(&url)
        .header("authorization", format!("token {t}"))
        .send()
        .await;
    assert!(e.is_err(), "connection dropped without a response");

    hub.set_faults(FaultConfig {
        timeout_rate: 1.0,
        timeout_hang: Duration::from_secs(5),
        ..FaultConfig::none()
    });
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = short
        .get(&url)
        .header("authorization", format!("token {t}"))
        .send()
        .await;
    assert!(e.unwrap_err().is_timeout());

    // scheduled outage on the virtual clock
    hub.set_faults(FaultConfig {
        outage_windows: vec![OutageWindow {
            start_secs: 100,
            end_secs: 200,
        }],
        ..FaultConfig::none()
    });
    assert_eq!(get(&c, &url, Some(t)).await.status, 200);
    hub.advance_clock(Duration::from_secs(150));
    assert_eq!(get(&c, &url, Some(t)).await.status, 503);
    hub.advance_clock(Duration::from_secs(100));
    assert_eq!(get(&c, &url, Some(t)).await.status, 200);
}

#[tokio::test]
async fn introspection_endpoints() {
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice");
    let base = hub.base_url();
    let url = format!("{base}/repos/{}", w.private_repo());
    let r1 = get(&c, &url, Some(t)).await;
    let rem = r1.num("x-ratelimit-remaining");
    get(&c, &format!("{base}/repos/nobody/nothing"), Some(t)).await;

    let s = get(&c, &format!("{base}/_fakehub/stats"), None)
        .await
        .json();
    let alice = &s["identities"]["user:alice"];
    assert_eq!(alice["requests"], 2);
    assert_eq!(alice["status_200"], 1);
    assert_eq!(alice["status_4xx"], 1);
    assert_eq!(alice["units_consumed"], 2, "a 404 costs a unit too");
    assert_eq!(
        s["totals"]["requests"], 2,
        "introspection is not API traffic"
    );
    assert!(!s.to_string().contains(t), "stats never show a token");
    assert_eq!(hub.stats().identity("user:alice").requests, 2);

    // bump changes the ETag; stats calls cost nothing
    let b = post(
        &c,
        &format!("{base}/_fakehub/bump"),
        None,
        &json!({"path": format!("/repos/{}", w.private_repo())}),
    )
    .await;
    assert_eq!(b.status, 200);
    let r2 = get_h(&c, &url, Some(t), &[("if-none-match", &r1.h("etag"))]).await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.num("x-ratelimit-remaining"), rem - 2);
    assert_eq!(
        post(
            &c,
            &format!("{base}/_fakehub/bump"),
            None,
            &json!({"path": "/repos/no/such"})
        )
        .await
        .status,
        404
    );

    // clock
    let before = hub.now();
    let ck = post(
        &c,
        &format!("{base}/_fakehub/clock"),
        None,
        &json!({"advance_secs": 3600}),
    )
    .await;
    assert_eq!(ck.status, 200);
    assert!(hub.now() >= before + 3600);
    let r3 = get(&c, &url, Some(t)).await;
    assert_eq!(r3.num("x-ratelimit-used"), 1, "window rolled");

    // faults over HTTP
    let f = post(
        &c,
        &format!("{base}/_fakehub/faults"),
        None,
        &json!({"outage": true}),
    )
    .await;
    assert_eq!(f.status, 200);
    assert_eq!(get(&c, &url, Some(t)).await.status, 503);
    assert_eq!(
        get(&c, &format!("{base}/_fakehub/faults"), None)
            .await
            .json()["outage"],
        true
    );
    post(&c, &format!("{base}/_fakehub/faults"), None, &json!({})).await;
    assert_eq!(get(&c, &url, Some(t)).await.status, 200);
    assert_eq!(
        post(
            &c,
            &format!("{base}/_fakehub/faults"),
            None,
            &json!({"error_rate": "lots"})
        )
        .await
        .status,
        400
    );

    // reset
    assert_eq!(
        post(&c, &format!("{base}/_fakehub/reset"), None, &json!({}))
            .await
            .status,
        200
    );
    assert_eq!(hub.stats().totals.requests, 0);
    let world = get(&c, &format!("{base}/_fakehub/world"), None)
        .await
        .json();
    assert_eq!(world["base_url"], base.as_str());
    hub.shutdown().await;
}

#[tokio::test]
async fn realistic_profile_and_many_requests() {
    let cfg = FakeHubConfig::realistic();
    assert!(cfg.latency.read.base >= Duration::from_millis(50));
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let c = client();
    let w = hub.world();
    let t = w.pat("alice").to_string();
    let url = format!("{}/repos/{}/actions/runs", hub.base_url(), w.private_repo());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (c, url, t) = (c.clone(), url.clone(), t.clone());
        set.spawn(async move {
            for _ in 0..50 {
                assert_eq!(get(&c, &url, Some(&t)).await.status, 200);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    assert_eq!(hub.stats().identity("user:alice").requests, 400);
}
