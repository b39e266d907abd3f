//! Turns a runs/search filter and order into SQL, clause by clause, where the SQL means exactly
//! what the in-memory evaluator in [`crate::search`] means — and only there.
//!
//! The evaluator stays the definition: a clause this module cannot translate exactly (ILIKE,
//! whose case folding differs between Rust and the databases; a text column compared with a
//! number, which the evaluator parses) is left out of the SQL and judged in memory over the rows
//! the translated clauses kept. When every clause and every order key translates, the database
//! filters, orders and pages alone and only the page is read. This module owns that translation;
//! it runs no query and must not decide what a clause means.

use crate::db::Value;
use crate::search::{Clause, Entity, Literal, Operator, OrderBy};

/// A search in SQL over `runs r`: conditions to AND with the base one, and the joins and terms of
/// an `ORDER BY` when the whole order translated.
#[derive(Debug, Default)]
pub(crate) struct CompiledSearch {
    /// Conditions on `r`, each one clause of the filter.
    pub conditions: Vec<String>,
    /// The values of `conditions`, in the order their `?` appear.
    pub condition_values: Vec<Value>,
    /// True when every clause of the filter is in `conditions`.
    pub whole_filter: bool,
    /// The `LEFT JOIN`s, their values and the `ORDER BY` terms (before the tie-break on start
    /// time and run id), when every order key translated.
    pub order: Option<CompiledOrder>,
}

/// The SQL of an `order_by` list: the runs in order are the runs of each segment in its order,
/// one segment after another.
///
/// An order led by a metric has three segments — the runs with a number for it, those with NaN,
/// those without it — so the first can walk the `(key, is_nan, value)` index in order and stop
/// at the page instead of sorting every run; any other order is one segment.
#[derive(Debug)]
pub(crate) struct CompiledOrder {
    pub segments: Vec<OrderSegment>,
}

/// One segment of an order: the runs that meet `conditions`, sorted by `terms`.
#[derive(Debug, Default, Clone)]
pub(crate) struct OrderSegment {
    /// `JOIN …` and `LEFT JOIN …` clauses, each naming one alias.
    pub joins: Vec<String>,
    /// The values of `joins`, in the order their `?` appear.
    pub join_values: Vec<Value>,
    /// Conditions on `r` that pick the segment's runs.
    pub conditions: Vec<String>,
    /// The values of `conditions`.
    pub condition_values: Vec<Value>,
    /// `ORDER BY` terms (before the tie-break on start time and run id).
    pub terms: Vec<String>,
}

/// Translates what translates exactly. `postgres` selects the dialect: PostgreSQL compares text in
/// its database collation unless told `COLLATE "C"` (bytewise, as SQLite and Rust compare), and
/// its LIKE treats a backslash as an escape unless told `ESCAPE ''`.
pub(crate) fn compile(filter: &[Clause], order_by: &[OrderBy], postgres: bool) -> CompiledSearch {
    let mut compiled = CompiledSearch { whole_filter: true, ..CompiledSearch::default() };
    for clause in filter {
        match clause_sql(clause, postgres) {
            Some((condition, values)) => {
                compiled.conditions.push(condition);
                compiled.condition_values.extend(values);
            }
            None => compiled.whole_filter = false,
        }
    }
    compiled.order = order_sql(order_by, postgres);
    compiled
}

/// The bytewise collation on PostgreSQL; SQLite's default (BINARY) already is.
pub(crate) fn bytewise(postgres: bool) -> &'static str {
    if postgres { " COLLATE \"C\"" } else { "" }
}

fn comparison(operator: Operator) -> Option<&'static str> {
    Some(match operator {
        Operator::Equal => "=",
        Operator::NotEqual => "<>",
        Operator::Less => "<",
        Operator::LessOrEqual => "<=",
        Operator::Greater => ">",
        Operator::GreaterOrEqual => ">=",
        Operator::Like | Operator::ILike | Operator::In | Operator::NotIn | Operator::IsNull | Operator::IsNotNull => {
            return None;
        }
    })
}

/// A run's text attribute and its column.
fn text_column(attribute: &str) -> Option<&'static str> {
    Some(match attribute {
        "run_id" => "r.run_id",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "lifecycle_stage" => "r.lifecycle_stage",
        _ => return None,
    })
}

/// A run's numeric attribute and its column (`finished_ms` may be NULL: a missing value).
fn number_column(attribute: &str) -> Option<&'static str> {
    Some(match attribute {
        "start_time" | "created" => "r.started_ms",
        "end_time" => "r.finished_ms",
        _ => return None,
    })
}

