//! How long members take to answer our fetch requests, and the lookup
//! deadline that follows from it. A fixed deadline below the members'
//! actual answer time (a loaded host, a slow link) turns every peer hit
//! into an upstream fetch; so the deadline stretches to what answers take:
//! the smoothed round trip plus four deviations (TCP's retransmission
//! timer), or the slowest of the last answers when higher (a burst is over
//! before the smoothed figure catches up), never below the configured
//! deadline and never past its cap. Unanswered requests are not samples,
//! so a dead peer cannot stretch it.

use std::time::Duration;

use parking_lot::Mutex;

/// Smoothed round trip of answered fetch requests. Shared by the event loop
/// (which measures) and the handle (which reads).
#[derive(Debug, Default)]
pub(crate) struct Rtt {
    state: Mutex<State>,
}

/// Answers remembered for the recent maximum.
const RECENT: usize = 32;

#[derive(Debug, Default)]
struct State {
    /// (smoothed, deviation) in microseconds; `None` before the first sample.
    smoothed: Option<(f64, f64)>,
    /// The last answers' round trips (µs), a ring.
    recent: Vec<u64>,
    next: usize,
}

impl Rtt {
    /// One answered request took `sample`.
    pub(crate) fn record(&self, sample: Duration) {
        let micros = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
        let x = micros as f64;
        let mut state = self.state.lock();
        if state.recent.len() < RECENT {
            state.recent.push(micros);
        } else {
            let at = state.next;
            state.recent[at] = micros;
        }
        state.next = (state.next + 1) % RECENT;
        state.smoothed = Some(match state.smoothed {
            None => (x, x / 2.0),
            Some((srtt, var)) => {
                // RFC 6298's gains: 1/8 for the mean, 1/4 for the deviation.
                let var = 0.75 * var + 0.25 * (srtt - x).abs();
                (0.875 * srtt + 0.125 * x, var)
            }
        });
    }

    /// The lookup deadline: `configured`, stretched to what answers take,
    /// at most `cap`.
    pub(crate) fn deadline(&self, configured: Duration, cap: Duration) -> Duration {
        let state = self.state.lock();
        let Some((srtt, var)) = state.smoothed else {
            return configured;
        };
        let recent = state.recent.iter().copied().max().unwrap_or(0);
        let adaptive = Duration::from_micros(((srtt + 4.0 * var) as u64).max(recent));
        adaptive.min(cap).max(configured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_follows_answers_within_its_bounds() {
        let rtt = Rtt::default();
        let ms = Duration::from_millis;
        assert_eq!(rtt.deadline(ms(50), ms(1000)), ms(50), "no sample yet");
        for _ in 0..50 {
            rtt.record(ms(2));
        }
        assert_eq!(
            rtt.deadline(ms(50), ms(1000)),
            ms(50),
            "fast peers: the floor"
        );
        for _ in 0..50 {
            rtt.record(ms(200));
        }
        let d = rtt.deadline(ms(50), ms(1000));
        assert!(
            d >= ms(200) && d < ms(400),
            "slow peers: stretched, got {d:?}"
        );
        for _ in 0..50 {
            rtt.record(ms(5000));
        }
        assert_eq!(rtt.deadline(ms(50), ms(1000)), ms(1000), "capped");
    }
}
