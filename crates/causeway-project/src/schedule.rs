//! [`Cron`]: the `[loop] schedule` of a scheduled retraining, in the five-field cron syntax
//! (minute, hour, day of month, month, day of week; UTC), and when it is next due.

use std::fmt;
use std::str::FromStr;

use causeway_types::DAY_MS;

use crate::error::{Error, Result};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// How far ahead a schedule is searched (a schedule such as `0 0 30 2 *` never comes due).
const HORIZON_MS: i64 = 5 * 366 * DAY_MS;

/// A parsed cron expression. Each field is a set of allowed values as a bit mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Both day fields restricted: a day matches when either does (cron's rule).
    either_day: bool,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct FieldSpec {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
    /// The value the first name stands for.
    first_name: u32,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec { name: "minute", low: 0, high: 59, names: &[], first_name: 0 },
    FieldSpec { name: "hour", low: 0, high: 23, names: &[], first_name: 0 },
    FieldSpec { name: "day of month", low: 1, high: 31, names: &[], first_name: 0 },
    FieldSpec { name: "month", low: 1, high: 12, names: &MONTHS, first_name: 1 },
    FieldSpec { name: "day of week", low: 0, high: 7, names: &WEEKDAYS, first_name: 0 },
];

fn value(spec: &FieldSpec, text: &str) -> std::result::Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(index) = spec.names.iter().position(|name| *name == upper) {
        return Ok(spec.first_name + index as u32);
    }
    let number: u32 = text.parse().map_err(|_| format!("`{text}` is not a {}", spec.name))?;
    if !(spec.low..=spec.high).contains(&number) {
        return Err(format!("{} {number} is outside {}-{}", spec.name, spec.low, spec.high));
    }
    Ok(number)
}

fn field(spec: &FieldSpec, text: &str) -> std::result::Result<(u64, bool), String> {
    let mut mask = 0u64;
    let restricted = text != "*";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("`{step}` is not a step"))?;
                if step == 0 {
                    return Err("a step must be at least 1".into());
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (spec.low, spec.high)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(spec, low)?, value(spec, high)?)
        } else {
            let single = value(spec, range)?;
            (single, if step > 1 { spec.high } else { single })
        };
        if low > high {
            return Err(format!("the range {range} runs backwards"));
        }
        let mut current = low;
        while current <= high {
            mask |= 1 << current;
            current += step;
        }
    }
    Ok((mask, restricted))
}

impl FromStr for Cron {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let bad = |reason: String| {
            Error::Config(format!(
                "loop.schedule `{text}`: {reason} (write five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * MON\")"
            ))
        };
        if fields.len() != 5 {
            return Err(bad(format!("it has {} fields", fields.len())));
        }
        let mut masks = [(0u64, false); 5];
        for (index, (spec, text)) in FIELDS.iter().zip(&fields).enumerate() {
            masks[index] = field(spec, text).map_err(bad)?;
        }
        let mut days_of_week = masks[4].0;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & !(1 << 7);
        }
        Ok(Self {
            text: fields.join(" "),
            minutes: masks[0].0,
            hours: masks[1].0,
            days_of_month: masks[2].0,
            months: masks[3].0,
            days_of_week,
            either_day: masks[2].1 && masks[4].1,
        })
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// (month 1-12, day of month 1-31, day of week 0-6 with Sunday 0) of a day since the epoch.
fn calendar(day: i64) -> (u32, u32, u32) {
    let date = causeway_types::format_date(day * DAY_MS);
    let month = date[5..7].parse().unwrap_or(1);
    let day_of_month = date[8..10].parse().unwrap_or(1);
    // 1970-01-01 was a Thursday.
    let day_of_week = (day + 4).rem_euclid(7) as u32;
    (month, day_of_month, day_of_week)
}

impl Cron {
    fn day_matches(&self, day: i64) -> bool {
        let (month, day_of_month, day_of_week) = calendar(day);
        if self.months & (1 << month) == 0 {
            return false;
        }
        let by_month_day = self.days_of_month & (1 << day_of_month) != 0;
        let by_week_day = self.days_of_week & (1 << day_of_week) != 0;
        if self.either_day { by_month_day || by_week_day } else { by_month_day && by_week_day }
    }

    /// The first minute strictly after `after_ms` the schedule names, or `None` when it names
    /// none within five years.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let mut at = (after_ms.div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
        let limit = after_ms.saturating_add(HORIZON_MS);
        while at <= limit {
            let day = at.div_euclid(DAY_MS);
            if !self.day_matches(day) {
                at = (day + 1) * DAY_MS;
                continue;
            }
            let hour = (at.rem_euclid(DAY_MS) / HOUR_MS) as u32;
            if self.hours & (1 << hour) == 0 {
                at = (at.div_euclid(HOUR_MS) + 1) * HOUR_MS;
                continue;
            }
            let minute = (at.rem_euclid(HOUR_MS) / MINUTE_MS) as u32;
            if self.minutes & (1 << minute) == 0 {
                at += MINUTE_MS;
                continue;
            }
            return Some(at);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_types::format_timestamp;

    /// 2026-01-01T00:00:00Z, a Thursday.
    const NEW_YEAR: i64 = 1_767_225_600_000;

    fn next(cron: &str, after: i64) -> String {
        let cron: Cron = cron.parse().expect("parses");
        format_timestamp(cron.next_after(after).expect("comes due"))
    }

    #[test]
    fn comes_due_at_the_next_named_minute() {
        assert_eq!(next("0 3 * * MON", NEW_YEAR), "2026-01-05T03:00:00Z");
        assert_eq!(next("*/15 * * * *", NEW_YEAR), "2026-01-01T00:15:00Z");
        assert_eq!(next("30 9 1 * *", NEW_YEAR), "2026-01-01T09:30:00Z");
        assert_eq!(next("0 0 1 MAR *", NEW_YEAR), "2026-03-01T00:00:00Z");
        assert_eq!(next("0 12 * * 1-5", NEW_YEAR + 12 * HOUR_MS), "2026-01-02T12:00:00Z");
        assert_eq!(next("0 0 * * 7", NEW_YEAR), "2026-01-04T00:00:00Z", "7 is Sunday too");
        // Both day fields restricted: either matches (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * FRI", NEW_YEAR), "2026-01-02T00:00:00Z");
        assert_eq!(next("0,30 8-9 * * *", NEW_YEAR + 8 * HOUR_MS), "2026-01-01T08:30:00Z");
        let never: Cron = "0 0 30 2 *".parse().expect("parses");
        assert_eq!(never.next_after(NEW_YEAR), None);
    }

    #[test]
    fn bad_schedules_say_what_to_write() {
        for (text, reason) in [
            ("0 3 * *", "it has 4 fields"),
            ("61 * * * *", "minute 61 is outside 0-59"),
            ("0 3 * * FUNDAY", "`FUNDAY` is not a day of week"),
            ("*/0 * * * *", "a step must be at least 1"),
            ("0 5-3 * * *", "runs backwards"),
        ] {
            let error = text.parse::<Cron>().expect_err(text).to_string();
            assert!(error.contains(reason) && error.contains("e.g. \"0 3 * * MON\""), "{error}");
        }
    }
}