/// `text op ?` for a text value against a text literal, with LIKE as the evaluator means it
/// (case-sensitive, `%` and `_` the only wildcards, no escape character).
fn text_test(column: &str, operator: Operator, literal: &str, postgres: bool) -> Option<(String, Value)> {
    match operator {
        Operator::ILike => None,
        Operator::Like if postgres => Some((format!("{column} LIKE ? ESCAPE ''"), Value::Text(literal.to_string()))),
        // SQLite's LIKE ignores ASCII case; its GLOB is case-sensitive with other wildcards.
        Operator::Like => Some((format!("{column} GLOB ?"), Value::Text(like_as_glob(literal)))),
        operator => {
            let symbol = comparison(operator)?;
            Some((format!("{column}{} {symbol} ?", bytewise(postgres)), Value::Text(literal.to_string())))
        }
    }
}

/// A LIKE pattern as an SQLite GLOB pattern that matches the same strings.
pub(crate) fn like_as_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len() + 4);
    for character in pattern.chars() {
        match character {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '*' => glob.push_str("[*]"),
            '?' => glob.push_str("[?]"),
            '[' => glob.push_str("[[]"),
            other => glob.push(other),
        }
    }
    glob
}

/// The table a parameter's or tag's values live in.
fn key_table(entity: &Entity) -> &'static str {
    if matches!(entity, Entity::Param(_)) { "run_params" } else { "run_tags" }
}

fn clause_sql(clause: &Clause, postgres: bool) -> Option<(String, Vec<Value>)> {
    match (&clause.entity, &clause.literal) {
        (Entity::Metric(key), Literal::Number(number)) if !number.is_nan() => {
            let symbol = comparison(clause.operator)?;
            Some((
                format!(
                    "EXISTS (SELECT 1 FROM run_latest_metrics m WHERE m.run_id = r.run_id AND m.key = ? \
                     AND m.is_nan = 0 AND m.value {symbol} ?)"
                ),
                vec![Value::Text(key.clone()), Value::Real(*number)],
            ))
        }
        (Entity::Param(key) | Entity::Tag(key), Literal::Absent) => {
            let table = key_table(&clause.entity);
            let negation = if clause.operator == Operator::IsNull { "NOT " } else { "" };
            Some((
                format!("{negation}EXISTS (SELECT 1 FROM {table} p WHERE p.run_id = r.run_id AND p.key = ?)"),
                vec![Value::Text(key.clone())],
            ))
        }
        (Entity::Attribute(name), Literal::List(values)) if name == "run_id" => {
            let negation = if clause.operator == Operator::NotIn { "NOT " } else { "" };
            Some((
                format!("r.run_id{} {negation}IN ({})", bytewise(postgres), vec!["?"; values.len()].join(", ")),
                values.iter().cloned().map(Value::Text).collect(),
            ))
        }
        (Entity::Param(key) | Entity::Tag(key), Literal::Text(text)) => {
            let table = key_table(&clause.entity);
            let (test, value) = text_test("p.value", clause.operator, text, postgres)?;
            Some((
                format!("EXISTS (SELECT 1 FROM {table} p WHERE p.run_id = r.run_id AND p.key = ? AND {test})"),
                vec![Value::Text(key.clone()), value],
            ))
        }
        (Entity::Attribute(name), Literal::Text(text)) => {
            let (test, value) = text_test(text_column(name)?, clause.operator, text, postgres)?;
            Some((test, vec![value]))
        }
        (Entity::Attribute(name), Literal::Number(number)) if !number.is_nan() => {
            let column = number_column(name)?;
            let symbol = comparison(clause.operator)?;
            // The evaluator compares the attribute as a float; so does this, on both backends.
            Some((format!("CAST({column} AS DOUBLE PRECISION) {symbol} ?"), vec![Value::Real(*number)]))
        }
        _ => None,
    }
}

