//! Expectation suites: declared checks a batch must pass before it is stored.

use std::collections::BTreeSet;
use std::fmt;

use causeway_types::Dtype;
use serde::{Deserialize, Serialize};

use crate::frame::Frame;

/// How many offending examples a failure report quotes.
const EXAMPLES: usize = 5;

/// One declared check on one column, as written in `causeway.toml`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The column checked.
    pub column: String,
    /// The required type.
    #[serde(default, rename = "type")]
    pub dtype: Option<Dtype>,
    /// Whether the column must be present (default true).
    #[serde(default = "default_true")]
    pub required: bool,
    /// Whether nulls are forbidden.
    #[serde(default)]
    pub not_null: bool,
    /// Smallest allowed value (numeric columns).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value (numeric columns).
    #[serde(default)]
    pub max: Option<f64>,
    /// The allowed values, compared as text.
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
    /// The column holds numbers (integers, floats or booleans), whatever their width.
    #[serde(default)]
    pub numeric: bool,
    /// Who needs the column, for messages (`a numeric feature in [features]`); not written in
    /// `causeway.toml`, set by callers that add expectations of their own.
    #[serde(skip)]
    pub origin: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `1 row`, `5 rows`.
fn rows(count: u64) -> String {
    if count == 1 { "1 row".into() } else { format!("{count} rows") }
}

/// What a value of `dtype` is, for messages.
fn dtype_noun(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Int64 => "integers",
        Dtype::Float64 => "numbers",
        Dtype::Bool => "booleans",
        Dtype::Timestamp => "dates or times",
        Dtype::Utf8 => "text",
    }
}

/// The expectations a dataset's batches must meet.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectationSuite {
    /// The checks, in order.
    #[serde(default)]
    pub expectations: Vec<Expectation>,
}

/// One broken expectation, with examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The column.
    pub column: String,
    /// The rule broken, e.g. `not_null`.
    pub rule: String,
    /// How many rows broke it.
    pub rows: u64,
    /// A few offending rows as `row N: value`.
    pub examples: Vec<String>,
}

/// The result of running a suite over a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// What was validated (dataset name and source).
    pub subject: String,
    /// Rows checked.
    pub rows: u64,
    /// Declared expectations checked.
    pub checked: usize,
    /// Checks added for the columns the project reads (features, the time column), beside the
    /// declared expectations.
    #[serde(default)]
    pub column_checks: usize,
    /// How many of the failures are those checks.
    #[serde(default)]
    pub column_check_failures: usize,
    /// Broken expectations and schema changes; empty means the batch passed.
    pub failures: Vec<Failure>,
    /// How many of the failures are schema changes against earlier versions (the others broke
    /// an expectation).
    #[serde(default)]
    pub schema_changes: usize,
}

impl ValidationReport {
    /// True when no expectation was broken.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            write!(formatter, "{}: {} passed {} expectations", self.subject, rows(self.rows), self.checked)?;
            if self.column_checks > 0 {
                write!(formatter, " and {} checks of the columns the project reads", self.column_checks)?;
            }
            return Ok(());
        }
        let broken = self.failures.len().saturating_sub(self.schema_changes + self.column_check_failures);
        let mut problems = Vec::new();
        if broken > 0 || (self.schema_changes == 0 && self.column_check_failures == 0) {
            problems.push(format!("{broken} of {} expectations failed", self.checked));
        }
        if self.column_check_failures > 0 {
            problems.push(format!(
                "{} of {} checks of the columns the project reads failed",
                self.column_check_failures, self.column_checks
            ));
        }
        if self.schema_changes > 0 {
            let plural = if self.schema_changes == 1 { "" } else { "s" };
            problems.push(format!("{} schema change{plural} against earlier versions", self.schema_changes));
        }
        writeln!(
            formatter,
            "{} was rejected: {} on {}; nothing was stored",
            self.subject,
            problems.join(" and "),
            rows(self.rows)
        )?;
        for failure in &self.failures {
            writeln!(formatter, "  - column `{}`: {} ({})", failure.column, failure.rule, rows(failure.rows))?;
            for example in &failure.examples {
                writeln!(formatter, "      {example}")?;
            }
        }
        write!(formatter, "fix the data or the expectation in causeway.toml and ingest again")
    }
}

