//! `causeway init --from FILE --label COLUMN`: a project for a user's own data in one command. The
//! file's columns are read and sorted into the label, an id column and a time column (when a
//! column plausibly is one), numeric and categorical features, and columns left out (with why);
//! the task is decided as training would decide it. The result is a commented `causeway.toml`
//! that says what was chosen, so people can change it.

use std::fmt::Write as _;
use std::path::Path;

use causeway_data::{Column, Frame};
use causeway_models::{Task, TaskKind};
use causeway_types::Dtype;

use crate::config::{ModelSection, ProjectConfig, StorageSection};
use crate::error::{Error, Result};
use crate::labels::resolve_task;
use crate::project::Project;

/// Text columns with more distinct values than this are not categorical features.
pub const MAX_CATEGORIES: usize = 100;
/// Text columns whose distinct values are more than this share of the rows are identifiers or
/// free text, not categories.
const MAX_CATEGORY_SHARE: f64 = 0.5;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct DraftRequest {
    /// The label column.
    pub label: String,
    /// The positive class of a binary label.
    pub positive: Option<String>,
    /// The task, when it should not be inferred.
    pub task: Option<TaskKind>,
    /// The dataset and model name.
    pub name: String,
    /// Where the data came from, for the header comment.
    pub source: String,
}

/// A drafted project.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The commented `causeway.toml`.
    pub config: String,
    /// What was decided, one line each, for people.
    pub decisions: Vec<String>,
}

/// One column's role.
#[derive(Debug, Clone, PartialEq)]
enum Role {
    Label,
    Id,
    Time,
    Numeric,
    Categorical,
    Left(String),
}

/// `id`, `customer_id`, `id_customer`, `customerId`, `uuid`, `key`, `row_key`.
fn name_says_id(name: &str) -> bool {
    let lowered = name.to_ascii_lowercase();
    ["id", "uuid", "key"].contains(&lowered.as_str())
        || lowered.ends_with("_id")
        || lowered.starts_with("id_")
        || lowered.ends_with("_key")
        || (name.len() > 2 && name.ends_with("Id"))
}

fn name_says_time(name: &str) -> bool {
    let lowered = name.to_ascii_lowercase();
    ["timestamp", "time", "date", "datetime", "event_time", "created_at", "ts"].contains(&lowered.as_str())
        || lowered.ends_with("_at")
        || lowered.ends_with("_time")
        || lowered.ends_with("_date")
        || lowered.ends_with("_timestamp")
}

fn distinct(column: &Column) -> usize {
    let mut values: Vec<String> = (0..column.len()).filter_map(|row| column.text(row)).collect();
    values.sort_unstable();
    values.dedup();
    values.len()
}

fn nulls(column: &Column) -> usize {
    (0..column.len()).filter(|row| column.is_null(*row)).count()
}

/// Epoch milliseconds between 2001 and 2100: an integer column a time column could hold.
fn plausible_epoch_ms(column: &Column) -> bool {
    let values: Vec<f64> = (0..column.len()).filter_map(|row| column.number(row)).collect();
    !values.is_empty() && values.iter().all(|value| (1.0e12..4.1e12).contains(value))
}

/// Average ranks (ties share the mean of their positions) of `values`.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|left, right| values[*left].total_cmp(&values[*right]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0;
        for position in &order[start..=end] {
            ranks[*position] = rank;
        }
        start = end + 1;
    }
    ranks
}

/// Spearman's rank correlation of two columns over the rows where both have a number.
fn rank_correlation(first: &Column, second: &Column) -> Option<f64> {
    let pairs: Vec<(f64, f64)> =
        (0..first.len()).filter_map(|row| Some((first.number(row)?, second.number(row)?))).collect();
    if pairs.len() < 10 {
        return None;
    }
    let (left, right): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
    let (left, right) = (ranks(&left), ranks(&right));
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let (left_mean, right_mean) = (mean(&left), mean(&right));
    let covariance: f64 = left.iter().zip(&right).map(|(a, b)| (a - left_mean) * (b - right_mean)).sum();
    let spread = |values: &[f64], center: f64| values.iter().map(|value| (value - center).powi(2)).sum::<f64>().sqrt();
    let scale = spread(&left, left_mean) * spread(&right, right_mean);
    (scale > 0.0).then(|| covariance / scale)
}

