//! The model artifact: one JSON document with the model, its signature and decision threshold.

use std::collections::BTreeMap;

use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};

use crate::ensemble::Transform;
use crate::ensemble::TreeEnsemble;
use crate::error::{Error, Result};
use crate::gbdt::{GbdtModel, Objective};
use crate::linear::{LinearModel, Link};
use crate::logistic::LogisticModel;
use crate::onnx_graph::OnnxGraph;
use crate::signature::Signature;
use crate::task::Task;
use crate::{InputError, Predictor};

/// The artifact format this build writes and the newest it reads.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;

/// The model families Causeway scores natively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flavor", rename_all = "snake_case")]
pub enum Model {
    /// Gradient-boosted trees.
    Gbdt(GbdtModel),
    /// Logistic regression (binary).
    Logistic(LogisticModel),
    /// A linear model: ridge regression, or multinomial logistic regression.
    Linear(LinearModel),
    /// A tree ensemble imported from XGBoost or LightGBM, scored with its library's arithmetic.
    Ensemble(TreeEnsemble),
    /// Any other ONNX graph, scored by onnxruntime.
    Onnx(OnnxGraph),
}

impl Model {
    /// Values per row: 1 for a score, the class count for a multi-class model.
    pub fn outputs(&self) -> usize {
        match self {
            Self::Gbdt(model) => model.outputs(),
            Self::Linear(model) => model.outputs(),
            Self::Ensemble(model) => model.outputs.max(1),
            Self::Onnx(graph) => graph.outputs(),
            Self::Logistic(_) => 1,
        }
    }

    /// The task the model's outputs fit, as far as the model alone tells: class probabilities
    /// (classes known by index), a probability (binary, classes 0 and 1), or a number.
    pub fn natural_task(&self) -> Task {
        match self {
            Self::Gbdt(model) => match model.objective {
                Objective::Logistic => Task::binary(),
                Objective::Softmax { classes } => Task::indexed_classes(classes),
                Objective::SquaredError => Task::Regression,
            },
            Self::Logistic(_) => Task::binary(),
            Self::Linear(model) => match model.link {
                Link::Softmax => Task::indexed_classes(model.outputs()),
                Link::Identity => Task::Regression,
            },
            Self::Ensemble(model) => match model.transform {
                _ if model.outputs > 1 => Task::indexed_classes(model.outputs),
                Transform::Sigmoid { .. } => Task::binary(),
                Transform::Identity | Transform::Exp | Transform::Softmax => Task::Regression,
            },
            Self::Onnx(graph) => match (graph.classes, graph.column) {
                (Some(classes), _) => Task::indexed_classes(classes),
                (None, Some(_)) => Task::binary(),
                (None, None) => Task::Regression,
            },
        }
    }

    /// Every output of every row, row after row (`rows.len() * outputs()` values): class
    /// probabilities for a multi-class model, the score otherwise.
    pub fn predict_outputs(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        match self {
            Self::Ensemble(model) => model.score_rows(rows),
            Self::Onnx(graph) => graph.score_outputs(rows),
            Self::Gbdt(model) => model.predict_outputs(rows),
            Self::Linear(model) => model.predict_outputs(rows),
            Self::Logistic(model) => model.predict_rows(rows),
        }
    }

    /// The family's name.
    pub fn flavor(&self) -> &'static str {
        match self {
            Self::Gbdt(_) => "gbdt",
            Self::Logistic(_) => "logistic",
            Self::Linear(_) => "linear",
            Self::Ensemble(_) => "tree_ensemble",
            Self::Onnx(_) => "onnx",
        }
    }
}

impl Predictor for Model {
    fn predict_row(&self, row: &[f64]) -> f64 {
        match self {
            Self::Gbdt(model) => model.predict_row(row),
            Self::Logistic(model) => model.predict_row(row),
            Self::Linear(model) => model.predict_row(row),
            Self::Ensemble(model) => {
                let outputs = match model.compiled() {
                    Some(compiled) => compiled.predict_row(row),
                    None => model.predict(row),
                };
                // One output: the score; several (classes): the most likely class's probability.
                outputs.iter().copied().fold(f64::NAN, f64::max)
            }
            Self::Onnx(graph) => graph.score_rows(&[row.to_vec()]).first().copied().unwrap_or(f64::NAN),
        }
    }

    /// One value per row; for a multi-class model, the most likely class's probability (what
    /// monitoring watches), with every class's in [`Model::predict_outputs`].
    fn predict_rows(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        match self {
            Self::Ensemble(model) if model.outputs > 1 => model
                .score_rows(rows)
                .chunks(model.outputs)
                .map(|classes| classes.iter().copied().fold(f64::NAN, f64::max))
                .collect(),
            Self::Ensemble(model) => model.score_rows(rows),
            Self::Onnx(graph) => graph.score_rows(rows),
            Self::Gbdt(model) => model.predict_rows(rows),
            other => rows.iter().map(|row| other.predict_row(row)).collect(),
        }
    }
}

