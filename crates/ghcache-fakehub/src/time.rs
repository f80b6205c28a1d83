//! The virtual clock and timestamp formatting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall clock plus an offset that only grows (`advance_clock`). Rate-limit
/// windows, token expiry and `updated_at` of writes are judged on it.
#[derive(Debug)]
pub(crate) struct Clock {
    start_instant: Instant,
    start_epoch_ms: u64,
    offset_ms: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let start_epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
            .unwrap_or(0);
        Self {
            start_instant: Instant::now(),
            start_epoch_ms,
            offset_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX / 4);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Virtual now, milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start_instant.elapsed().as_millis()).unwrap_or(0);
        self.start_epoch_ms + elapsed + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Virtual now, seconds since the Unix epoch.
    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.now_ms() / 1000).unwrap_or(i64::MAX)
    }

    /// Virtual seconds since the hub started.
    pub(crate) fn since_start_secs(&self) -> u64 {
        (self.now_ms() - self.start_epoch_ms) / 1000
    }
}

/// `2024-06-01T12:00:00Z` from Unix seconds (GitHub's timestamp format).
pub(crate) fn iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// HTTP date (`Last-Modified`) from Unix seconds.
pub(crate) fn http_date(secs: i64) -> String {
    let secs = u64::try_from(secs.max(0)).unwrap_or(0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Parses an HTTP date into Unix seconds.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

// Howard Hinnant's days -> civil date algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn iso_formats() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_736_942_400), "2025-01-15T12:00:00Z");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
    }
}
