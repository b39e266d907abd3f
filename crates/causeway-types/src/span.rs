//! [`Span`]: a length of time written with its unit (`"90s"`, `"15m"`, `"6h"`, `"30d"`, `"2w"`),
//! so one configuration runs a test in seconds and production in days.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DAY_MS;

/// A non-negative length of time in milliseconds.
///
/// Written as one or more `<number><unit>` parts (`"90s"`, `"1h30m"`, `"500ms"`) with the units
/// `ms`, `s`, `m`, `h`, `d` and `w`. In `causeway.toml` a bare integer counts days, which is what
/// the `*_days` keys of earlier versions meant, so their files keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    millis: i64,
}

/// Why a text is not a [`Span`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {reason} (write a number and a unit, e.g. \"90s\", \"15m\", \"6h\", \"30d\")")]
pub struct SpanError {
    text: String,
    reason: &'static str,
}

const UNITS: [(&str, i64); 6] =
    [("w", 7 * DAY_MS), ("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

impl Span {
    /// A span of `millis` milliseconds (negative values count as zero).
    pub const fn from_millis(millis: i64) -> Self {
        Self { millis: if millis < 0 { 0 } else { millis } }
    }

    /// A span of whole seconds.
    pub const fn seconds(seconds: i64) -> Self {
        Self::from_millis(seconds.saturating_mul(1_000))
    }

    /// A span of whole days.
    pub const fn days(days: i64) -> Self {
        Self::from_millis(days.saturating_mul(DAY_MS))
    }

    /// Its length in milliseconds.
    pub const fn millis(self) -> i64 {
        self.millis
    }

    /// True for a zero-length span.
    pub const fn is_zero(self) -> bool {
        self.millis == 0
    }

    /// This span multiplied by `factor` (saturating).
    pub const fn times(self, factor: i64) -> Self {
        Self::from_millis(self.millis.saturating_mul(factor))
    }

    /// The same span as a standard duration.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis.unsigned_abs())
    }
}

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| SpanError { text: text.to_string(), reason };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("it is empty"));
        }
        let mut rest = trimmed;
        let mut total: i64 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|character: char| !character.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(error("each part starts with a whole number"));
            }
            let number: i64 = rest[..digits].parse().map_err(|_| error("the number is too large"))?;
            rest = &rest[digits..];
            let unit_length = rest.find(|character: char| character.is_ascii_digit()).unwrap_or(rest.len());
            let unit = rest[..unit_length].trim();
            if unit.is_empty() {
                return Err(error("the number has no unit"));
            }
            let Some((_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
                return Err(error("units are ms, s, m, h, d and w"));
            };
            total = number
                .checked_mul(*scale)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(|| error("the number is too large"))?;
            rest = &rest[unit_length..];
        }
        Ok(Self { millis: total })
    }
}

impl fmt::Display for Span {
    /// The spelling in the largest exact unit up to days (`"36h"` stays `"36h"`, `"60m"` is
    /// `"1h"`, `"2w"` is `"14d"`).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return formatter.write_str("0s");
        }
        let (name, scale) = UNITS[1..].iter().find(|(_, scale)| self.millis % scale == 0).copied().unwrap_or(("ms", 1));
        write!(formatter, "{}{name}", self.millis / scale)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Span;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a duration with its unit, e.g. \"90s\", \"15m\", \"6h\" or \"30d\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Span, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, days: i64) -> Result<Span, E> {
                if days < 0 {
                    return Err(E::custom(format!("a duration cannot be negative, got {days}")));
                }
                Ok(Span::days(days))
            }

            fn visit_u64<E: serde::de::Error>(self, days: u64) -> Result<Span, E> {
                self.visit_i64(i64::try_from(days).map_err(|_| E::custom("the duration is too large"))?)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!("90s".parse::<Span>(), Ok(Span::seconds(90)));
        assert_eq!("15m".parse::<Span>(), Ok(Span::seconds(900)));
        assert_eq!("6h".parse::<Span>(), Ok(Span::seconds(6 * 3600)));
        assert_eq!("30d".parse::<Span>(), Ok(Span::days(30)));
        assert_eq!("2w".parse::<Span>(), Ok(Span::days(14)));
        assert_eq!("250ms".parse::<Span>(), Ok(Span::from_millis(250)));
        assert_eq!("1h30m".parse::<Span>(), Ok(Span::seconds(5400)));
        assert_eq!(" 1d 12h ".parse::<Span>(), Ok(Span::from_millis(DAY_MS + DAY_MS / 2)));
    }

    #[test]
    fn refuses_what_is_not_a_duration_and_says_what_to_write() {
        for text in ["", "15", "m", "3 days", "-2d", "1.5h", "99999999999999999999d"] {
            let error = text.parse::<Span>().expect_err(text).to_string();
            assert!(error.contains("e.g. \"90s\""), "{error}");
        }
        assert!("15".parse::<Span>().expect_err("no unit").to_string().contains("has no unit"));
        assert!("3 days".parse::<Span>().expect_err("unit").to_string().contains("units are ms, s, m, h, d and w"));
    }

    #[test]
    fn prints_in_the_largest_exact_unit_and_round_trips() {
        for (text, printed) in [("90s", "90s"), ("60m", "1h"), ("36h", "36h"), ("2w", "14d"), ("1500ms", "1500ms")] {
            let span: Span = text.parse().expect("parses");
            assert_eq!(span.to_string(), printed);
            assert_eq!(printed.parse::<Span>(), Ok(span));
        }
        assert_eq!(Span::default().to_string(), "0s");
    }

    #[test]
    fn a_bare_integer_in_a_file_counts_days_as_the_old_keys_did() {
        #[derive(Deserialize)]
        struct Section {
            window: Span,
        }
        let days: Section = serde_json::from_str(r#"{"window": 7}"#).expect("integer");
        assert_eq!(days.window, Span::days(7));
        let text: Section = serde_json::from_str(r#"{"window": "90s"}"#).expect("text");
        assert_eq!(text.window, Span::seconds(90));
        assert!(serde_json::from_str::<Section>(r#"{"window": -1}"#).is_err());
    }
}
