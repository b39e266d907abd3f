//! MLflow's search syntax for runs: `metrics.rmse < 1 and params.model = 'gbdt'`, and `order_by`
//! clauses such as `metrics.rmse DESC`. Parsed once, evaluated on loaded runs.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::tracking::TrackedRun;

/// What a clause looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// A metric's latest value.
    Metric(String),
    /// A parameter.
    Param(String),
    /// A tag.
    Tag(String),
    /// A run attribute (`status`, `run_name`, `run_id`, `start_time`, `end_time`, `user_id`, …).
    Attribute(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `LIKE` (case-sensitive, `%` and `_` wildcards)
    Like,
    /// `ILIKE` (case-insensitive)
    ILike,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
}

/// One `entity op literal` clause; a filter is their conjunction.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// Left side.
    pub entity: Entity,
    /// Operator.
    pub operator: Operator,
    /// Right side.
    pub literal: Literal,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Operator(Operator),
}

/// A token as the person wrote it, for error messages (`the end of the filter` when there is none).
fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the filter".into(),
        Some(Token::Word(word)) => format!("`{word}`"),
        Some(Token::Quoted(text)) => format!("'{text}'"),
        Some(Token::Operator(operator)) => format!(
            "`{}`",
            match operator {
                Operator::Equal => "=",
                Operator::NotEqual => "!=",
                Operator::Less => "<",
                Operator::LessOrEqual => "<=",
                Operator::Greater => ">",
                Operator::GreaterOrEqual => ">=",
                Operator::Like => "LIKE",
                Operator::ILike => "ILIKE",
            }
        ),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let characters: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        if character.is_whitespace() {
            index += 1;
        } else if matches!(character, '\'' | '"' | '`') {
            let end = characters[index + 1..]
                .iter()
                .position(|candidate| *candidate == character)
                .ok_or_else(|| Error::InvalidValue(format!("unterminated {character} quote in filter `{text}`")))?;
            tokens.push(Token::Quoted(characters[index + 1..index + 1 + end].iter().collect()));
            index += end + 2;
        } else if matches!(character, '=' | '!' | '<' | '>') {
            let next = characters.get(index + 1).copied();
            let (operator, width) = match (character, next) {
                ('!', Some('=')) => (Operator::NotEqual, 2),
                ('<', Some('=')) => (Operator::LessOrEqual, 2),
                ('>', Some('=')) => (Operator::GreaterOrEqual, 2),
                ('=', Some('=')) => (Operator::Equal, 2),
                ('=', _) => (Operator::Equal, 1),
                ('<', _) => (Operator::Less, 1),
                ('>', _) => (Operator::Greater, 1),
                _ => return Err(Error::InvalidValue(format!("unexpected `{character}` in filter `{text}`"))),
            };
            tokens.push(Token::Operator(operator));
            index += width;
        } else {
            let start = index;
            while index < characters.len()
                && !characters[index].is_whitespace()
                && !matches!(characters[index], '\'' | '"' | '`' | '=' | '!' | '<' | '>')
            {
                index += 1;
            }
            tokens.push(Token::Word(characters[start..index].iter().collect()));
        }
    }
    Ok(tokens)
}

fn entity(prefix: &str, key: String, text: &str) -> Result<Entity> {
    match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Ok(Entity::Metric(key)),
        "param" | "params" | "parameter" | "parameters" => Ok(Entity::Param(key)),
        "tag" | "tags" => Ok(Entity::Tag(key)),
        "attribute" | "attributes" | "attr" | "run" => Ok(Entity::Attribute(normalize_attribute(&key))),
        other => Err(Error::InvalidValue(format!(
            "invalid identifier type `{other}` in `{text}`: use metrics., params., tags. or attributes."
        ))),
    }
}

fn normalize_attribute(key: &str) -> String {
    match key {
        "run_uuid" | "id" => "run_id".into(),
        "name" | "runName" => "run_name".into(),
        other => other.to_string(),
    }
}

/// Reads an identifier starting at `tokens[index]`; returns it and the next index.
fn identifier(tokens: &[Token], index: usize, text: &str) -> Result<(Entity, usize)> {
    match tokens.get(index) {
        Some(Token::Word(word)) => {
            if let Some(prefix) = word.strip_suffix('.') {
                match tokens.get(index + 1) {
                    Some(Token::Quoted(key)) => Ok((entity(prefix, key.clone(), text)?, index + 2)),
                    _ => Err(Error::InvalidValue(format!("expected a key after `{word}` in `{text}`"))),
                }
            } else if let Some((prefix, key)) = word.split_once('.') {
                Ok((entity(prefix, key.to_string(), text)?, index + 1))
            } else {
                Ok((Entity::Attribute(normalize_attribute(word)), index + 1))
            }
        }
        other => Err(Error::InvalidValue(format!("expected an identifier in `{text}`, found {}", describe(other)))),
    }
}