fn order_sql(order_by: &[OrderBy], postgres: bool) -> Option<CompiledOrder> {
    let mut rest = OrderSegment::default();
    for (index, clause) in order_by.iter().enumerate().skip(usize::from(leading_metric(order_by).is_some())) {
        let direction = if clause.ascending { "ASC" } else { "DESC" };
        let alias = format!("o{index}");
        match &clause.entity {
            // Missing values last, NaN after every number: in both directions.
            Entity::Metric(key) => {
                rest.joins.push(format!(
                    "LEFT JOIN run_latest_metrics {alias} ON {alias}.run_id = r.run_id AND {alias}.key = ?"
                ));
                rest.join_values.push(Value::Text(key.clone()));
                rest.terms.push(format!("({alias}.run_id IS NULL)"));
                rest.terms.push(format!("{alias}.is_nan"));
                rest.terms.push(format!("{alias}.value {direction}"));
            }
            Entity::Param(key) | Entity::Tag(key) => {
                let table = key_table(&clause.entity);
                rest.joins.push(format!("LEFT JOIN {table} {alias} ON {alias}.run_id = r.run_id AND {alias}.key = ?"));
                rest.join_values.push(Value::Text(key.clone()));
                rest.terms.push(format!("({alias}.run_id IS NULL)"));
                rest.terms.push(format!("{alias}.value{} {direction}", bytewise(postgres)));
            }
            Entity::Attribute(name) => {
                if let Some(column) = text_column(name) {
                    rest.terms.push(format!("{column}{} {direction}", bytewise(postgres)));
                } else if let Some(column) = number_column(name) {
                    rest.terms.push(format!("({column} IS NULL)"));
                    rest.terms.push(format!("{column} {direction}"));
                } else if name == "experiment_id" {
                    // The evaluator orders experiment ids as text.
                    return None;
                }
                // Any other attribute has no value on any run: it orders nothing.
            }
            // Datasets order nothing (order_by refuses them); left to the evaluator all the same.
            Entity::Dataset(_) => return None,
        }
    }
    let Some((key, ascending)) = leading_metric(order_by) else {
        return Some(CompiledOrder { segments: vec![rest] });
    };
    let direction = if ascending { "ASC" } else { "DESC" };
    // NaN is stored as 0.0 beside is_nan = 1, so the NaN runs tie on the value.
    let with_metric = |is_nan: i64, terms: Vec<String>| {
        let mut segment = OrderSegment {
            joins: vec![format!(
                "JOIN run_latest_metrics o0 ON o0.run_id = r.run_id AND o0.key = ? AND o0.is_nan = {is_nan}"
            )],
            join_values: vec![Value::Text(key.to_string())],
            terms,
            ..OrderSegment::default()
        };
        segment.joins.extend(rest.joins.iter().cloned());
        segment.join_values.extend(rest.join_values.iter().cloned());
        segment.terms.extend(rest.terms.iter().cloned());
        segment
    };
    let numbers = with_metric(0, vec![format!("o0.value {direction}")]);
    let not_a_number = with_metric(1, Vec::new());
    let mut missing = rest;
    missing
        .conditions
        .push("NOT EXISTS (SELECT 1 FROM run_latest_metrics m WHERE m.run_id = r.run_id AND m.key = ?)".into());
    missing.condition_values.push(Value::Text(key.to_string()));
    Some(CompiledOrder { segments: vec![numbers, not_a_number, missing] })
}

/// The metric key and direction an order begins with, if it begins with a metric.
fn leading_metric(order_by: &[OrderBy]) -> Option<(&str, bool)> {
    match order_by.first() {
        Some(OrderBy { entity: Entity::Metric(key), ascending }) => Some((key.as_str(), *ascending)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{parse_filter, parse_order_by};

    #[test]
    fn like_patterns_become_globs_that_match_the_same_strings() {
        assert_eq!(like_as_glob("gb%"), "gb*");
        assert_eq!(like_as_glob("a_c"), "a?c");
        assert_eq!(like_as_glob("*?[x]"), "[*][?][[]x]");
    }

    #[test]
    fn only_exact_translations_reach_the_sql() {
        let filter =
            parse_filter("params.model = 'gbdt' and tags.team ILIKE 'risk' and metrics.rmse < 1").expect("valid");
        let compiled = compile(&filter, &[], false);
        assert_eq!(compiled.conditions.len(), 2, "ILIKE is judged in memory: {:?}", compiled.conditions);
        assert!(!compiled.whole_filter);
        assert_eq!(compiled.condition_values.len(), 4);
        let order = parse_order_by(&["metrics.rmse DESC".to_string(), "params.model".to_string()]).expect("valid");
        let compiled = compile(&[], &order, true);
        assert!(compiled.whole_filter);
        let order = compiled.order.expect("translates");
        // Numbers, NaN, missing: the first two join the metric, each segment the parameter.
        assert_eq!(order.segments.len(), 3);
        assert_eq!(order.segments.iter().map(|segment| segment.joins.len()).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(order.segments[0].terms[0], "o0.value DESC");
        assert_eq!(order.segments[2].conditions.len(), 1, "the missing segment: {:?}", order.segments[2]);
        for segment in &order.segments {
            assert!(segment.terms.iter().any(|term| term == "o1.value COLLATE \"C\" ASC"), "{:?}", segment.terms);
        }
        let by_parameter = parse_order_by(&["params.model DESC".to_string()]).expect("valid");
        assert_eq!(compile(&[], &by_parameter, false).order.expect("translates").segments.len(), 1);
        let by_experiment = parse_order_by(&["attributes.experiment_id".to_string()]).expect("valid");
        assert!(compile(&[], &by_experiment, false).order.is_none());
    }
}