impl ExpectationSuite {
    /// The column types the suite declares.
    pub fn declared_types(&self) -> impl Iterator<Item = (String, Dtype)> + '_ {
        self.expectations
            .iter()
            .filter_map(|expectation| expectation.dtype.map(|dtype| (expectation.column.clone(), dtype)))
    }

    /// Checks `frame`; the report lists every broken expectation.
    pub fn validate(&self, subject: &str, frame: &Frame) -> ValidationReport {
        let mut failures = Vec::new();
        let mut column_check_failures = 0;
        for expectation in &self.expectations {
            let failed_before = failures.len();
            // A column already found broken is not reported again by the checks added for it.
            if expectation.origin.is_some()
                && failures.iter().any(|failure: &Failure| failure.column == expectation.column)
            {
                continue;
            }
            self.check_one(expectation, frame, &mut failures);
            if expectation.origin.is_some() {
                column_check_failures += failures.len() - failed_before;
            }
        }
        let column_checks = self.expectations.iter().filter(|expectation| expectation.origin.is_some()).count();
        ValidationReport {
            subject: subject.to_string(),
            rows: frame.rows() as u64,
            checked: self.expectations.len() - column_checks,
            column_checks,
            column_check_failures,
            failures,
            schema_changes: 0,
        }
    }

    /// Checks one expectation, adding what it finds broken to `failures`.
    fn check_one(&self, expectation: &Expectation, frame: &Frame, failures: &mut Vec<Failure>) {
        let origin = expectation.origin.as_ref().map(|origin| format!(" ({origin})")).unwrap_or_default();
        let Some(column) = frame.column(&expectation.column) else {
            if expectation.required {
                failures.push(Failure {
                    column: expectation.column.clone(),
                    rule: format!("column is required but missing{origin}"),
                    rows: frame.rows() as u64,
                    examples: vec![format!("columns present: {}", frame.names().join(", "))],
                });
            }
            return;
        };
        if expectation.numeric && !matches!(column.dtype(), Dtype::Int64 | Dtype::Float64 | Dtype::Bool) {
            let (rows, examples) = match column.as_strings() {
                Some(values) => crate::values::unparsable(values, Dtype::Float64, EXAMPLES),
                None => (frame.rows(), Vec::new()),
            };
            failures.push(Failure {
                column: expectation.column.clone(),
                rule: format!(
                    "must hold numbers{origin}, but it is {}: these values are not numbers (declare `type = \"float64\"` to name every one)",
                    column.dtype().as_str()
                ),
                rows: rows as u64,
                examples: examples.iter().map(|(row, text)| format!("row {row}: {text:?}")).collect(),
            });
            return;
        }
        if let Some(dtype) = expectation.dtype
            && column.dtype() != dtype
        {
            // Text that should have been another type: name the values that are not.
            let failure = match column.as_strings() {
                Some(values) => {
                    let (rows, examples) = crate::values::unparsable(values, dtype, EXAMPLES);
                    Failure {
                        column: expectation.column.clone(),
                        rule: format!("type must be {}: these values are not {}", dtype.as_str(), dtype_noun(dtype)),
                        rows: rows as u64,
                        examples: examples.iter().map(|(row, text)| format!("row {row}: {text:?}")).collect(),
                    }
                }
                None => Failure {
                    column: expectation.column.clone(),
                    rule: format!("type must be {}", dtype.as_str()),
                    rows: frame.rows() as u64,
                    examples: vec![format!("found {}", column.dtype().as_str())],
                },
            };
            failures.push(failure);
            return;
        }
        let mut check = |rule: String, broken: &dyn Fn(usize) -> bool| {
            let offending: Vec<usize> = (0..column.len()).filter(|row| broken(*row)).collect();
            if !offending.is_empty() {
                failures.push(Failure {
                    column: expectation.column.clone(),
                    rule,
                    rows: offending.len() as u64,
                    examples: offending
                        .iter()
                        .take(EXAMPLES)
                        .map(|row| format!("row {row}: {}", column.text(*row).unwrap_or_else(|| "null".into())))
                        .collect(),
                });
            }
        };
        if expectation.not_null {
            check("must not be null".into(), &|row| column.is_null(row));
        }
        if let Some(min) = expectation.min {
            check(format!("must be >= {min}"), &|row| column.number(row).is_some_and(|value| value < min));
        }
        if let Some(max) = expectation.max {
            check(format!("must be <= {max}"), &|row| column.number(row).is_some_and(|value| value > max));
        }
        if let Some(allowed) = &expectation.allowed {
            let set: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
            let shown: Vec<&str> = set.iter().copied().take(8).collect();
            check(format!("must be one of [{}]", shown.join(", ")), &|row| {
                column.text(row).is_some_and(|value| !set.contains(value.as_str()))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;

    fn suite() -> ExpectationSuite {
        toml::from_str(
            r#"
            [[expectations]]
            column = "amount"
            type = "float64"
            not_null = true
            min = 0.0
            max = 100.0

            [[expectations]]
            column = "channel"
            allowed = ["online", "in_store"]

            [[expectations]]
            column = "optional"
            required = false
            "#,
        )
        .expect("valid suite")
    }

    #[test]
    fn passing_batch_passes() -> crate::Result<()> {
        let frame = Frame::new()
            .with_column("amount", Column::Float64(vec![Some(1.0), Some(99.0)]))?
            .with_column("channel", Column::Utf8(vec![Some("online".into()), None]))?;
        let report = suite().validate("t", &frame);
        assert!(report.passed(), "{report}");
        Ok(())
    }

    #[test]
    fn failing_batch_names_column_rule_and_rows() -> crate::Result<()> {
        let frame =
            Frame::new().with_column("amount", Column::Float64(vec![Some(-1.0), None, Some(500.0)]))?.with_column(
                "channel",
                Column::Utf8(vec![Some("fax".into()), Some("online".into()), Some("fax".into())]),
            )?;
        let report = suite().validate("transactions from bad.csv", &frame);
        let rules: Vec<&str> = report.failures.iter().map(|failure| failure.rule.as_str()).collect();
        assert_eq!(rules, ["must not be null", "must be >= 0", "must be <= 100", "must be one of [in_store, online]"]);
        assert_eq!(report.failures[3].rows, 2);
        let text = report.to_string();
        assert!(text.contains("column `amount`: must not be null (1 row)"), "{text}");
        assert!(text.contains("row 0: fax"), "{text}");
        Ok(())
    }

    #[test]
    fn wrong_type_and_missing_column_fail() -> crate::Result<()> {
        let frame = Frame::new().with_column("amount", Column::Utf8(vec![Some("x".into())]))?;
        let report = suite().validate("t", &frame);
        assert_eq!(report.failures.len(), 2, "{report}");
        assert!(report.failures[0].rule.contains("type must be float64"));
        assert!(report.failures[1].rule.contains("missing"));
        Ok(())
    }
}
