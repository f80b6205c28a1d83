//! The one duration syntax of every setting, flag and action input: whole
//! seconds (`3600`) or a number with `s`, `m`, `h`, `d` or `w`. Each caller
//! states its own maximum and whether zero means something.

use std::time::Duration;

/// What a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationLimits {
    /// Longest accepted: longer is a typo, not a value.
    pub max: Duration,
    /// The maximum as the error names it (`30-day`, `ten-year`).
    pub max_name: &'static str,
    /// Whether `0` is a value (a TTL of zero: revalidate every time) or a
    /// mistake (a credential lifetime).
    pub allow_zero: bool,
}

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration such as 300, 90s, 30m, 12h, 7d or 2w")]
    Syntax(String),
    #[error("{0:?}: a duration of at least 1s")]
    Zero(String),
    #[error("{text:?} is longer than the {max_name} maximum")]
    TooLong {
        text: String,
        max_name: &'static str,
    },
}

/// Parses `text` within `limits`; overflow counts as too long.
pub fn parse_duration(text: &str, limits: DurationLimits) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let syntax = || DurationError::Syntax(text.to_owned());
    let number: u64 = number.parse().map_err(|_| syntax())?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(syntax()),
    };
    let too_long = || DurationError::TooLong {
        text: text.to_owned(),
        max_name: limits.max_name,
    };
    match number.checked_mul(factor) {
        Some(0) if !limits.allow_zero => Err(DurationError::Zero(text.to_owned())),
        Some(secs) if secs <= limits.max.as_secs() => Ok(Duration::from_secs(secs)),
        _ => Err(too_long()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const MONTH: DurationLimits = DurationLimits {
        max: Duration::from_secs(30 * DAY),
        max_name: "30-day",
        allow_zero: true,
    };

    #[test]
    fn units_limits_and_zero() {
        let p = |t: &str| parse_duration(t, MONTH);
        assert_eq!(p("300"), Ok(Duration::from_secs(300)));
        assert_eq!(p(" 5m "), Ok(Duration::from_secs(300)));
        assert_eq!(p("2w"), Ok(Duration::from_secs(14 * DAY)));
        assert_eq!(p("30d"), Ok(Duration::from_secs(30 * DAY)));
        assert_eq!(p("0"), Ok(Duration::ZERO));
        assert!(p("31d").unwrap_err().to_string().contains("30-day maximum"));
        assert!(matches!(
            p("99999999999999999999w"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            p("999999999999999999w"),
            Err(DurationError::TooLong { .. })
        ));
        for bad in ["", "5y", "-1h", "h", "5 minutes", "1.5h"] {
            assert!(matches!(p(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        let strict = DurationLimits {
            allow_zero: false,
            ..MONTH
        };
        assert_eq!(
            parse_duration("0s", strict),
            Err(DurationError::Zero("0s".into()))
        );
    }
}