/// Parses a filter; an empty filter has no clauses.
pub fn parse_filter(text: &str) -> Result<Vec<Clause>> {
    let tokens = tokenize(text)?;
    let mut clauses = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        let (entity, next) = identifier(&tokens, index, text)?;
        let operator = match tokens.get(next) {
            Some(Token::Operator(operator)) => *operator,
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("like") => Operator::Like,
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("ilike") => Operator::ILike,
            other => {
                return Err(Error::InvalidValue(format!(
                    "expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE) in `{text}`, found {}",
                    describe(other)
                )));
            }
        };
        let literal = match tokens.get(next + 1) {
            Some(Token::Quoted(value)) => Literal::Text(value.clone()),
            Some(Token::Word(word)) => Literal::Number(word.parse::<f64>().map_err(|_| {
                Error::InvalidValue(format!("`{word}` is neither a number nor a quoted string in `{text}`"))
            })?),
            other => {
                return Err(Error::InvalidValue(format!(
                    "expected a number or a quoted string in `{text}`, found {}",
                    describe(other)
                )));
            }
        };
        if matches!(entity, Entity::Metric(_)) && !matches!(literal, Literal::Number(_)) {
            return Err(Error::InvalidValue(format!("metrics compare with numbers, in `{text}`")));
        }
        clauses.push(Clause { entity, operator, literal });
        index = next + 2;
        match tokens.get(index) {
            None => {}
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("and") => index += 1,
            Some(other) => {
                return Err(Error::InvalidValue(format!("expected AND in `{text}`, found {}", describe(Some(other)))));
            }
        }
    }
    Ok(clauses)
}

/// Something the search syntax can look into.
pub trait Searchable {
    /// The value of `entity`, if it has one.
    fn value_of(&self, entity: &Entity) -> Option<Literal>;
}

impl Searchable for crate::tracking::Experiment {
    fn value_of(&self, entity: &Entity) -> Option<Literal> {
        match entity {
            Entity::Tag(key) => self.tags.get(key).cloned().map(Literal::Text),
            Entity::Attribute(name) => match name.as_str() {
                "run_name" | "name" => Some(Literal::Text(self.name.clone())),
                "run_id" | "experiment_id" => Some(Literal::Text(self.experiment_id.clone())),
                "creation_time" | "start_time" => Some(Literal::Number(self.creation_time as f64)),
                "last_update_time" => Some(Literal::Number(self.last_update_time as f64)),
                "lifecycle_stage" => Some(Literal::Text(self.lifecycle_stage.clone())),
                _ => None,
            },
            Entity::Metric(_) | Entity::Param(_) => None,
        }
    }
}

impl Searchable for crate::registry::RegisteredModel {
    fn value_of(&self, entity: &Entity) -> Option<Literal> {
        match entity {
            Entity::Tag(key) => self.tags.get(key).cloned().map(Literal::Text),
            Entity::Attribute(name) => match name.as_str() {
                "run_name" | "name" => Some(Literal::Text(self.name.clone())),
                "creation_time" | "creation_timestamp" => Some(Literal::Number(self.creation_time as f64)),
                "last_updated_time" | "last_updated_timestamp" => Some(Literal::Number(self.last_updated_time as f64)),
                _ => None,
            },
            Entity::Metric(_) | Entity::Param(_) => None,
        }
    }
}

impl Searchable for crate::registry::RegistryVersion {
    fn value_of(&self, entity: &Entity) -> Option<Literal> {
        match entity {
            Entity::Tag(key) => self.tags.get(key).cloned().map(Literal::Text),
            Entity::Attribute(name) => match name.as_str() {
                "run_name" | "name" => Some(Literal::Text(self.name.clone())),
                "run_id" => Some(Literal::Text(self.run_id.clone())),
                "source" | "source_path" => Some(Literal::Text(self.source.clone())),
                "version" | "version_number" => Some(Literal::Number(f64::from(self.version))),
                "creation_time" | "creation_timestamp" => Some(Literal::Number(self.creation_time as f64)),
                "last_updated_time" | "last_updated_timestamp" => Some(Literal::Number(self.last_updated_time as f64)),
                _ => None,
            },
            Entity::Metric(_) | Entity::Param(_) => None,
        }
    }
}

