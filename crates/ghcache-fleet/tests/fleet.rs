//! Small fleet runs: the figures agree with the fake GitHub's own counters,
//! and the cache designs rank as the design predicts. No timing asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ghcache_fleet::{FleetConfig, Latency, Mode, ModeResult, TokenMix};

fn small(runners: usize, rounds: usize) -> FleetConfig {
    FleetConfig {
        runners,
        rounds,
        latency: Latency::None,
        // Loaded CI machines: a peer may be slow to answer; a miss then
        // costs a unit and would blur the ranking, not break it.
        peer_deadline: std::time::Duration::from_millis(500),
        ..FleetConfig::default()
    }
}

fn check_against_github(m: &ModeResult) {
    assert_eq!(
        m.upstream_requests, m.github.requests,
        "{}: requests the daemons sent vs what GitHub received",
        m.title
    );
    assert_eq!(
        m.units, m.github.units,
        "{}: units the daemons counted vs what GitHub charged",
        m.title
    );
    assert!(
        m.shape_errors.is_empty(),
        "{}: {:?}",
        m.title,
        m.shape_errors
    );
    assert_eq!(
        m.failed, 0,
        "{}: every request succeeds: {:?}",
        m.title, m.failures
    );
    let o = &m.outcomes;
    let answered = o.hit
        + o.revalidated
        + o.synthesized
        + o.coalesced
        + o.miss
        + o.bypass
        + o.stale
        + o.direct;
    assert_eq!(
        answered, m.requests,
        "{}: every answer is counted once",
        m.title
    );
    assert!(
        m.units >= m.physical_limit,
        "{}: {} units is below the physical limit {}",
        m.title,
        m.units,
        m.physical_limit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_figures_match_the_fakes_counters() {
    let config = small(3, 2);
    let report = ghcache_fleet::run(&config, &[Mode::NoCache, Mode::MeshSynthesis], &|_| {})
        .await
        .expect("the run completes");
    let before = report.mode(Mode::NoCache).unwrap();
    let after = report.mode(Mode::MeshSynthesis).unwrap();
    check_against_github(before);
    check_against_github(after);
    assert_eq!(
        before.requests, after.requests,
        "both modes replay one plan"
    );
    assert_eq!(before.outcomes.direct, before.requests);
    assert!(
        after.units < before.units,
        "the cache saves units: {} vs {}",
        after.units,
        before.units
    );
    assert!(after.outcomes.hit + after.outcomes.synthesized > 0);
    let table = ghcache_fleet::text_table(&report);
    assert!(table.contains("rate-limit units"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn modes_rank_as_designed() {
    let mut config = small(4, 3);
    config.tokens = TokenMix::PerJob;
    let report = ghcache_fleet::run(&config, &Mode::ALL, &|_| {})
        .await
        .expect("the run completes");
    for m in &report.modes {
        check_against_github(m);
    }
    let units = |mode| report.mode(mode).unwrap().units;
    let ranked = [
        Mode::NoCache,
        Mode::PerHost,
        Mode::Mesh,
        Mode::MeshSynthesis,
    ];
    for pair in ranked.windows(2) {
        assert!(
            units(pair[0]) >= units(pair[1]),
            "{:?} spent {} units, {:?} {}:\n{}",
            pair[0],
            units(pair[0]),
            pair[1],
            units(pair[1]),
            ghcache_fleet::markdown(&report)
        );
    }
    assert!(units(Mode::NoCache) > units(Mode::MeshSynthesis));
    // Fleet trust is not ranked: it saves requests (HITs for other tokens'
    // copies) but its units depend on how first fetches overlap in time.
    assert!(units(Mode::FleetTrust) < units(Mode::NoCache));
}