/// Whether `column` is the label in another form: a number that moves in step with a numeric
/// label (rank correlation of at least 0.995), or values that name the label's values one to
/// one (a copy of it under another name).
fn mirrors_label(column: &Column, label: &Column) -> Option<String> {
    if label.dtype().is_numeric() && column.dtype().is_numeric() && distinct(label) > 10 {
        let correlation = rank_correlation(column, label)?;
        return (correlation.abs() >= 0.995).then(|| format!("rank correlation {correlation:.3} with the label"));
    }
    let mut pairs: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for row in 0..column.len() {
        let (Some(value), Some(target)) = (column.text(row), label.text(row)) else { continue };
        if pairs.insert(value, target.clone()).is_some_and(|previous| previous != target) {
            return None;
        }
    }
    let mut targets: Vec<&String> = pairs.values().collect();
    targets.sort_unstable();
    targets.dedup();
    (pairs.len() >= 2 && pairs.len() == targets.len()).then(|| "its values name the label's one to one".to_string())
}

fn role_of(
    name: &str,
    column: &Column,
    rows: usize,
    request: &DraftRequest,
    taken: (bool, bool),
    label: &Column,
) -> Role {
    let (have_id, have_time) = taken;
    if name == request.label {
        return Role::Label;
    }
    let count = distinct(column);
    let present = rows - nulls(column);
    if present == 0 {
        return Role::Left("no values".into());
    }
    if !have_id && name_says_id(name) && count == present && matches!(column.dtype(), Dtype::Utf8 | Dtype::Int64) {
        return Role::Id;
    }
    if !have_time
        && (column.dtype() == Dtype::Timestamp
            || (name_says_time(name) && column.dtype() == Dtype::Int64 && plausible_epoch_ms(column)))
    {
        return Role::Time;
    }
    if count == 1 {
        return Role::Left("one value only".into());
    }
    if let Some(why) = mirrors_label(column, label) {
        return Role::Left(format!("the label in another form? {why}; add it back if it is known before the label"));
    }
    match column.dtype() {
        Dtype::Int64 | Dtype::Float64 | Dtype::Bool => {
            if name_says_id(name) && count == present {
                Role::Left("an identifier (every value differs)".into())
            } else {
                Role::Numeric
            }
        }
        Dtype::Utf8 => {
            if count > MAX_CATEGORIES || count as f64 > MAX_CATEGORY_SHARE * present as f64 && count > 10 {
                Role::Left(format!("{count} different values: an identifier or free text, not categories"))
            } else {
                Role::Categorical
            }
        }
        Dtype::Timestamp => Role::Left("a second time column".into()),
    }
}

fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| toml_string(item)).collect();
    let mut text = String::from("[");
    let mut line = 0;
    for (index, item) in quoted.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
            line += 2;
        }
        if line + item.len() > 96 {
            text.push_str("\n  ");
            line = 2;
        }
        text.push_str(item);
        line += item.len();
    }
    text.push(']');
    text
}

