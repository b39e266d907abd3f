//! Labels as real data holds them: which task a label column asks for (declared in `[model]` or
//! inferred from its values, and said out loud), its classes in a fixed order, and each row's
//! label encoded for the trainers — with a clear error for values the task cannot take.

use std::collections::BTreeMap;

use causeway_data::Column;
use causeway_models::task::binary_word;
use causeway_models::{LabelValue, Task, TaskKind};
use causeway_types::Dtype;

use crate::config::ModelSection;
use crate::error::{Error, Result};

/// More distinct values than this in a text label is not a classification task Causeway infers.
pub const MAX_INFERRED_CLASSES: usize = 50;
/// Integer labels with more distinct values than this are inferred to be numbers.
pub const MAX_INTEGER_CLASSES: usize = 20;

/// The task of a model, with the sentence that says how it was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTask {
    /// The task, with its classes.
    pub task: Task,
    /// How it was chosen, for people (`binary (inferred from label `churn`: no, yes; positive
    /// class "yes")`).
    pub note: String,
}

/// The distinct values of a label column as text, with their counts (sorted numerically when
/// the column is numeric).
fn distinct_values(column: &Column) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for row in 0..column.len() {
        if let Some(text) = column.text(row) {
            *counts.entry(text).or_default() += 1;
        }
    }
    let mut values: Vec<(String, usize)> = counts.into_iter().collect();
    if column.dtype().is_numeric() {
        values.sort_by(|left, right| {
            let number = |text: &str| text.parse::<f64>().unwrap_or(f64::NAN);
            number(&left.0).total_cmp(&number(&right.0))
        });
    }
    values
}

fn quoted(values: &[(String, usize)], limit: usize) -> String {
    let mut shown: Vec<String> = values
        .iter()
        .take(limit)
        .map(|(value, count)| format!("{value:?} ({count} row{})", if *count == 1 { "" } else { "s" }))
        .collect();
    if values.len() > limit {
        shown.push(format!("and {} more", values.len() - limit));
    }
    shown.join(", ")
}

/// Decides the task of `model` from its declaration and the label column's values.
pub fn resolve_task(model: &ModelSection, column: &Column) -> Result<ResolvedTask> {
    let label = &model.label;
    let values = distinct_values(column);
    if values.is_empty() {
        return Err(Error::Precondition(format!("label column `{label}` has no values")));
    }
    let integers = column.dtype().is_numeric()
        && values.iter().all(|(value, _)| value.parse::<f64>().is_ok_and(|number| number.fract() == 0.0));
    let (kind, inferred) = match model.task {
        Some(kind) => (kind, None),
        None => {
            let (kind, why) = match column.dtype() {
                Dtype::Bool => (TaskKind::Binary, "a boolean".to_string()),
                Dtype::Utf8 if values.len() == 2 => (TaskKind::Binary, "two text values".to_string()),
                Dtype::Utf8 if values.len() <= MAX_INFERRED_CLASSES => {
                    (TaskKind::Multiclass, format!("{} text values", values.len()))
                }
                Dtype::Utf8 => {
                    return Err(Error::Precondition(format!(
                        "label `{label}` has {} different text values, too many to infer classes from; set [model] task \
                         = \"multiclass\" to train on them as classes anyway",
                        values.len()
                    )));
                }
                Dtype::Int64 | Dtype::Float64 if integers && values.len() <= 2 => {
                    (TaskKind::Binary, "two integer values".to_string())
                }
                Dtype::Int64 | Dtype::Float64 if integers && values.len() <= MAX_INTEGER_CLASSES => {
                    (TaskKind::Multiclass, format!("{} integer values", values.len()))
                }
                Dtype::Int64 | Dtype::Float64 => (TaskKind::Regression, "numbers".to_string()),
                Dtype::Timestamp => {
                    return Err(Error::Precondition(format!(
                        "label `{label}` holds dates or times; a label must be classes or numbers"
                    )));
                }
            };
            (kind, Some(why))
        }
    };
    let task = match kind {
        TaskKind::Binary => binary_task(model, &values)?,
        TaskKind::Multiclass => {
            let classes = match &model.classes {
                Some(classes) => {
                    let unknown: Vec<(String, usize)> =
                        values.iter().filter(|(value, _)| !classes.contains(value)).cloned().collect();
                    if !unknown.is_empty() {
                        return Err(Error::Precondition(format!(
                            "label `{label}` has values that are not among [model] classes: {}; add them to \
                             classes or fix the data",
                            quoted(&unknown, 5)
                        )));
                    }
                    classes.clone()
                }
                None => values.iter().map(|(value, _)| value.clone()).collect(),
            };
            if classes.len() < 2 {
                return Err(Error::Precondition(format!(
                    "label `{label}` has only one class ({}): training needs at least two",
                    quoted(&values, 1)
                )));
            }
            Task::Multiclass { classes }
        }
        TaskKind::Regression => {
            if column.dtype() == Dtype::Bool {
                return Err(Error::Precondition(format!(
                    "label `{label}` holds true/false, and a regression predicts numbers; set task = \"binary\""
                )));
            }
            if !column.dtype().is_numeric() {
                let (_, examples) =
                    causeway_data::values::unparsable(column.as_strings().unwrap_or_default(), Dtype::Float64, 3);
                let shown: Vec<String> = examples.iter().map(|(row, text)| format!("row {row}: {text:?}")).collect();
                return Err(Error::Precondition(format!(
                    "label `{label}` is text, and a regression predicts numbers ({}); declare its type = \"float64\" \
                     in the dataset's expectations, or set task = \"multiclass\"",
                    shown.join(", ")
                )));
            }
            Task::Regression
        }
    };
    let classes = task.classes();
    let detail = match &task {
        Task::Binary { .. } => format!("{}, {}; positive class {:?}", classes[0], classes[1], classes[1]),
        Task::Multiclass { .. } => format!("{} classes: {}", classes.len(), classes.join(", ")),
        Task::Regression => "numbers".to_string(),
    };
    let hint = if inferred.is_some() && integers && kind == TaskKind::Multiclass {
        "; set [model] task = \"regression\" to predict it as a number"
    } else {
        ""
    };
    let note = match (inferred, &task) {
        (Some(why), Task::Regression) => format!("{kind} (inferred from label `{label}`: {why})"),
        (Some(why), _) => format!("{kind} (inferred from label `{label}`, {why}: {detail}{hint})"),
        (None, _) => format!("{kind} (label `{label}`: {detail})"),
    };
    Ok(ResolvedTask { task, note })
}

