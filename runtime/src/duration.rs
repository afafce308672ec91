//! One duration syntax for every flag of every command: a number with a
//! unit, `250ms`, `30s`, `1.5s`, `2m`, `1h`, `500us`, `100ns`; a bare number
//! is seconds (what the flags took before they had units).

use std::time::Duration;

/// Why a duration flag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number with a known unit.
    #[error("`{0}` is not a duration (e.g. 250ms, 30s, 1.5s, 2m; a bare number is seconds)")]
    Syntax(String),
    /// Outside what the flag allows.
    #[error("{value} is not between {min} and {max}")]
    Range {
        /// The value as given.
        value: String,
        /// The least allowed, formatted.
        min: String,
        /// The most allowed, formatted.
        max: String,
    },
    /// A flag that counts whole seconds got a fraction.
    #[error("{0} is not a whole number of seconds")]
    NotWholeSeconds(String),
}

/// Parses a duration: `250ms`, `30s`, `1.5s`, `2m`, `1h`, `500us`, `100ns`,
/// or a bare number of seconds (`30`, `0.5`).
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    let bad = || DurationError::Syntax(s.to_string());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(v * scale).map_err(|_| bad())
}

/// [`parse`], then within `min..=max`.
pub fn parse_within(s: &str, min: Duration, max: Duration) -> Result<Duration, DurationError> {
    let d = parse(s)?;
    if d < min || d > max {
        return Err(DurationError::Range {
            value: s.trim().to_string(),
            min: format(min),
            max: format(max),
        });
    }
    Ok(d)
}

/// [`parse_within`], then a whole number of seconds (flags whose value
/// goes on as whole seconds: a report's `duration_s`, wrk's `-d`).
pub fn parse_whole_secs_within(
    s: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, DurationError> {
    let d = parse_within(s, min, max)?;
    if d.subsec_nanos() != 0 {
        return Err(DurationError::NotWholeSeconds(s.trim().to_string()));
    }
    Ok(d)
}

/// A duration in the flags' syntax, in the largest unit that keeps it
/// short: `250ms`, `30s`, `1.5s`, `2m`.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    let (v, unit) = if ns == 0 {
        return "0s".to_string();
    } else if ns.is_multiple_of(3_600_000_000_000) {
        (ns as f64 / 3.6e12, "h")
    } else if ns.is_multiple_of(60_000_000_000) {
        (ns as f64 / 6e10, "m")
    } else if ns >= 1_000_000_000 {
        (ns as f64 / 1e9, "s")
    } else if ns >= 1_000_000 {
        (ns as f64 / 1e6, "ms")
    } else if ns >= 1_000 {
        (ns as f64 / 1e3, "us")
    } else {
        (ns as f64, "ns")
    };
    format!("{v}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 20ms "), Ok(Duration::from_millis(20)));
    }

    #[test]
    fn refused() {
        for s in [
            "",
            "ms",
            "-1",
            "1x",
            "20 parsecs",
            "1.2.3s",
            "NaN",
            "inf",
            "1e400",
        ] {
            assert!(
                matches!(parse(s), Err(DurationError::Syntax(_))),
                "{s:?} accepted"
            );
        }
        let e = parse_within("2h", Duration::ZERO, Duration::from_secs(3600)).unwrap_err();
        assert_eq!(e.to_string(), "2h is not between 0s and 1h");
        assert!(parse_within("0.5ms", Duration::from_millis(1), Duration::from_secs(1)).is_err());
        assert_eq!(
            parse_whole_secs_within("2m", Duration::ZERO, Duration::from_secs(300)),
            Ok(Duration::from_secs(120))
        );
        assert!(matches!(
            parse_whole_secs_within("1.5s", Duration::ZERO, Duration::from_secs(300)),
            Err(DurationError::NotWholeSeconds(_))
        ));
        assert_eq!(
            parse_within("1ms", Duration::from_millis(1), Duration::from_secs(1)),
            Ok(Duration::from_millis(1))
        );
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_millis(1500),
            Duration::from_secs(30),
            Duration::from_secs(120),
            Duration::from_secs(3600),
            Duration::from_micros(500),
            Duration::from_nanos(7),
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(120)), "2m");
    }
}
