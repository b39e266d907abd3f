//! Text as data: which strings mean "missing", and how a string becomes a number, a boolean or an
//! instant. One set of rules for CSV files, declared column types and label values.

use causeway_types::Dtype;

use crate::frame::Column;

/// The strings that mean a missing value, as pandas reads them by default (the empty string
/// among them). Compared after trimming surrounding spaces.
pub const MISSING_TOKENS: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// True when `text` means a missing value.
pub fn is_missing(text: &str) -> bool {
    MISSING_TOKENS.contains(&text.trim())
}

/// `text` as an integer (surrounding spaces allowed).
pub fn parse_integer(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

/// `text` as a finite or infinite number (surrounding spaces allowed; `NaN` is missing, not a
/// number, and is refused here).
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|value| !value.is_nan())
}

/// `text` as a boolean: `true`/`false` in any case; with `loose`, also `yes`/`no`, `y`/`n`,
/// `t`/`f` and `1`/`0`.
pub fn parse_bool(text: &str, loose: bool) -> Option<bool> {
    let lowered = text.trim().to_ascii_lowercase();
    match lowered.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        "yes" | "y" | "t" | "1" if loose => Some(true),
        "no" | "n" | "f" | "0" if loose => Some(false),
        _ => None,
    }
}

/// `text` as an instant in epoch milliseconds: an ISO-8601 / RFC 3339 date (`2024-05-01`, midnight
/// UTC) or date and time (`2024-05-01T12:30:00Z`, `2024-05-01 12:30:00.250+02:00`; without an
/// offset it is UTC).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let nanos = arrow_cast::parse::string_to_timestamp_nanos(text.trim()).ok()?;
    Some(nanos.div_euclid(1_000_000))
}

/// Formats epoch milliseconds as ISO 8601 in UTC, with milliseconds when there are any.
pub fn format_instant(ms: i64) -> String {
    let whole = causeway_types::format_timestamp(ms);
    match ms.rem_euclid(1000) {
        0 => whole,
        millis => format!("{}.{millis:03}Z", whole.trim_end_matches('Z')),
    }
}

/// Digits that are an identifier rather than a number: a leading zero (`00123`, a zip code) or
/// more digits than a float holds exactly.
fn identifier_digits(text: &str) -> bool {
    let digits = text.trim().trim_start_matches(['-', '+']);
    digits.len() > 1
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits.starts_with('0') || digits.len() > 15)
}

/// The narrowest type every present value of a text column parses as: integers, then numbers,
/// then `true`/`false`, then instants; text otherwise. A column with no values is text, and so
/// is one holding identifiers written as digits (`00123`, or 16 digits and more), which numbers
/// would change.
pub fn infer_dtype(values: &[Option<String>]) -> Dtype {
    let present: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
    if present.is_empty() || present.iter().any(|text| identifier_digits(text)) {
        return Dtype::Utf8;
    }
    if present.iter().all(|text| parse_integer(text).is_some()) {
        Dtype::Int64
    } else if present.iter().all(|text| parse_number(text).is_some()) {
        Dtype::Float64
    } else if present.iter().all(|text| parse_bool(text, false).is_some()) {
        Dtype::Bool
    } else if present.iter().all(|text| parse_timestamp(text).is_some()) {
        Dtype::Timestamp
    } else {
        Dtype::Utf8
    }
}

/// The first few present values of a text column that do not parse as `dtype`, with their rows.
pub fn unparsable(values: &[Option<String>], dtype: Dtype, limit: usize) -> (usize, Vec<(usize, String)>) {
    let parses = |text: &str| match dtype {
        Dtype::Int64 => parse_integer(text).is_some(),
        Dtype::Float64 => parse_number(text).is_some(),
        Dtype::Bool => parse_bool(text, true).is_some(),
        Dtype::Timestamp => parse_timestamp(text).is_some(),
        Dtype::Utf8 => true,
    };
    let mut count = 0;
    let mut examples = Vec::new();
    for (row, text) in values.iter().enumerate() {
        if let Some(text) = text
            && !parses(text)
        {
            count += 1;
            if examples.len() < limit {
                examples.push((row, text.clone()));
            }
        }
    }
    (count, examples)
}