/// A trained model with everything needed to serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// The artifact format version.
    pub format_version: u32,
    /// The model.
    pub model: Model,
    /// Its inputs.
    pub signature: Signature,
    /// What it predicts, with its classes (artifacts written before tasks existed get the task
    /// their model's outputs fit).
    pub task: Task,
    /// Binary models: scores at or above this are the positive class (0.5 for other tasks,
    /// where it does not apply).
    pub threshold: f64,
    /// Free-form facts (training run, dataset) for people.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl ModelArtifact {
    /// Wraps a model for the task its outputs fit ([`Model::natural_task`]); checked for
    /// consistency.
    pub fn new(model: Model, signature: Signature, threshold: f64, metadata: BTreeMap<String, String>) -> Result<Self> {
        let task = model.natural_task();
        Self::for_task(model, signature, task, threshold, metadata)
    }

    /// Wraps a model for `task` (named classes, or a number); checked for consistency.
    pub fn for_task(
        model: Model,
        signature: Signature,
        task: Task,
        threshold: f64,
        metadata: BTreeMap<String, String>,
    ) -> Result<Self> {
        let artifact = Self { format_version: ARTIFACT_FORMAT_VERSION, model, signature, task, threshold, metadata };
        artifact.validate()?;
        Ok(artifact)
    }

    /// Parses and checks an artifact.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Header {
            format_version: u32,
        }
        let header: Header = serde_json::from_slice(bytes)?;
        if header.format_version > ARTIFACT_FORMAT_VERSION {
            return Err(Error::TooNew { found: header.format_version, supported: ARTIFACT_FORMAT_VERSION });
        }
        let mut document: serde_json::Value = serde_json::from_slice(bytes)?;
        let task_missing = document.get("task").is_none();
        if let Some(object) = document.as_object_mut()
            && task_missing
        {
            // Written before artifacts named their task: the model's outputs tell it.
            let model: Model = serde_json::from_value(object.get("model").cloned().unwrap_or_default())?;
            object.insert("task".into(), serde_json::to_value(model.natural_task())?);
        }
        let artifact: Self = serde_json::from_value(document)?;
        artifact.validate()?;
        Ok(artifact)
    }

    /// Serializes the artifact.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(Error::Invalid(format!("threshold {} is outside 0..1", self.threshold)));
        }
        let outputs = self.model.outputs();
        let fits = match &self.task {
            Task::Binary { classes } => classes.len() == 2 && outputs == 1,
            Task::Multiclass { classes } => classes.len() >= 2 && outputs == classes.len(),
            Task::Regression => outputs == 1,
        };
        if !fits {
            return Err(Error::Invalid(format!(
                "a {} task with {} classes cannot be served by a model with {outputs} outputs",
                self.task.kind(),
                self.task.classes().len()
            )));
        }
        let width = self.signature.width();
        match &self.model {
            Model::Gbdt(model) => model.validate(width),
            Model::Logistic(model) => model.validate(width),
            Model::Linear(model) => model.validate(width),
            Model::Ensemble(model) => {
                model.validate()?;
                if model.features != width {
                    return Err(Error::Invalid(format!(
                        "the ensemble reads {} features, the signature has {width}",
                        model.features
                    )));
                }
                if model.outputs > 1 && !matches!(model.transform, crate::ensemble::Transform::Softmax) {
                    return Err(Error::Unsupported(format!(
                        "serving {} outputs that are not class probabilities (softmax); served models answer \
                         one score per row or one probability per class",
                        model.outputs
                    )));
                }
                Ok(())
            }
            Model::Onnx(graph) => {
                if graph.features != width {
                    return Err(Error::Invalid(format!(
                        "the ONNX graph reads {} features, the signature has {width}",
                        graph.features
                    )));
                }
                graph.prepare()
            }
        }
    }

    /// Checks, encodes and scores one row of feature values.
    pub fn score_values(&self, values: &[FeatureValue]) -> Result<f64, InputError> {
        Ok(self.model.predict_row(&self.signature.encode(values)?))
    }

    /// Every output of one encoded row: the positive class's probability, each class's
    /// probability, or the prediction.
    pub fn outputs_of(&self, row: &[f64]) -> Vec<f64> {
        self.model.predict_outputs(std::slice::from_ref(&row.to_vec()))
    }

    /// Checks and scores already encoded rows.
    pub fn score_encoded(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, InputError> {
        for row in rows {
            self.signature.check_encoded(row)?;
        }
        Ok(self.model.predict_rows(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::{Node, Tree};
    use crate::signature::{FeatureKind, FeatureSpec};

    fn artifact() -> ModelArtifact {
        let tree = Tree {
            nodes: vec![
                Node::Split { feature: 0, threshold: 10.0, left: 1, right: 2, missing_left: true },
                Node::Leaf { value: -2.0 },
                Node::Leaf { value: 2.0 },
            ],
        };
        ModelArtifact::new(
            Model::Gbdt(GbdtModel::new(0.0, vec![tree])),
            Signature {
                features: vec![FeatureSpec { name: "amount".into(), kind: FeatureKind::Numeric, nullable: false }],
            },
            0.5,
            BTreeMap::new(),
        )
        .expect("valid")
    }

    #[test]
    fn round_trips_and_scores_identically() {
        let original = artifact();
        let loaded = ModelArtifact::from_bytes(&original.to_bytes().expect("bytes")).expect("loads");
        assert_eq!(loaded, original);
        assert_eq!(
            loaded.score_values(&[FeatureValue::Number(20.0)]),
            original.score_values(&[FeatureValue::Number(20.0)])
        );
        assert_eq!(loaded.score_encoded(&[vec![f64::NAN]]).unwrap_err().field, "amount");
    }

    #[test]
    fn refuses_newer_formats_and_garbage() {
        let mut newer = serde_json::to_value(artifact()).expect("json");
        newer["format_version"] = serde_json::json!(99);
        let error = ModelArtifact::from_bytes(newer.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("upgrade Causeway"));
        assert!(ModelArtifact::from_bytes(b"not json").is_err());
    }
}