/// Drafts a project for `frame` (a file's rows) as `request` says.
pub fn draft_project(frame: &Frame, request: &DraftRequest) -> Result<Draft> {
    let label = frame.column(&request.label).ok_or_else(|| {
        Error::Precondition(format!(
            "{} has no column `{}` to learn; its columns are: {}",
            request.source,
            request.label,
            frame.names().join(", ")
        ))
    })?;
    let rows = frame.rows();
    let mut roles: Vec<(String, Role)> = Vec::new();
    let (mut have_id, mut have_time) = (false, false);
    for (name, column) in frame.columns() {
        let role = role_of(name, column, rows, request, (have_id, have_time), label);
        have_id |= role == Role::Id;
        have_time |= role == Role::Time;
        roles.push((name.to_string(), role));
    }
    let with = |wanted: &dyn Fn(&Role) -> bool| -> Vec<String> {
        roles.iter().filter(|(_, role)| wanted(role)).map(|(name, _)| name.clone()).collect()
    };
    let numeric = with(&|role| *role == Role::Numeric);
    let categorical = with(&|role| *role == Role::Categorical);
    let id = with(&|role| *role == Role::Id).into_iter().next();
    let time = with(&|role| *role == Role::Time).into_iter().next();
    if numeric.is_empty() && categorical.is_empty() {
        return Err(Error::Precondition(format!(
            "{} has no column to learn `{}` from besides identifiers and times",
            request.source, request.label
        )));
    }
    let section = ModelSection {
        task: request.task,
        positive_class: request.positive.clone(),
        ..toml::from_str::<ModelSection>(&format!(
            "name = {0}\ndataset = {0}\nlabel = {1}\n",
            toml_string(&request.name),
            toml_string(&request.label)
        ))
        .map_err(|error| Error::Config(error.to_string()))?
    };
    let resolved = resolve_task(&section, label).map_err(|error| match error {
        Error::Precondition(message) if message.contains("say which is the positive class") => {
            Error::Precondition(format!("{message}; with `init --from`, pass --positive VALUE"))
        }
        other => other,
    })?;

    let mut text = String::new();
    let name = &request.name;
    let _ = writeln!(
        text,
        "# Causeway project for {} ({rows} rows, {} columns), written by",
        request.source,
        frame.names().len()
    );
    let _ = writeln!(text, "# `causeway init --from`. Every choice below is a suggestion: change it and train again.");
    let _ = writeln!(text, "# README.md documents every section.\n");
    let _ = writeln!(text, "[project]\nname = {}\n", toml_string(name));
    let _ = writeln!(text, "# Every batch of `{name}` must have these columns and types; add not_null, min, max or");
    let _ = writeln!(text, "# allowed = [...] where the data should promise more.");
    for (column_name, column) in frame.columns() {
        // Numeric features are declared as floats: a later batch with a fraction (or a first batch
        // that happened to hold whole numbers only) then still fits.
        let dtype = match column.dtype() {
            Dtype::Int64 if numeric.iter().any(|feature| feature == column_name) => Dtype::Float64,
            other => other,
        };
        let _ = writeln!(text, "[[datasets.{}.expectations]]", toml_key(name));
        let _ = writeln!(text, "column = {}", toml_string(column_name));
        let _ = writeln!(text, "type = {}", toml_string(dtype.as_str()));
        if Some(column_name) == id.as_deref() || Some(column_name) == time.as_deref() {
            let _ = writeln!(text, "not_null = true");
        }
        text.push('\n');
    }
    let _ =
        writeln!(text, "# What the model reads. Missing values are allowed in every feature; list in not_null = [...]");
    let _ = writeln!(text, "# the ones a request must always carry.");
    let _ = writeln!(text, "[features]");
    let _ = writeln!(text, "numeric = {}", toml_list(&numeric));
    let _ = writeln!(text, "categorical = {}", toml_list(&categorical));
    for (column_name, role) in &roles {
        if let Role::Left(why) = role {
            let _ = writeln!(text, "# left out: `{column_name}` ({why})");
        }
    }
    text.push('\n');
    let _ = writeln!(text, "[model]");
    let _ = writeln!(text, "name = {}", toml_string(name));
    let _ = writeln!(text, "dataset = {}", toml_string(name));
    let _ = writeln!(text, "label = {}", toml_string(&request.label));
    let _ = writeln!(text, "# {}", resolved.note);
    let _ = writeln!(text, "task = {}", toml_string(resolved.task.kind().as_str()));
    match &resolved.task {
        Task::Binary { classes } => {
            let _ = writeln!(
                text,
                "positive_class = {}   # the class whose probability is the score",
                toml_string(&classes[1])
            );
        }
        Task::Multiclass { classes } => {
            let _ = writeln!(text, "classes = {}   # in the order the model answers them", toml_list(classes));
        }
        Task::Regression => {}
    }
    match &id {
        Some(id) => {
            let _ = writeln!(text, "id_column = {}   # delayed labels and predictions join on it", toml_string(id));
        }
        None => {
            let _ = writeln!(text, "# id_column = \"...\"   # none found: a column whose values name each row");
        }
    }
    let span_days = time.as_deref().and_then(|time| frame.column(time)).and_then(|column| {
        let values: Vec<f64> = (0..column.len()).filter_map(|row| column.number(row)).collect();
        let (low, high) =
            values.iter().fold((f64::MAX, f64::MIN), |(low, high), value| (low.min(*value), high.max(*value)));
        (high >= low).then(|| ((high - low) / causeway_types::DAY_MS as f64).ceil().max(1.0) as u32)
    });
    match (&time, span_days) {
        (Some(time), Some(span)) => {
            let days = (f64::from(span) * 0.4).ceil().max(1.0) as u32;
            let _ = writeln!(text, "timestamp_column = {}", toml_string(time));
            let _ = writeln!(
                text,
                "# The holdout: half the rows of the freshest {days} of the {span} days the data spans."
            );
            let _ = writeln!(text, "holdout_window = \"{days}d\"\nholdout_fraction = 0.5");
        }
        _ => {
            let _ = writeln!(text, "# No time column: the holdout is a seeded random quarter of the rows.");
            let _ = writeln!(text, "holdout_fraction = 0.25");
        }
    }
    let _ = writeln!(text, "seed = 42");
    let _ = writeln!(text, "# trainer = {{ family = \"gbdt\", rounds = 200, learning_rate = 0.1, max_leaves = 31 }}");
    let _ =
        writeln!(text, "# baseline_trainer = {{ family = \"logistic\" }}   # a linear model beside it, for comparison");
    ProjectConfig::parse(&text)
        .map_err(|error| Error::Config(format!("the drafted causeway.toml does not parse: {error}")))?;

    let mut decisions = vec![
        format!("task: {}", resolved.note),
        format!("features: {} numeric, {} categorical", numeric.len(), categorical.len()),
        match &id {
            Some(id) => format!("id column: `{id}`"),
            None => "id column: none (predictions are numbered by row)".into(),
        },
        match &time {
            Some(time) => format!("time column: `{time}` (the holdout is drawn from the freshest rows)"),
            None => "time column: none (the holdout is a seeded random quarter of the rows)".into(),
        },
    ];
    let left: Vec<String> = roles
        .iter()
        .filter_map(|(name, role)| match role {
            Role::Left(why) => Some(format!("`{name}` ({why})")),
            _ => None,
        })
        .collect();
    if !left.is_empty() {
        decisions.push(format!("left out: {}", left.join(", ")));
    }
    Ok(Draft { config: text, decisions })
}