/// The classes of a binary task, negative first: the declared positive class, or the positive
/// one of a yes/no, true/false or 1/0 pair.
fn binary_task(model: &ModelSection, values: &[(String, usize)]) -> Result<Task> {
    let label = &model.label;
    if values.len() > 2 {
        return Err(Error::Precondition(format!(
            "label `{label}` has more than two values in a binary task: {}; remove the rows with the extra \
             values, or set [model] task = \"multiclass\"",
            quoted(values, 6)
        )));
    }
    if values.len() < 2 {
        return Err(Error::Precondition(format!(
            "label `{label}` has only one value ({}): a binary task needs both classes",
            quoted(values, 1)
        )));
    }
    let (first, second) = (values[0].0.clone(), values[1].0.clone());
    let positive = match &model.positive_class {
        Some(positive) if *positive == first || *positive == second => positive.clone(),
        Some(positive) => {
            return Err(Error::Precondition(format!(
                "[model] positive_class = {positive:?} is not a value of label `{label}` ({first:?}, {second:?})"
            )));
        }
        None => match (binary_word(&first), binary_word(&second)) {
            (Some(true), Some(false)) => first.clone(),
            (Some(false), Some(true)) => second.clone(),
            _ => {
                // Suggest the rarer value: the event a binary model usually looks for.
                let (rarer, other) = if values[0].1 <= values[1].1 { (&first, &second) } else { (&second, &first) };
                return Err(Error::Precondition(format!(
                    "label `{label}` has the values {first:?} and {second:?}: say which is the positive class with \
                     positive_class = {rarer:?} (the rarer one) or {other:?} under [model] in causeway.toml"
                )));
            }
        },
    };
    let negative = if positive == first { second } else { first };
    Ok(Task::Binary { classes: vec![negative, positive] })
}

/// Row `row`'s label as `task` reads it (`None` when null): a numeric label of a classification
/// task is matched by its text ("1", "2.5").
pub fn label_value(task: &Task, column: &Column, row: usize) -> Option<LabelValue> {
    let value = match column {
        Column::Float64(_) | Column::Int64(_) => column.number(row).map(LabelValue::Number),
        _ => column.text(row).map(LabelValue::Text),
    }?;
    Some(match (task, value) {
        (Task::Binary { .. } | Task::Multiclass { .. }, LabelValue::Number(_)) => {
            LabelValue::Text(column.text(row).unwrap_or_default())
        }
        (_, value) => value,
    })
}

