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
    /// A dataset the run read (`name`, `digest`, or `context`, its `mlflow.data.context` input
    /// tag): a clause holds when it holds for any of them.
    Dataset(String),
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
    /// `IN ('a', 'b')`
    In,
    /// `NOT IN ('a', 'b')`
    NotIn,
    /// `IS NULL`: the run has no such parameter or tag.
    IsNull,
    /// `IS NOT NULL`: the run has the parameter or tag.
    IsNotNull,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A parenthesized list of strings, for `IN` and `NOT IN`.
    List(Vec<String>),
    /// No right-hand side (`IS NULL`, `IS NOT NULL`).
    Absent,
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
    /// `(`, `)` or `,`.
    Punctuation(char),
}

impl Operator {
    /// The operator as a filter spells it.
    fn as_str(self) -> &'static str {
        match self {
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
            Operator::Like => "LIKE",
            Operator::ILike => "ILIKE",
            Operator::In => "IN",
            Operator::NotIn => "NOT IN",
            Operator::IsNull => "IS NULL",
            Operator::IsNotNull => "IS NOT NULL",
        }
    }
}

/// A token as the person wrote it, for error messages (`the end of the filter` when there is none).
fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the filter".into(),
        Some(Token::Word(word)) => format!("`{word}`"),
        Some(Token::Quoted(text)) => format!("'{text}'"),
        Some(Token::Operator(operator)) => format!("`{}`", operator.as_str()),
        Some(Token::Punctuation(character)) => format!("`{character}`"),
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
        } else if matches!(character, '(' | ')' | ',') {
            tokens.push(Token::Punctuation(character));
            index += 1;
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
                && !matches!(characters[index], '\'' | '"' | '`' | '=' | '!' | '<' | '>' | '(' | ')' | ',')
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
        "dataset" | "datasets" => match key.as_str() {
            "name" | "digest" | "context" => Ok(Entity::Dataset(key)),
            other => Err(Error::InvalidValue(format!(
                "invalid dataset key `{other}` in `{text}`: datasets have name, digest and context"
            ))),
        },
        other => Err(Error::InvalidValue(format!(
            "invalid identifier type `{other}` in `{text}`: use metrics., params., tags., attributes. or datasets."
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
        let word = |at: usize, expected: &str| matches!(tokens.get(at), Some(Token::Word(word)) if word.eq_ignore_ascii_case(expected));
        let (operator, next) = match tokens.get(next) {
            Some(Token::Operator(operator)) => (*operator, next + 1),
            _ if word(next, "like") => (Operator::Like, next + 1),
            _ if word(next, "ilike") => (Operator::ILike, next + 1),
            _ if word(next, "in") => (Operator::In, next + 1),
            _ if word(next, "not") && word(next + 1, "in") => (Operator::NotIn, next + 2),
            _ if word(next, "is") && word(next + 1, "null") => (Operator::IsNull, next + 2),
            _ if word(next, "is") && word(next + 1, "not") && word(next + 2, "null") => (Operator::IsNotNull, next + 3),
            other => {
                return Err(Error::InvalidValue(format!(
                    "expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL) \
                     in `{text}`, found {}",
                    describe(other)
                )));
            }
        };
        let (literal, next) = match operator {
            Operator::IsNull | Operator::IsNotNull => (Literal::Absent, next),
            Operator::In | Operator::NotIn => list(&tokens, next, text)?,
            _ => match tokens.get(next) {
                Some(Token::Quoted(value)) => (Literal::Text(value.clone()), next + 1),
                Some(Token::Word(word)) => (
                    Literal::Number(word.parse::<f64>().map_err(|_| {
                        Error::InvalidValue(format!("`{word}` is neither a number nor a quoted string in `{text}`"))
                    })?),
                    next + 1,
                ),
                other => {
                    return Err(Error::InvalidValue(format!(
                        "expected a number or a quoted string in `{text}`, found {}",
                        describe(other)
                    )));
                }
            },
        };
        check_comparison(&entity, operator, &literal, text)?;
        if matches!(entity, Entity::Metric(_)) && !matches!(literal, Literal::Number(_)) {
            return Err(Error::InvalidValue(format!("metrics compare with numbers, in `{text}`")));
        }
        clauses.push(Clause { entity, operator, literal });
        index = next;
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

/// Reads `('a', 'b', …)` starting at `tokens[index]`; returns it and the next index.
fn list(tokens: &[Token], index: usize, text: &str) -> Result<(Literal, usize)> {
    let expected = |found: Option<&Token>, what: &str| {
        Error::InvalidValue(format!("expected {what} in the list in `{text}`, found {}", describe(found)))
    };
    if tokens.get(index) != Some(&Token::Punctuation('(')) {
        return Err(expected(tokens.get(index), "`(` opening a list of quoted strings"));
    }
    let (mut values, mut at) = (Vec::new(), index + 1);
    loop {
        match tokens.get(at) {
            Some(Token::Quoted(value)) => values.push(value.clone()),
            other => return Err(expected(other, "a quoted string")),
        }
        match tokens.get(at + 1) {
            Some(Token::Punctuation(',')) => at += 2,
            Some(Token::Punctuation(')')) => return Ok((Literal::List(values), at + 2)),
            other => return Err(expected(other, "`,` or `)`")),
        }
    }
}

/// Rejects the comparisons MLflow rejects, saying what would work: lists only for run ids and
/// datasets, `IS [NOT] NULL` only for parameters and tags, datasets only by text.
fn check_comparison(entity: &Entity, operator: Operator, literal: &Literal, text: &str) -> Result<()> {
    let refuse = |message: String| Err(Error::InvalidValue(format!("{message}, in `{text}`")));
    match (entity, operator) {
        (Entity::Param(_) | Entity::Tag(_), Operator::IsNull | Operator::IsNotNull) => Ok(()),
        (_, Operator::IsNull | Operator::IsNotNull) => {
            refuse("IS NULL and IS NOT NULL test parameters and tags only".to_string())
        }
        (Entity::Attribute(name), Operator::In | Operator::NotIn) if name == "run_id" => Ok(()),
        (Entity::Dataset(_), Operator::In | Operator::NotIn) => Ok(()),
        (_, Operator::In | Operator::NotIn) => {
            refuse("only attributes.run_id and datasets.name, digest and context compare with a list".to_string())
        }
        (Entity::Dataset(_), Operator::Equal | Operator::NotEqual | Operator::Like | Operator::ILike)
            if matches!(literal, Literal::Text(_)) =>
        {
            Ok(())
        }
        (Entity::Dataset(key), _) => {
            refuse(format!("datasets.{key} compares with =, !=, LIKE, ILIKE, IN or NOT IN and a quoted string"))
        }
        _ => Ok(()),
    }
}

/// Something the search syntax can look into.
pub trait Searchable {
    /// The value of `entity`, if it has one.
    fn value_of(&self, entity: &Entity) -> Option<Literal>;

    /// The values of a dataset key over the datasets the item read (none by default).
    fn dataset_values(&self, _key: &str) -> Vec<String> {
        Vec::new()
    }
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
            Entity::Metric(_) | Entity::Param(_) | Entity::Dataset(_) => None,
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
            Entity::Metric(_) | Entity::Param(_) | Entity::Dataset(_) => None,
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
            Entity::Metric(_) | Entity::Param(_) | Entity::Dataset(_) => None,
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
            Entity::Metric(_) | Entity::Dataset(_) => None,
        }
    }
}

/// Filters and sorts registered models as MLflow's registry does: prompts (the
/// `mlflow.prompt.is_prompt = 'true'` tag) only when the filter asks for them, models otherwise
/// (see [`PromptsApart`]); `order_by` first, then by name.
pub fn search_registered_models(
    models: Vec<crate::registry::RegisteredModel>,
    filter: &[Clause],
    order_by: &[OrderBy],
) -> Vec<crate::registry::RegisteredModel> {
    search_with(models, filter, order_by, true, |left, right| left.name.cmp(&right.name))
}

/// Filters and sorts model versions as MLflow's registry does (prompt versions apart, as for
/// models);
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

    fn dataset_values(&self, key: &str) -> Vec<String> {
        self.inputs
            .iter()
            .flat_map(|input| match key {
                "name" => vec![input.name.clone()],
                "digest" => vec![input.digest.clone()],
                _ => input
                    .tags
                    .iter()
                    .filter(|(tag, _)| tag == DATASET_CONTEXT_TAG)
                    .map(|(_, value)| value.clone())
                    .collect(),
            })
            .collect()
    }
}

/// The input tag MLflow's client records a dataset's role in (`training`, `eval`, …) under.
const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

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
        Entity::Dataset(_) => None,
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
        (Literal::List(_) | Literal::Absent, _) | (_, Literal::List(_) | Literal::Absent) => None,
    }
}