/// What `causeway init --from` did.
pub struct Initialized {
    /// The project, open.
    pub project: Project,
    /// The drafted configuration and its decisions.
    pub draft: Draft,
    /// The file, ingested as the dataset's first version.
    pub ingested: causeway_data::IngestOutcome,
}

/// Creates a project in `dir` for the data in `path`: drafts `causeway.toml` (refused when one
/// exists), creates the stores and ingests the file as the first version of the dataset.
pub fn init_from(
    dir: &Path,
    storage: &StorageSection,
    path: &Path,
    mut request: DraftRequest,
    at_ms: i64,
) -> Result<Initialized> {
    let config_path = dir.join(crate::project::CONFIG_FILE);
    if config_path.exists() {
        return Err(Error::Precondition(format!(
            "{} exists: `init --from` writes a new one; remove it, or choose another --dir",
            config_path.display()
        )));
    }
    if request.name.is_empty() {
        request.name = dataset_name(path);
    }
    request.source =
        path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().to_string());
    let frame = causeway_data::read_file(path)?;
    if frame.rows() == 0 {
        return Err(Error::Precondition(format!("{} has a header but no rows", path.display())));
    }
    let draft = draft_project(&frame, &request)?;
    let (project, _) = Project::init_with(dir, &draft.config, storage)?;
    let ingested = crate::pipeline::ingest_file(&project, &request.name, path, &[], at_ms)?;
    Ok(Initialized { project, draft, ingested })
}

/// A dataset name as a TOML key (bare when it can be).
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '-')
    {
        name.to_string()
    } else {
        toml_string(name)
    }
}