impl Searchable for crate::logged_models::LoggedModel {
    fn value_of(&self, entity: &Entity) -> Option<Literal> {
        match entity {
            Entity::Tag(key) => self.tags.get(key).cloned().map(Literal::Text),
            Entity::Param(key) => self.params.get(key).cloned().map(Literal::Text),
            Entity::Attribute(name) => match name.as_str() {
                "run_name" | "name" => Some(Literal::Text(self.name.clone())),
                "model_id" | "run_id" => Some(Literal::Text(self.model_id.clone())),
                "source_run_id" => Some(Literal::Text(self.source_run_id.clone())),
                "model_type" => Some(Literal::Text(self.model_type.clone())),
                "status" => Some(Literal::Text(self.status.clone())),
                "creation_time" | "creation_timestamp" => Some(Literal::Number(self.creation_time as f64)),
                "last_updated_timestamp" => Some(Literal::Number(self.last_updated_time as f64)),
                _ => None,
            },
            Entity::Metric(_) => None,
        }
    }
}

/// Filters and sorts registered models as MLflow's registry does: the 3.x client's
/// ``tag.`mlflow.prompt.is_prompt` != 'true'`` also keeps models without that tag (MLflow treats
/// this one tag so; any other absent tag matches nothing); `order_by` first, then by name.
pub fn search_registered_models(
    models: Vec<crate::registry::RegisteredModel>,
    filter: &[Clause],
    order_by: &[OrderBy],
) -> Vec<crate::registry::RegisteredModel> {
    search_with(models, filter, order_by, true, |left, right| left.name.cmp(&right.name))
}

/// Filters and sorts model versions as MLflow's registry does (the prompt tag as for models);
/// `order_by` first, by default the most recently updated, then by name and newest
/// version.
pub fn search_model_versions(
    versions: Vec<crate::registry::RegistryVersion>,
    filter: &[Clause],
    order_by: &[OrderBy],
) -> Vec<crate::registry::RegistryVersion> {
    let default = [OrderBy { entity: Entity::Attribute("last_updated_timestamp".into()), ascending: false }];
    let order_by = if order_by.is_empty() { &default[..] } else { order_by };
    search_with(versions, filter, order_by, true, |left, right| {
        left.name.cmp(&right.name).then_with(|| right.version.cmp(&left.version))
    })
}

/// Filters and sorts logged models, keeping their order on ties.
pub fn search_registry<T: Searchable>(items: Vec<T>, filter: &[Clause], order_by: &[OrderBy]) -> Vec<T> {
    search(items, filter, order_by, |_, _| Ordering::Equal)
}

impl Searchable for TrackedRun {
    fn value_of(&self, entity: &Entity) -> Option<Literal> {
        value_of(self, entity)
    }
}

/// A value of a run for an entity.
fn value_of(run: &TrackedRun, entity: &Entity) -> Option<Literal> {
    match entity {
        Entity::Metric(key) => run.metrics.get(key).map(|point| Literal::Number(point.value)),
        Entity::Param(key) => run.params.get(key).cloned().map(Literal::Text),
        Entity::Tag(key) => run.tags.get(key).cloned().map(Literal::Text),
        Entity::Attribute(name) => match name.as_str() {
            "run_id" => Some(Literal::Text(run.run_id.clone())),
            "run_name" => Some(Literal::Text(run.run_name.clone())),
            "status" => Some(Literal::Text(run.status.as_str().to_string())),
            "user_id" => Some(Literal::Text(run.user_id.clone())),
            "artifact_uri" => Some(Literal::Text(run.artifact_uri.clone())),
            "lifecycle_stage" => Some(Literal::Text(run.lifecycle_stage.clone())),
            "experiment_id" => Some(Literal::Text(run.experiment_id.clone())),
            "start_time" | "created" => Some(Literal::Number(run.start_time as f64)),
            "end_time" => run.end_time.map(|time| Literal::Number(time as f64)),
            _ => None,
        },
    }
}

/// SQL LIKE with `%` (any run) and `_` (one character).
fn like(value: &str, pattern: &str) -> bool {
    fn matches(value: &[char], pattern: &[char]) -> bool {
        match pattern.split_first() {
            None => value.is_empty(),
            Some(('%', rest)) => (0..=value.len()).any(|skip| matches(&value[skip..], rest)),
            Some(('_', rest)) => !value.is_empty() && matches(&value[1..], rest),
            Some((first, rest)) => value.first() == Some(first) && matches(&value[1..], rest),
        }
    }
    let value: Vec<char> = value.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches(&value, &pattern)
}

