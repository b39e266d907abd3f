//! The shared vocabulary of Causeway: identifiers, schemas and data types, the records every
//! crate hands to the next (datasets, runs, model versions, events, traffic policies), the
//! [`ErrorCode`] every crate error maps to, an injectable [`Clock`] and a seeded random generator.
//!
//! This crate owns words, not behaviour: it does no IO and is not async.

pub mod base64;
pub mod clock;
pub mod error;
pub mod random;
pub mod records;
pub mod rule;
pub mod schema;
pub mod span;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ErrorCode;
pub use random::SeededRng;
pub use records::*;
pub use rule::{RuleId, RuleKind};
pub use schema::{Dtype, Field, Schema};
pub use span::{Span, SpanError};

/// Milliseconds in one day, the unit the loop and the monitors reason in.
pub const DAY_MS: i64 = 86_400_000;

/// The version of the Causeway tool, recorded with every run for reproducibility.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Formats epoch milliseconds as an ISO-8601 UTC date and time (`2026-01-01T00:00:00Z`).
pub fn format_timestamp(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60
    )
}

/// Formats epoch milliseconds as an ISO-8601 UTC date (`2026-01-01`).
pub fn format_date(ms: i64) -> String {
    let mut text = format_timestamp(ms);
    text.truncate(10);
    text
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_leap_days() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(format_timestamp(951_782_400_000 + 3_723_000), "2000-02-29T01:02:03Z");
        assert_eq!(format_date(1_767_225_600_000 + DAY_MS * 59), "2026-03-01");
    }
}