/// A dataset name from a file name: its stem, with anything but letters, digits, `_` and `-`
/// turned into `_`.
pub fn dataset_name(path: &std::path::Path) -> String {
    let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("data");
    let name: String = stem
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() || character == '-' { character } else { '_' })
        .collect();
    if name.is_empty() { "data".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        let rows = 300;
        let text = |make: &dyn Fn(usize) -> String| Column::Utf8((0..rows).map(|row| Some(make(row))).collect());
        Frame::new()
            .with_column("customer_id", text(&|row| format!("c{row}")))
            .and_then(|frame| {
                frame.with_column(
                    "signed_up",
                    Column::Timestamp((0..rows).map(|row| Some(1_700_000_000_000 + row as i64 * 86_400_000)).collect()),
                )
            })
            .and_then(|frame| frame.with_column("plan", text(&|row| ["basic", "pro"][row % 2].into())))
            .and_then(|frame| frame.with_column("country", text(&|_| "NO".into())))
            .and_then(|frame| frame.with_column("notes", text(&|row| format!("note {row}"))))
            .and_then(|frame| {
                frame.with_column(
                    "minutes",
                    Column::Float64((0..rows).map(|row| (row % 7 != 0).then_some(row as f64)).collect()),
                )
            })
            .and_then(|frame| frame.with_column("churn", text(&|row| ["no", "yes"][usize::from(row % 5 == 0)].into())))
            .expect("a frame")
    }

    #[test]
    fn sorts_columns_into_roles_and_writes_a_config_that_parses() -> Result<()> {
        let request = DraftRequest {
            label: "churn".into(),
            name: "customers".into(),
            source: "customers.csv".into(),
            ..DraftRequest::default()
        };
        let draft = draft_project(&frame(), &request)?;
        let config = ProjectConfig::parse(&draft.config)?;
        let features = config.features()?;
        assert_eq!(features.numeric, ["minutes"]);
        assert_eq!(features.categorical, ["plan"]);
        let model = config.model()?;
        assert_eq!(model.id_column.as_deref(), Some("customer_id"));
        assert_eq!(model.timestamp_column.as_deref(), Some("signed_up"));
        assert_eq!((model.task, model.positive_class.as_deref()), (Some(TaskKind::Binary), Some("yes")));
        assert!(draft.config.contains("# left out: `country` (one value only)"), "{}", draft.config);
        assert!(draft.config.contains("# left out: `notes` (300 different values"), "{}", draft.config);
        assert_eq!(config.suite("customers").expectations.len(), 7);
        Ok(())
    }

    #[test]
    fn a_copy_of_the_label_is_left_out_with_why() -> Result<()> {
        let rows = 200;
        let wage: Vec<Option<f64>> = (0..rows).map(|row| Some(20.0 + (row * 7 % 97) as f64)).collect();
        let frame = Frame::new()
            .with_column("wage", Column::Float64(wage.clone()))
            .and_then(|frame| {
                frame.with_column("logwage", Column::Float64(wage.iter().map(|value| value.map(f64::ln)).collect()))
            })
            .and_then(|frame| {
                frame.with_column("age", Column::Float64((0..rows).map(|row| Some((row % 40) as f64)).collect()))
            })
            .expect("a frame");
        let request = DraftRequest {
            label: "wage".into(),
            name: "wages".into(),
            source: "wages.csv".into(),
            ..DraftRequest::default()
        };
        let draft = draft_project(&frame, &request)?;
        assert!(
            draft.config.contains("# left out: `logwage` (the label in another form? rank correlation 1.000"),
            "{}",
            draft.config
        );
        assert_eq!(ProjectConfig::parse(&draft.config)?.features()?.numeric, ["age"]);
        Ok(())
    }

    #[test]
    fn a_missing_label_or_an_unnamed_positive_class_says_what_to_do() {
        let missing =
            DraftRequest { label: "nope".into(), name: "c".into(), source: "c.csv".into(), ..DraftRequest::default() };
        let error = draft_project(&frame(), &missing).unwrap_err().to_string();
        assert!(error.contains("c.csv has no column `nope` to learn; its columns are: customer_id"), "{error}");
        let plan =
            DraftRequest { label: "plan".into(), name: "c".into(), source: "c.csv".into(), ..DraftRequest::default() };
        let error = draft_project(&frame(), &plan).unwrap_err().to_string();
        assert!(error.contains("say which is the positive class"), "{error}");
    }
}