fn compare(left: &Literal, right: &Literal) -> Option<Ordering> {
    match (left, right) {
        (Literal::Number(left), Literal::Number(right)) => left.partial_cmp(right),
        (Literal::Text(left), Literal::Text(right)) => Some(left.cmp(right)),
        (Literal::Number(left), Literal::Text(right)) => {
            right.parse::<f64>().ok().and_then(|right| left.partial_cmp(&right))
        }
        (Literal::Text(left), Literal::Number(right)) => {
            left.parse::<f64>().ok().and_then(|left| left.partial_cmp(right))
        }
    }
}

/// The tag MLflow's client uses to tell prompts from models in the registry.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

impl Clause {
    /// True when the item satisfies the clause (a missing value never does).
    pub fn matches(&self, item: &impl Searchable) -> bool {
        self.matches_with(item, false)
    }

    /// [`Clause::matches`], where with `absent_differs` a missing prompt tag satisfies `!=`.
    fn matches_with(&self, item: &impl Searchable, absent_differs: bool) -> bool {
        let Some(value) = item.value_of(&self.entity) else {
            return absent_differs
                && self.operator == Operator::NotEqual
                && matches!(&self.entity, Entity::Tag(key) if key == PROMPT_TAG);
        };
        match self.operator {
            Operator::Like | Operator::ILike => match (&value, &self.literal) {
                (Literal::Text(value), Literal::Text(pattern)) if self.operator == Operator::Like => {
                    like(value, pattern)
                }
                (Literal::Text(value), Literal::Text(pattern)) => like(&value.to_lowercase(), &pattern.to_lowercase()),
                _ => false,
            },
            operator => compare(&value, &self.literal).is_some_and(|ordering| match operator {
                Operator::Equal => ordering == Ordering::Equal,
                Operator::NotEqual => ordering != Ordering::Equal,
                Operator::Less => ordering == Ordering::Less,
                Operator::LessOrEqual => ordering != Ordering::Greater,
                Operator::Greater => ordering == Ordering::Greater,
                Operator::GreaterOrEqual => ordering != Ordering::Less,
                Operator::Like | Operator::ILike => false,
            }),
        }
    }
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// What to sort by.
    pub entity: Entity,
    /// Ascending (default) or descending.
    pub ascending: bool,
}

/// Parses `order_by` clauses such as `metrics.rmse DESC` or `start_time`.
pub fn parse_order_by(clauses: &[String]) -> Result<Vec<OrderBy>> {
    clauses
        .iter()
        .map(|clause| {
            let tokens = tokenize(clause)?;
            let (entity, next) = identifier(&tokens, 0, clause)?;
            let ascending = match tokens.get(next) {
                None => true,
                Some(Token::Word(word)) if word.eq_ignore_ascii_case("asc") => true,
                Some(Token::Word(word)) if word.eq_ignore_ascii_case("desc") => false,
                Some(other) => {
                    return Err(Error::InvalidValue(format!(
                        "expected ASC or DESC in order_by `{clause}`, found {}",
                        describe(Some(other))
                    )));
                }
            };
            Ok(OrderBy { entity, ascending })
        })
        .collect()
}

/// Filters and sorts runs: the `order_by` clauses first (missing values last), then start time
/// (newest first), then run id.
pub fn search_runs(runs: Vec<TrackedRun>, filter: &[Clause], order_by: &[OrderBy]) -> Vec<TrackedRun> {
    search(runs, filter, order_by, |left, right| {
        right.start_time.cmp(&left.start_time).then_with(|| left.run_id.cmp(&right.run_id))
    })
}

/// Filters and sorts experiments as MLflow does: the `order_by` clauses first (by default the
/// newest created), then by id.
pub fn search_experiments(
    experiments: Vec<crate::tracking::Experiment>,
    filter: &[Clause],
    order_by: &[OrderBy],
) -> Vec<crate::tracking::Experiment> {
    let default = [OrderBy { entity: Entity::Attribute("creation_time".into()), ascending: false }];
    let order_by = if order_by.is_empty() { &default[..] } else { order_by };
    search(experiments, filter, order_by, |left, right| {
        let id = |experiment: &crate::tracking::Experiment| experiment.experiment_id.parse::<i64>().unwrap_or(i64::MAX);
        id(left).cmp(&id(right))
    })
}

fn search<T: Searchable>(
    items: Vec<T>,
    filter: &[Clause],
    order_by: &[OrderBy],
    tiebreak: impl Fn(&T, &T) -> Ordering,
) -> Vec<T> {
    search_with(items, filter, order_by, false, tiebreak)
}