impl Column {
    /// This column as `dtype`, when every value converts without loss: integers to numbers and
    /// back when whole, anything to text, text to the type its values parse as (missing tokens
    /// become nulls), booleans to 0/1 and back, integers to instants (epoch milliseconds) and back.
    /// `None` when some value does not convert.
    pub fn coerce(&self, dtype: Dtype) -> Option<Column> {
        if self.dtype() == dtype {
            return Some(self.clone());
        }
        let rows = 0..self.len();
        Some(match (self, dtype) {
            (_, Dtype::Utf8) => Column::Utf8(rows.map(|row| self.text(row)).collect()),
            (Column::Utf8(values), _) => parse_text(values, dtype)?,
            (Column::Int64(values), Dtype::Float64) => {
                Column::Float64(values.iter().map(|value| value.map(|value| value as f64)).collect())
            }
            (Column::Float64(values), Dtype::Int64) => Column::Int64(
                values
                    .iter()
                    .map(|value| match value {
                        None => Some(None),
                        Some(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => Some(Some(*value as i64)),
                        Some(_) => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            (Column::Bool(values), Dtype::Int64) => {
                Column::Int64(values.iter().map(|value| value.map(i64::from)).collect())
            }
            (Column::Bool(values), Dtype::Float64) => {
                Column::Float64(values.iter().map(|value| value.map(|flag| f64::from(u8::from(flag)))).collect())
            }
            (Column::Int64(values), Dtype::Bool) => Column::Bool(
                values
                    .iter()
                    .map(|value| match value {
                        None => Some(None),
                        Some(0) => Some(Some(false)),
                        Some(1) => Some(Some(true)),
                        Some(_) => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            // Integers are taken for epoch milliseconds only when they plausibly are (1973 to
            // 5138): seconds or days would land in January 1970.
            (Column::Int64(values), Dtype::Timestamp)
                if values.iter().flatten().all(|value| (100_000_000_000..100_000_000_000_000).contains(value)) =>
            {
                Column::Timestamp(values.clone())
            }
            (Column::Timestamp(values), Dtype::Int64) => Column::Int64(values.clone()),
            _ => return None,
        })
    }
}

/// Parses text values into `dtype`; missing tokens become nulls. `None` when a value does not parse.
fn parse_text(values: &[Option<String>], dtype: Dtype) -> Option<Column> {
    fn each<T>(values: &[Option<String>], parse: impl Fn(&str) -> Option<T>) -> Option<Vec<Option<T>>> {
        values
            .iter()
            .map(|value| match value {
                None => Some(None),
                Some(text) if is_missing(text) => Some(None),
                Some(text) => parse(text).map(Some),
            })
            .collect()
    }
    Some(match dtype {
        Dtype::Int64 => Column::Int64(each(values, parse_integer)?),
        Dtype::Float64 => Column::Float64(each(values, parse_number)?),
        Dtype::Bool => Column::Bool(each(values, |text| parse_bool(text, true))?),
        Dtype::Timestamp => Column::Timestamp(each(values, parse_timestamp)?),
        Dtype::Utf8 => Column::Utf8(values.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|text| (!is_missing(text)).then(|| text.to_string())).collect()
    }

    #[test]
    fn infers_the_narrowest_type() {
        assert_eq!(infer_dtype(&texts(&["1", " 2", "NA", "-3"])), Dtype::Int64);
        assert_eq!(infer_dtype(&texts(&["1", "2.5", "n/a", "1e3"])), Dtype::Float64);
        assert_eq!(infer_dtype(&texts(&["true", "False", ""])), Dtype::Bool);
        assert_eq!(infer_dtype(&texts(&["2024-05-01", "2024-05-02T10:00:00Z"])), Dtype::Timestamp);
        assert_eq!(infer_dtype(&texts(&["yes", "no"])), Dtype::Utf8, "yes/no stays text (labels map it)");
        assert_eq!(infer_dtype(&texts(&["128", "abc"])), Dtype::Utf8);
        assert_eq!(infer_dtype(&texts(&["", "NA"])), Dtype::Utf8);
        assert_eq!(infer_dtype(&texts(&["00123", "123"])), Dtype::Utf8, "a leading zero is an identifier");
        assert_eq!(infer_dtype(&texts(&["1234567890123456789"])), Dtype::Utf8, "more digits than a float holds");
        assert_eq!(infer_dtype(&texts(&["0", "0.5", "-0"])), Dtype::Float64);
    }

    #[test]
    fn parses_instants_with_offsets_and_dates_as_midnight_utc() {
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.250"), Some(1_250));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(format_instant(1_250), "1970-01-01T00:00:01.250Z");
        assert_eq!(format_instant(86_400_000), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn coerces_only_without_loss() {
        let text = Column::Utf8(texts(&["1", "n/a", "3"]));
        assert_eq!(text.coerce(Dtype::Float64), Some(Column::Float64(vec![Some(1.0), None, Some(3.0)])));
        assert_eq!(Column::Utf8(texts(&["1", "x"])).coerce(Dtype::Float64), None);
        assert_eq!(Column::Float64(vec![Some(2.0)]).coerce(Dtype::Int64), Some(Column::Int64(vec![Some(2)])));
        assert_eq!(Column::Float64(vec![Some(2.5)]).coerce(Dtype::Int64), None);
        assert_eq!(Column::Int64(vec![Some(7)]).coerce(Dtype::Utf8), Some(Column::Utf8(vec![Some("7".into())])));
        assert_eq!(
            Column::Utf8(texts(&["Yes", "no"])).coerce(Dtype::Bool),
            Some(Column::Bool(vec![Some(true), Some(false)]))
        );
        assert_eq!(
            Column::Int64(vec![Some(1_700_000_000)]).coerce(Dtype::Timestamp),
            None,
            "seconds are not milliseconds"
        );
        assert!(Column::Int64(vec![Some(1_700_000_000_000)]).coerce(Dtype::Timestamp).is_some());
        let (count, examples) = unparsable(&texts(&["1", "abc", "2", "x"]), Dtype::Float64, 1);
        assert_eq!((count, examples), (2, vec![(1, "abc".to_string())]));
    }
}