/// Row `row`'s label encoded for `task` (`None` when null), or an error naming the value.
pub fn encode_label(task: &Task, label: &str, column: &Column, row: usize) -> Result<Option<f64>> {
    let Some(value) = label_value(task, column, row) else { return Ok(None) };
    task.encode_label(&value)
        .map(Some)
        .map_err(|why| Error::Precondition(format!("label `{label}` in row {row}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(task: Option<TaskKind>, positive: Option<&str>) -> ModelSection {
        toml::from_str::<ModelSection>("name = \"m\"\ndataset = \"d\"\nlabel = \"y\"\n")
            .map(|section| ModelSection { task, positive_class: positive.map(str::to_string), ..section })
            .expect("a model section")
    }

    fn text(values: &[&str]) -> Column {
        Column::Utf8(values.iter().map(|value| Some(value.to_string())).collect())
    }

    #[test]
    fn infers_the_task_and_says_so() -> Result<()> {
        let churn = resolve_task(&model(None, None), &text(&["no", "yes", "no"]))?;
        assert_eq!(churn.task, Task::Binary { classes: vec!["no".into(), "yes".into()] });
        assert_eq!(churn.note, "binary (inferred from label `y`, two text values: no, yes; positive class \"yes\")");
        let species = resolve_task(&model(None, None), &text(&["Gentoo", "Adelie", "Chinstrap"]))?;
        assert_eq!(species.task.classes(), ["Adelie", "Chinstrap", "Gentoo"]);
        let counts = resolve_task(&model(None, None), &Column::Int64(vec![Some(0), Some(1), Some(2)]))?;
        assert_eq!(counts.task.kind(), TaskKind::Multiclass);
        assert!(counts.note.contains("set [model] task = \"regression\""), "{}", counts.note);
        let prices = resolve_task(&model(None, None), &Column::Float64(vec![Some(1.5), Some(2.0), Some(7.25)]))?;
        assert_eq!(prices.task, Task::Regression);
        let flags = resolve_task(&model(None, None), &Column::Int64(vec![Some(1), Some(0)]))?;
        assert_eq!(flags.task, Task::Binary { classes: vec!["0".into(), "1".into()] });
        Ok(())
    }

    #[test]
    fn binary_labels_are_checked() {
        let error = |model: ModelSection, column: Column| resolve_task(&model, &column).unwrap_err().to_string();
        let third = error(model(Some(TaskKind::Binary), None), Column::Int64(vec![Some(0), Some(1), Some(2), Some(2)]));
        assert!(
            third.contains("more than two values in a binary task: \"0\" (1 row), \"1\" (1 row), \"2\" (2 rows)"),
            "{third}"
        );
        let unnamed = error(model(None, None), text(&["good", "bad"]));
        assert!(unnamed.contains("with positive_class = \"bad\" (the rarer one) or \"good\""), "{unnamed}");
        let credit = resolve_task(&model(None, Some("bad")), &text(&["good", "bad"])).expect("positive given");
        assert_eq!(credit.task, Task::Binary { classes: vec!["good".into(), "bad".into()] });
        let wrong = error(model(None, Some("ugly")), text(&["good", "bad"]));
        assert!(wrong.contains("positive_class = \"ugly\" is not a value"), "{wrong}");
        let one = error(model(None, None), text(&["yes", "yes"]));
        assert!(one.contains("only one"), "{one}");
    }

    #[test]
    fn rows_encode_by_class_and_name_bad_values() -> Result<()> {
        let task = Task::Binary { classes: vec!["no".into(), "yes".into()] };
        let column = text(&["yes", "no", "maybe"]);
        assert_eq!(encode_label(&task, "y", &column, 0)?, Some(1.0));
        assert_eq!(encode_label(&task, "y", &column, 1)?, Some(0.0));
        let error = encode_label(&task, "y", &column, 2).unwrap_err().to_string();
        assert!(error.contains("label `y` in row 2: \"maybe\" is not one of this model's classes"), "{error}");
        let numbers = Column::Float64(vec![Some(2.5), None]);
        assert_eq!(encode_label(&Task::Regression, "y", &numbers, 0)?, Some(2.5));
        assert_eq!(encode_label(&Task::Regression, "y", &numbers, 1)?, None);
        Ok(())
    }
}
