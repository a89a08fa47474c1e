//! Value parsers with bounds for every duration, interval, budget and count flag: a bad
//! value is refused while the command line is parsed (exit 2, one line), before anything
//! connects or writes. `0s` heartbeats used to panic after registering; `--interval 0s`
//! made ~500 requests a second.
//!
//! Shared, not `cli`'s: the worker, the Admin API, the operator and ampctl declare their
//! own arguments with these, and they stand below `cli` (docs/architecture.md).

use std::time::Duration;

/// A duration in `[MIN_MS, MAX_MS]` milliseconds, e.g. `bounded::<100, 60_000>`.
pub fn bounded<const MIN_MS: u64, const MAX_MS: u64>(raw: &str) -> Result<Duration, String> {
    let d = parse(raw)?;
    let (min, max) = (Duration::from_millis(MIN_MS), Duration::from_millis(MAX_MS));
    if d < min || d > max {
        return Err(format!(
            "must be from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// `0` (the feature is off) or a duration in `[MIN_MS, MAX_MS]` milliseconds.
pub fn zero_or_bounded<const MIN_MS: u64, const MAX_MS: u64>(
    raw: &str,
) -> Result<Duration, String> {
    let d = parse(raw)?;
    if d.is_zero() {
        return Ok(d);
    }
    bounded::<MIN_MS, MAX_MS>(raw).map_err(|e| format!("{e}, or 0 to disable"))
}

/// A count in `[MIN, MAX]`.
pub fn count<const MIN: usize, const MAX: usize>(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (MIN..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from {MIN} to {MAX}")),
    }
}

/// A rate per second in `(0, 10000]`.
pub fn rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 10_000.0 => Ok(r),
        _ => Err("must be a number above 0 and at most 10000 (per second)".to_owned()),
    }
}

fn parse(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|e| format!("not a duration ({e}); write it like 500ms, 30s, 5m or 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_inclusive_and_say_what_is_allowed() {
        assert_eq!(
            bounded::<100, 60_000>("100ms"),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(bounded::<100, 60_000>("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(
            bounded::<100, 60_000>("0s"),
            Err("must be from 100ms to 1m".to_owned())
        );
        assert_eq!(
            bounded::<100, 60_000>("61s"),
            Err("must be from 100ms to 1m".to_owned())
        );
        assert!(
            bounded::<100, 60_000>("soon")
                .unwrap_err()
                .starts_with("not a duration")
        );
        assert_eq!(zero_or_bounded::<60_000, 1_000>("0"), Ok(Duration::ZERO));
        assert_eq!(
            zero_or_bounded::<10_000, 3_600_000>("5s"),
            Err("must be from 10s to 1h, or 0 to disable".to_owned())
        );
        assert_eq!(count::<1, 256>("8"), Ok(8));
        assert!(count::<1, 256>("0").is_err() && count::<1, 256>("-1").is_err());
        assert_eq!(rate("20"), Ok(20.0));
        for bad in ["0", "-1", "NaN", "inf", "1e9", "x"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Any millisecond count: accepted exactly when within the bounds, and what is
        /// accepted is what was written.
        #[test]
        fn a_duration_is_accepted_exactly_within_its_bounds(ms in 0u64..200_000) {
            let raw = format!("{ms}ms");
            let got = bounded::<100, 60_000>(&raw);
            prop_assert_eq!(got.is_ok(), (100..=60_000).contains(&ms));
            if let Ok(d) = got {
                prop_assert_eq!(d, Duration::from_millis(ms));
            }
            let zero_ok = zero_or_bounded::<100, 60_000>(&raw);
            prop_assert_eq!(zero_ok.is_ok(), ms == 0 || (100..=60_000).contains(&ms));
        }

        #[test]
        fn garbage_is_never_a_duration(s in "[^0-9]{0,12}") {
            prop_assert!(bounded::<0, 60_000>(&s).is_err());
        }
    }
}
