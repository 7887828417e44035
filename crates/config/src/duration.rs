//! Durations in human form: `100ms`, `2s`, `1.5s`, `1m`, `250us`. A unit is required, so a
//! bare `100` (milliseconds? seconds?) is never guessed.

use std::time::Duration;

const UNITS: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{s:?} is not a duration (expected e.g. 100ms, 2s)"));
    }
    if unit.is_empty() {
        return Err(format!("{s:?} needs a unit (ns, us, ms, s, m, h)"));
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(format!(
            "{s:?} has unknown unit {unit:?} (ns, us, ms, s, m, h)"
        ));
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(format!("{s:?} is not a duration"));
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| format!("{s:?} is too large"))?
    };
    let mut nanos = int
        .checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    // Fractional digits, exactly: no floating point rounding (1.1s is 1100ms).
    let mut place = scale;
    for d in frac.chars() {
        place /= 10;
        nanos += u128::from(d.to_digit(10).unwrap_or(0)) * place;
    }
    if nanos > u128::from(u64::MAX) {
        return Err(format!("{s:?} is too large"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// The shortest exact form: `100ms`, `1s`, `1500us`.
pub fn format_duration(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    for (unit, scale) in UNITS.iter().rev() {
        if n.is_multiple_of(*scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    format!("{n}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        let ok = [
            ("100ms", Duration::from_millis(100)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("1.1s", Duration::from_millis(1100)),
            ("0s", Duration::ZERO),
            ("1m", Duration::from_secs(60)),
            ("250us", Duration::from_micros(250)),
            (" 40.95s ", Duration::from_millis(40_950)),
            (".5s", Duration::from_millis(500)),
        ];
        for (s, d) in ok {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for s in [
            "",
            "100",
            "ms",
            "-1s",
            "1x",
            "1.2.3s",
            "1 s s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(s).is_err(), "{s} should fail");
        }
        assert!(parse_duration("100").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn formats_back() {
        for s in ["100ms", "1s", "1500us", "0s", "2m"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