fn search_with<T: Searchable>(
    mut items: Vec<T>,
    filter: &[Clause],
    order_by: &[OrderBy],
    absent_differs: bool,
    tiebreak: impl Fn(&T, &T) -> Ordering,
) -> Vec<T> {
    items.retain(|item| filter.iter().all(|clause| clause.matches_with(item, absent_differs)));
    items.sort_by(|left, right| {
        for order in order_by {
            let ordering = match (left.value_of(&order.entity), right.value_of(&order.entity)) {
                (Some(a), Some(b)) => {
                    let directed = |ordering: Ordering| if order.ascending { ordering } else { ordering.reverse() };
                    match (&a, &b) {
                        // A total order, as sorting needs: NaN after every number and before
                        // missing values, in both directions (as MLflow orders them).
                        (Literal::Number(a), Literal::Number(b)) => match (a.is_nan(), b.is_nan()) {
                            (false, false) => directed(a.total_cmp(b)),
                            (true, true) => Ordering::Equal,
                            (true, false) => Ordering::Greater,
                            (false, true) => Ordering::Less,
                        },
                        _ => directed(compare(&a, &b).unwrap_or(Ordering::Equal)),
                    }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        tiebreak(left, right)
    });
    items
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use causeway_types::RunStatus;

    use super::*;

    #[test]
    fn malformed_filters_say_what_they_found_as_written() {
        let message = |filter: &str| parse_filter(filter).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message("metrics.rmse <").ends_with("found the end of the filter"), "{}", message("metrics.rmse <"));
        assert!(message("metrics.rmse 0.5").contains("found `0.5`"), "{}", message("metrics.rmse 0.5"));
        assert!(message("params.a = 'x' params.b = 'y'").contains("expected AND"));
        assert!(message("params.a = 'x' or params.b = 'y'").contains("found `or`"));
        assert!(!message("metrics.rmse <").contains("None"), "no Rust debug output in messages");
    }
    use crate::tracking::MetricPoint;

    fn run(id: &str, start: i64, rmse: Option<f64>, model: &str) -> TrackedRun {
        TrackedRun {
            run_id: id.into(),
            run_name: format!("name-{id}"),
            experiment_id: "0".into(),
            user_id: "ada".into(),
            status: RunStatus::Finished,
            start_time: start,
            end_time: None,
            artifact_uri: String::new(),
            lifecycle_stage: "active".into(),
            metrics: rmse
                .map(|value| ("rmse".to_string(), MetricPoint { value, timestamp: 0, step: 0 }))
                .into_iter()
                .collect(),
            params: BTreeMap::from([("model".to_string(), model.to_string())]),
            tags: BTreeMap::from([("team".to_string(), "Risk".to_string())]),
            inputs: Vec::new(),
            outputs: Vec::new(),
            model_inputs: Vec::new(),
        }
    }

    #[test]
    fn parses_the_documented_syntax() {
        let clauses = parse_filter("metrics.rmse < 1 and params.model = 'gbdt' AND tags.`user name` != \"x\" and attributes.status = 'FINISHED'")
            .expect("valid");
        assert_eq!(clauses.len(), 4);
        assert_eq!(
            clauses[0],
            Clause { entity: Entity::Metric("rmse".into()), operator: Operator::Less, literal: Literal::Number(1.0) }
        );
        assert_eq!(clauses[2].entity, Entity::Tag("user name".into()));
        assert!(parse_filter("").expect("empty").is_empty());
        for bad in
            ["metrics.rmse <", "metrics.rmse = 'x'", "foo.bar = 1", "params.a = 'x' or params.b = 'y'", "params.a = 'x"]
        {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_and_orders_like_mlflow() {
        let runs = vec![
            run("a", 1, Some(0.5), "gbdt"),
            run("b", 2, Some(1.5), "gbdt"),
            run("c", 3, None, "linear"),
            run("d", 4, Some(0.2), "linear"),
        ];
        let filter = parse_filter("metrics.rmse < 1").expect("valid");
        let ids = |runs: Vec<TrackedRun>| runs.into_iter().map(|run| run.run_id).collect::<Vec<_>>();
        assert_eq!(ids(search_runs(runs.clone(), &filter, &[])), ["d", "a"], "default order: newest first");
        let order = parse_order_by(&["metrics.rmse DESC".to_string()]).expect("valid");
        assert_eq!(ids(search_runs(runs.clone(), &[], &order)), ["b", "a", "d", "c"], "missing values last");
        let filter = parse_filter("params.model LIKE 'gb%' and tags.team ILIKE 'risk'").expect("valid");
        assert_eq!(
            ids(search_runs(runs.clone(), &filter, &parse_order_by(&["start_time".into()]).expect("valid"))),
            ["a", "b"]
        );
        let filter = parse_filter("attributes.run_name = 'name-c'").expect("valid");
        assert_eq!(ids(search_runs(runs, &filter, &[])), ["c"]);
    }
}
