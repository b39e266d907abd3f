//! What a model predicts: one of two classes, one of several, or a number. The task decides a
//! model's outputs, its metrics, what serving answers and how labels are read.

use serde::{Deserialize, Serialize};

/// The kind of task, without its classes: what `causeway.toml` and people name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Two classes.
    Binary,
    /// More than two classes.
    Multiclass,
    /// A number.
    Regression,
}

impl TaskKind {
    /// `binary`, `multiclass` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Multiclass => "multiclass",
            Self::Regression => "regression",
        }
    }

    /// The metric that ranks models of this kind, and whether larger is better.
    pub fn headline_metric(self) -> (&'static str, bool) {
        match self {
            Self::Binary => ("roc_auc", true),
            Self::Multiclass => ("accuracy", true),
            Self::Regression => ("rmse", false),
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "binary" => Ok(Self::Binary),
            "multiclass" => Ok(Self::Multiclass),
            "regression" => Ok(Self::Regression),
            other => Err(format!("unknown task `{other}`: use binary, multiclass or regression")),
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A task with its classes, as a model artifact records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Two classes: `classes[0]` is the negative one, `classes[1]` the positive one, whose
    /// probability is the model's score.
    Binary {
        /// The negative and the positive class, as the labels name them.
        classes: Vec<String>,
    },
    /// One of several classes; the model gives one probability per class, in this order.
    Multiclass {
        /// The classes, in output order.
        classes: Vec<String>,
    },
    /// A number: the model's output is the prediction.
    Regression,
}

impl Task {
    /// A binary task whose labels are 0 and 1.
    pub fn binary() -> Self {
        Self::Binary { classes: vec!["0".into(), "1".into()] }
    }

    /// A multi-class task whose classes are known only by index (`0`, `1`, …).
    pub fn indexed_classes(count: usize) -> Self {
        Self::Multiclass { classes: (0..count).map(|index| index.to_string()).collect() }
    }

    /// The kind.
    pub fn kind(&self) -> TaskKind {
        match self {
            Self::Binary { .. } => TaskKind::Binary,
            Self::Multiclass { .. } => TaskKind::Multiclass,
            Self::Regression => TaskKind::Regression,
        }
    }

    /// The classes (empty for regression).
    pub fn classes(&self) -> &[String] {
        match self {
            Self::Binary { classes } | Self::Multiclass { classes } => classes,
            Self::Regression => &[],
        }
    }

    /// Values a model gives per row: one probability per class for multi-class, one otherwise
    /// (the positive class's probability, or the predicted number).
    pub fn outputs(&self) -> usize {
        match self {
            Self::Multiclass { classes } => classes.len(),
            _ => 1,
        }
    }

    /// Whether the class names are only indices (an imported model that names none).
    pub fn classes_are_indices(&self) -> bool {
        self.classes().iter().enumerate().all(|(index, class)| *class == index.to_string())
    }

    /// The label value (as text) of encoded label `label`: the class name for classification,
    /// the number for regression.
    pub fn label_text(&self, label: f64) -> String {
        match self {
            Self::Regression => format!("{label}"),
            _ => self.classes().get(label as usize).cloned().unwrap_or_else(|| format!("{label}")),
        }
    }

    /// Encodes one label given as text (a class name, `yes`/`no`, `true`/`false`, `1`/`0`, or a
    /// class index) or as a number, as training and label feedback store it: the class index for
    /// classification, the value for regression. The error says what the task accepts.
    pub fn encode_label(&self, label: &LabelValue) -> Result<f64, String> {
        match (self, label) {
            (Self::Regression, LabelValue::Number(value)) if value.is_finite() => Ok(*value),
            (Self::Regression, LabelValue::Text(text)) => match text.trim().parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(value),
                _ => Err(format!("{text:?} is not a number, and this model predicts numbers")),
            },
            (Self::Regression, LabelValue::Number(value)) => Err(format!("{value} is not a finite number")),
            (Self::Regression, LabelValue::Flag(flag)) => {
                Err(format!("{flag} is not a number, and this model predicts numbers"))
            }
            (Self::Binary { classes } | Self::Multiclass { classes }, label) => {
                let text = match label {
                    LabelValue::Text(text) => text.trim().to_string(),
                    LabelValue::Number(value) => format!("{value}"),
                    LabelValue::Flag(flag) => flag.to_string(),
                };
                if let Some(index) = classes.iter().position(|class| *class == text) {
                    return Ok(index as f64);
                }
                if let Self::Binary { .. } = self
                    && let Some(positive) = binary_word(&text)
                    && classes.iter().all(|class| binary_word(class).is_some())
                {
                    // The classes are a yes/no pair spelled differently (`Yes`, `TRUE`, `1`).
                    let positive_index = classes.iter().position(|class| binary_word(class) == Some(true));
                    if let Some(positive_index) = positive_index {
                        return Ok(if positive { positive_index as f64 } else { 1.0 - positive_index as f64 });
                    }
                }
                if let Ok(index) = text.parse::<f64>()
                    && self.classes_are_indices()
                    && index.fract() == 0.0
                    && index >= 0.0
                    && (index as usize) < classes.len()
                {
                    return Ok(index);
                }
                Err(format!(
                    "{text:?} is not one of this model's classes ({})",
                    classes.iter().map(|class| format!("{class:?}")).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
}

/// A label as it arrives: text or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelValue {
    /// A number (a class index, 0/1, or a regression target).
    Number(f64),
    /// A boolean (binary tasks: true is the positive class).
    Flag(bool),
    /// Text (a class name, `yes`/`no`, …).
    Text(String),
}

/// `Some(true)` for the usual spellings of the positive answer (`yes`, `true`, `1`, `y`, `t`),
/// `Some(false)` for the negative ones, `None` otherwise.
pub fn binary_word(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "1.0" | "y" | "t" => Some(true),
        "no" | "false" | "0" | "0.0" | "n" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_encode_by_class_name_usual_spellings_and_index() {
        let churn = Task::Binary { classes: vec!["no".into(), "yes".into()] };
        assert_eq!(churn.encode_label(&LabelValue::Text("yes".into())), Ok(1.0));
        assert_eq!(churn.encode_label(&LabelValue::Text("Yes".into())), Ok(1.0));
        assert_eq!(churn.encode_label(&LabelValue::Number(0.0)), Ok(0.0));
        assert_eq!(churn.encode_label(&LabelValue::Number(1.0)), Ok(1.0));
        let error = churn.encode_label(&LabelValue::Number(2.0)).unwrap_err();
        assert!(error.contains("\"2\" is not one of this model's classes (\"no\", \"yes\")"), "{error}");
        let credit = Task::Binary { classes: vec!["good".into(), "bad".into()] };
        assert_eq!(credit.encode_label(&LabelValue::Text("bad".into())), Ok(1.0));
        assert!(credit.encode_label(&LabelValue::Number(1.0)).is_err(), "1 names no class of good/bad");
        let species = Task::Multiclass { classes: vec!["Adelie".into(), "Chinstrap".into(), "Gentoo".into()] };
        assert_eq!(species.encode_label(&LabelValue::Text("Gentoo".into())), Ok(2.0));
        assert!(species.encode_label(&LabelValue::Number(2.0)).is_err(), "named classes need their names");
        assert_eq!(Task::indexed_classes(3).encode_label(&LabelValue::Number(2.0)), Ok(2.0));
        assert_eq!(Task::Regression.encode_label(&LabelValue::Text("12.5".into())), Ok(12.5));
        assert!(Task::Regression.encode_label(&LabelValue::Number(f64::INFINITY)).is_err());
    }
}
