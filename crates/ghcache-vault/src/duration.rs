//! Credential lifetimes: `90d`, `12h`, `2w`, `3600` (seconds).

use std::time::Duration;

/// Ten years: longer is a typo, not a lifetime.
const MAX_SECS: u64 = 10 * 365 * 86_400;

/// Parses a whole number of seconds, or a number with `s`, `m`, `h`, `d`
/// or `w`; at least one second.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let allowed = "a duration such as 3600, 90s, 30m, 12h, 90d or 2w";
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not {allowed}"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; {allowed}")),
    };
    match number.checked_mul(factor) {
        Some(0) => Err(format!("{text:?}: a duration of at least 1s")),
        Some(secs) if secs <= MAX_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(format!("{text:?} is longer than ten years")),
    }
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