/// The tag MLflow's client uses to tell prompts from models in the registry.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

impl Clause {
    /// True when the item satisfies the clause (a missing value never does, but `IS NULL`).
    pub fn matches(&self, item: &impl Searchable) -> bool {
        if let Entity::Dataset(key) = &self.entity {
            return item.dataset_values(key).into_iter().any(|value| self.holds_for(&Literal::Text(value)));
        }
        let value = item.value_of(&self.entity);
        match (self.operator, value) {
            (Operator::IsNull, value) => value.is_none(),
            (Operator::IsNotNull, value) => value.is_some(),
            (_, None) => false,
            (_, Some(value)) => self.holds_for(&value),
        }
    }

    /// Whether a value the item has satisfies the clause.
    fn holds_for(&self, value: &Literal) -> bool {
        match (self.operator, value, &self.literal) {
            (Operator::Like, Literal::Text(value), Literal::Text(pattern)) => like(value, pattern),
            (Operator::ILike, Literal::Text(value), Literal::Text(pattern)) => {
                like(&value.to_lowercase(), &pattern.to_lowercase())
            }
            (Operator::In, Literal::Text(value), Literal::List(values)) => values.contains(value),
            (Operator::NotIn, Literal::Text(value), Literal::List(values)) => !values.contains(value),
            (
                Operator::Like
                | Operator::ILike
                | Operator::In
                | Operator::NotIn
                | Operator::IsNull
                | Operator::IsNotNull,
                _,
                _,
            ) => false,
            (operator, value, literal) => compare(value, literal).is_some_and(|ordering| match operator {
                Operator::Equal => ordering == Ordering::Equal,
                Operator::NotEqual => ordering != Ordering::Equal,
                Operator::Less => ordering == Ordering::Less,
                Operator::LessOrEqual => ordering != Ordering::Greater,
                Operator::Greater => ordering == Ordering::Greater,
                Operator::GreaterOrEqual => ordering != Ordering::Less,
                Operator::Like
                | Operator::ILike
                | Operator::In
                | Operator::NotIn
                | Operator::IsNull
                | Operator::IsNotNull => false,
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
            if matches!(entity, Entity::Dataset(_)) {
                return Err(Error::InvalidValue(format!("datasets do not order runs, in order_by `{clause}`")));
            }
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

/// MLflow's registry keeps prompts apart from models: a search answers prompts only when its
/// filter asks for them (its first clause on the prompt tag is `= 'true'` or `!= 'false'`, in
/// any case), and otherwise answers only what is not a prompt, ignoring its clauses on the tag —
/// the 3.x client's ``tag.`mlflow.prompt.is_prompt` != 'true'`` keeps models that lack the tag.
struct PromptsApart {
    asks_for_prompts: bool,
}

impl PromptsApart {
    fn of(filter: &[Clause]) -> Self {
        let asks_for_prompts =
            filter.iter().find(|clause| Self::is_about_prompts(clause)).is_some_and(|clause| {
                match (&clause.operator, &clause.literal) {
                    (Operator::Equal, Literal::Text(value)) => value.eq_ignore_ascii_case("true"),
                    (Operator::NotEqual, Literal::Text(value)) => value.eq_ignore_ascii_case("false"),
                    _ => false,
                }
            });
        Self { asks_for_prompts }
    }

    fn is_about_prompts(clause: &Clause) -> bool {
        matches!(&clause.entity, Entity::Tag(key) if key == PROMPT_TAG)
    }

    /// Whether a clause is judged (MLflow drops the prompt tag's clauses from a model search).
    fn judges(&self, clause: &Clause) -> bool {
        self.asks_for_prompts || !Self::is_about_prompts(clause)
    }

    /// Whether an item may be answered at all.
    fn admits(&self, item: &impl Searchable) -> bool {
        self.asks_for_prompts || item.value_of(&Entity::Tag(PROMPT_TAG.into())) != Some(Literal::Text("true".into()))
    }
}

fn search_with<T: Searchable>(
    mut items: Vec<T>,
    filter: &[Clause],
    order_by: &[OrderBy],
    prompts_apart: bool,
    tiebreak: impl Fn(&T, &T) -> Ordering,
) -> Vec<T> {
    let prompts = prompts_apart.then(|| PromptsApart::of(filter));
    items.retain(|item| match &prompts {
        Some(prompts) => {
            prompts.admits(item)
                && filter.iter().filter(|clause| prompts.judges(clause)).all(|clause| clause.matches(item))
        }
        None => filter.iter().all(|clause| clause.matches(item)),
    });
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
    fn lists_nulls_and_datasets_parse_as_mlflow_writes_them() {
        let clauses = parse_filter(
            "attributes.run_id IN ('a','b') and run_id NOT IN ('c') and params.depth IS NULL \
             and tags.team is not null and datasets.context = 'training' and dataset.digest IN ('d1')",
        )
        .expect("valid");
        assert_eq!(
            clauses[0],
            Clause {
                entity: Entity::Attribute("run_id".into()),
                operator: Operator::In,
                literal: Literal::List(vec!["a".into(), "b".into()])
            }
        );
        assert_eq!(
            (clauses[1].operator, clauses[2].operator, clauses[3].operator),
            (Operator::NotIn, Operator::IsNull, Operator::IsNotNull)
        );
        assert_eq!(clauses[2].literal, Literal::Absent);
        assert_eq!(clauses[4].entity, Entity::Dataset("context".into()));
        let message = |filter: &str| parse_filter(filter).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(
            message("params.model IN ('a')").contains("only attributes.run_id and datasets"),
            "{}",
            message("params.model IN ('a')")
        );
        assert!(message("metrics.rmse IS NULL").contains("parameters and tags only"));
        assert!(message("datasets.size = 'x'").contains("datasets have name, digest and context"));
        assert!(message("datasets.name < 'x'").contains("compares with =, !=, LIKE"));
        assert!(message("run_id IN ('a' 'b')").contains("found 'b'"), "{}", message("run_id IN ('a' 'b')"));
        assert!(message("run_id IN ()").contains("expected a quoted string"));
        assert!(message("run_id IN 'a'").contains("`(` opening a list"));
        assert!(parse_order_by(&["datasets.name".to_string()]).is_err());
    }

    #[test]
    fn dataset_clauses_hold_when_any_input_satisfies_them() {
        let mut read_two = run("a", 1, None, "gbdt");
        for (name, context) in [("train", "training"), ("holdout", "eval")] {
            read_two.inputs.push(input(name, context));
        }
        let read_none = run("b", 2, None, "gbdt");
        let ids = |filter: &str| {
            let clauses = parse_filter(filter).expect("valid");
            search_runs(vec![read_two.clone(), read_none.clone()], &clauses, &[])
                .into_iter()
                .map(|run| run.run_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("datasets.name = 'holdout'"), ["a"]);
        assert_eq!(ids("datasets.context != 'training'"), ["a"], "the eval input differs");
        assert_eq!(ids("datasets.name NOT IN ('train', 'holdout')"), Vec::<String>::new());
        assert_eq!(ids("params.depth IS NULL"), ["b", "a"]);
        assert_eq!(ids("run_id NOT IN ('a')"), ["b"]);
    }

    fn input(name: &str, context: &str) -> crate::tracking::DatasetInput {
        crate::tracking::DatasetInput {
            name: name.into(),
            digest: format!("{name}-digest"),
            tags: vec![(DATASET_CONTEXT_TAG.to_string(), context.to_string())],
            ..crate::tracking::DatasetInput::default()
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
