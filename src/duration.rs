//! Human durations as written in plans (`24h`, `90m`, `1h30m`, `3650d`) and as printed back.

use std::fmt;

/// A non-negative span of whole seconds.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct Span(u64);

impl Span {
    /// A span of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }
    /// A span of `mins` minutes.
    pub const fn from_mins(mins: u64) -> Self {
        Self(mins * 60)
    }
    /// A span of `hours` hours.
    pub const fn from_hours(hours: u64) -> Self {
        Self(hours * 3600)
    }
    /// A span of `days` days.
    pub const fn from_days(days: u64) -> Self {
        Self(days * 86_400)
    }
    /// The span in whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }
    /// `self × num / den`, rounded up to the second (saturating: a hostile plan's huge span
    /// must not overflow).
    pub fn scaled(self, num: u64, den: u64) -> Self {
        let v = (u128::from(self.0) * u128::from(num)).div_ceil(u128::from(den));
        Self(u64::try_from(v).unwrap_or(u64::MAX))
    }
    /// The span as a `time::Duration`, saturating at `i64::MAX` seconds.
    pub fn to_time(self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
    /// The instant `self` after `at`; `None` past the last date `time` represents (9999-12-31).
    pub fn after(self, at: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
        at.checked_add(time::Duration::seconds(i64::try_from(self.0).ok()?))
    }

    /// Parses `30s`, `2m`, `24h`, `3650d`, or a sequence like `1h30m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration".into());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(format!("unknown unit `{c}` in `{text}` (use s, m, h or d)")),
            };
            if digits.is_empty() {
                return Err(format!("`{text}` has a unit without a number before it"));
            }
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("`{text}` is too large"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("`{text}` is too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(format!(
                "`{text}` needs a unit after `{digits}` (s, m, h or d)"
            ));
        }
        Ok(Self(total))
    }
}

impl std::ops::Add for Span {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        let mut out = String::new();
        for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= secs {
                out.push_str(&format!("{}{unit}", rest / secs));
                rest %= secs;
            }
        }
        f.write_str(&out)
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Span> for String {
    fn from(s: Span) -> Self {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn parses_and_prints_round_trip() {
        for (text, secs, back) in [
            ("24h", 86_400, "1d"),
            ("90m", 5400, "1h30m"),
            ("1h30m", 5400, "1h30m"),
            ("3650d", 3650 * 86_400, "3650d"),
            ("30s", 30, "30s"),
        ] {
            let span = Span::parse(text).unwrap();
            assert_eq!(span.as_secs(), secs, "{text}");
            assert_eq!(span.to_string(), back);
        }
    }

    #[test]
    fn huge_spans_saturate_and_never_overflow_a_date() {
        let huge = Span::from_secs(u64::MAX);
        assert_eq!(
            huge.scaled(51, 100).as_secs(),
            (u128::from(u64::MAX) * 51).div_ceil(100) as u64
        );
        assert_eq!(huge.scaled(3, 2).as_secs(), u64::MAX);
        assert_eq!(Span::from_secs(100).scaled(51, 100).as_secs(), 51);
        let now = time::macros::datetime!(2027-01-01 0:00 UTC);
        assert_eq!(huge.after(now), None);
        assert_eq!(Span::from_days(4_000_000).after(now), None);
        assert_eq!(
            Span::from_days(1).after(now),
            Some(time::macros::datetime!(2027-01-02 0:00 UTC))
        );
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "12", "h", "5y", "1.5h", "99999999999999999999d"] {
            assert!(Span::parse(bad).is_err(), "{bad} should fail");
        }
    }
}
