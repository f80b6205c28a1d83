//! Credential lifetimes: `90d`, `12h`, `2w`, `3600` (seconds).

use std::time::Duration;

/// Ten years: longer is a typo, not a lifetime; a lifetime of zero is one too.
pub const LIFETIME: ghcache_core::DurationLimits = ghcache_core::DurationLimits {
    max: Duration::from_secs(10 * 365 * 86_400),
    max_name: "ten-year",
    allow_zero: false,
};

/// Parses a whole number of seconds, or a number with `s`, `m`, `h`, `d`
/// or `w` (`ghcache_core`'s syntax); at least one second, at most ten years.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    ghcache_core::parse_duration(text, LIFETIME).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_refusals() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "0", "5y", "-1h", "h", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
