//! A run's figures as a terminal table (metrics down, modes across) and as
//! Markdown (modes down).

use std::fmt::Write;

use crate::tally::{FleetReport, ModeResult};

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn ratio(units: u64, limit: u64) -> String {
    if limit == 0 {
        "-".into()
    } else {
        format!("{:.2}×", units as f64 / limit as f64)
    }
}

type Metric = (&'static str, fn(&ModeResult) -> String);

const METRICS: [Metric; 19] = [
    ("client requests", |m| m.requests.to_string()),
    ("upstream requests", |m| m.upstream_requests.to_string()),
    ("rate-limit units", |m| m.units.to_string()),
    ("physical limit (units)", |m| m.physical_limit.to_string()),
    ("units / physical limit", |m| {
        ratio(m.units, m.physical_limit)
    }),
    ("extra: concurrent/held elsewhere/here", |m| {
        let e = &m.extra_units;
        format!("{}/{}/{}", e.concurrent, e.held_elsewhere, e.held_here)
    }),
    ("units: no copy: held/deadline/waited/unclaimed", |m| {
        m.unit_causes.map_or("-".into(), |c| {
            format!(
                "{}/{}/{}/{}",
                c.nothing_held, c.peer_deadline, c.waited_in_vain, c.unclaimed
            )
        })
    }),
    ("units: not confirmed/changed/passed", |m| {
        m.unit_causes.map_or("-".into(), |c| {
            format!("{}/{}/{}", c.not_confirmed, c.changed, c.pass_through)
        })
    }),
    ("fresh local (HIT)", |m| m.outcomes.hit.to_string()),
    ("from a peer", |m| m.peer_copies.to_string()),
    ("revalidated (304)", |m| m.outcomes.revalidated.to_string()),
    ("synthesised (304)", |m| m.outcomes.synthesized.to_string()),
    ("coalesced", |m| m.outcomes.coalesced.to_string()),
    ("miss", |m| m.outcomes.miss.to_string()),
    ("passed through", |m| {
        (m.outcomes.bypass + m.outcomes.direct).to_string()
    }),
    ("p50 latency", |m| ms(m.latency.p50_ms)),
    ("p99 latency", |m| ms(m.latency.p99_ms)),
    ("wall time", |m| format!("{:.1} s", m.wall_ms as f64 / 1e3)),
    ("failed answers", |m| m.failed.to_string()),
];

/// Metrics down, one column per mode.
pub fn text_table(report: &FleetReport) -> String {
    let label_width = METRICS.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let columns: Vec<Vec<String>> = report
        .modes
        .iter()
        .map(|m| {
            let mut column = vec![m.title.clone()];
            column.extend(METRICS.iter().map(|(_, f)| f(m)));
            column
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| c.iter().map(|v| v.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in 0..=METRICS.len() {
        let label = if row == 0 { "" } else { METRICS[row - 1].0 };
        let _ = write!(out, "{label:<label_width$}");
        for (column, width) in columns.iter().zip(&widths) {
            let _ = write!(out, "  {:>width$}", column[row]);
        }
        out.push('\n');
    }
    out
}

/// One row per mode, for docs/BENCHMARKS.md and job summaries.
pub fn markdown(report: &FleetReport) -> String {
    let mut out = String::from(
        "| mode | upstream requests | units | units / physical limit | HIT | from a peer | revalidated | synthesised | coalesced | miss | p50 | p99 | wall |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in &report.modes {
        let o = &m.outcomes;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            m.title,
            m.upstream_requests,
            m.units,
            ratio(m.units, m.physical_limit),
            m.physical_limit,
            o.hit,
            m.peer_copies,
            o.revalidated,
            o.synthesized,
            o.coalesced,
            o.miss + o.direct,
            ms(m.latency.p50_ms),
            ms(m.latency.p99_ms),
            m.wall_ms as f64 / 1e3
        );
    }
    out.push_str(
        "\n| mode | units | nothing held | peer deadline | waited in vain | unclaimed | not confirmed | changed | passed through | extra (clients' view): concurrent / held elsewhere / held here |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in &report.modes {
        let e = &m.extra_units;
        let extra = format!("{} / {} / {}", e.concurrent, e.held_elsewhere, e.held_here);
        let _ = match &m.unit_causes {
            Some(c) => writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.title,
                m.units,
                c.nothing_held,
                c.peer_deadline,
                c.waited_in_vain,
                c.unclaimed,
                c.not_confirmed,
                c.changed,
                c.pass_through,
                extra
            ),
            None => writeln!(
                out,
                "| {} | {} | - | - | - | - | - | - | - | {} |",
                m.title, m.units, extra
            ),
        };
    }
    out
}
