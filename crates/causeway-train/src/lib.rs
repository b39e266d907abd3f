//! Training in Causeway: the trainers (histogram gradient-boosted trees and logistic
//! regression), evaluation metrics, the training-set and signature builder, and run tracking with
//! what reproduces a run (seed, dataset version, git commit, tool version, parameters, metrics).
//!
//! This crate does not serve: it turns labelled feature rows into model artifacts and records runs.

mod error;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod tracking;

use std::collections::{BTreeMap, BTreeSet};

use causeway_features::FeatureSetSpec;
use causeway_models::{FeatureKind, FeatureSpec, Model, ModelArtifact, Predictor, Signature};
use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use gbdt::GbdtParams;
pub use logistic::LogisticParams;
pub use tracking::RunTracker;

/// Labelled rows of feature values, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingSet {
    /// Row ids (request / transaction ids).
    pub ids: Vec<String>,
    /// Event times (epoch ms).
    pub timestamps: Vec<i64>,
    /// Feature values, in the feature set's order.
    pub values: Vec<Vec<FeatureValue>>,
    /// 0/1 labels.
    pub labels: Vec<f64>,
}

impl TrainingSet {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Splits by time: the last `holdout_fraction` of rows (by position, rows must be in time
    /// order) become the second set.
    pub fn split_by_time(&self, holdout_fraction: f64) -> (TrainingSet, TrainingSet) {
        let cut = ((1.0 - holdout_fraction.clamp(0.0, 1.0)) * self.len() as f64).round() as usize;
        let part = |range: std::ops::Range<usize>| TrainingSet {
            ids: self.ids[range.clone()].to_vec(),
            timestamps: self.timestamps[range.clone()].to_vec(),
            values: self.values[range.clone()].to_vec(),
            labels: self.labels[range].to_vec(),
        };
        (part(0..cut), part(cut..self.len()))
    }

    /// Encodes every row with `signature`.
    pub fn encode(&self, signature: &Signature) -> Result<Vec<Vec<f64>>> {
        self.values.iter().map(|row| signature.encode(row).map_err(|error| Error::Data(error.to_string()))).collect()
    }
}

/// Builds a signature for a feature set, learning each categorical vocabulary from `set` (sorted).
pub fn signature_for(spec: &FeatureSetSpec, set: &TrainingSet) -> Signature {
    let names = spec.feature_names();
    let nullable = spec.nullable_features();
    let features = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let kind = if spec.categorical.contains(name) {
                let vocabulary: BTreeSet<String> = set
                    .values
                    .iter()
                    .filter_map(|row| match row.get(index) {
                        Some(FeatureValue::Text(text)) => Some(text.clone()),
                        _ => None,
                    })
                    .collect();
                FeatureKind::Categorical { vocabulary: vocabulary.into_iter().collect() }
            } else {
                FeatureKind::Numeric
            };
            FeatureSpec { name: name.clone(), kind, nullable: nullable.contains(name) || spec.categorical.contains(name) }
        })
        .collect();
    Signature { features }
}

/// Which model family to fit, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Trainer {
    /// Gradient-boosted trees.
    Gbdt(GbdtParams),
    /// Logistic regression.
    Logistic(LogisticParams),
}

impl Trainer {
    /// The family name.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Gbdt(_) => "gbdt",
            Self::Logistic(_) => "logistic",
        }
    }

    /// The parameters as strings, for tracking.
    pub fn params(&self) -> BTreeMap<String, String> {
        let value = match self {
            Self::Gbdt(params) => serde_json::to_value(params),
            Self::Logistic(params) => serde_json::to_value(params),
        };
        let mut params = BTreeMap::from([("family".to_string(), self.family().to_string())]);
        if let Ok(serde_json::Value::Object(map)) = value {
            for (key, value) in map {
                params.insert(key, value.to_string());
            }
        }
        params
    }
}

/// A fitted model with its holdout evaluation.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// The artifact, ready to register.
    pub artifact: ModelArtifact,
    /// Holdout metrics at the chosen threshold.
    pub metrics: BTreeMap<String, f64>,
    /// Scores on the holdout rows, in order.
    pub holdout_scores: Vec<f64>,
}

/// Fits `trainer` on `train`, picks the threshold whose false-positive rate on `holdout` is at
/// most `target_false_positive_rate`, and evaluates on `holdout`.
pub fn fit(
    trainer: &Trainer,
    signature: &Signature,
    train: &TrainingSet,
    holdout: &TrainingSet,
    target_false_positive_rate: f64,
    metadata: BTreeMap<String, String>,
) -> Result<FitOutcome> {
    let train_rows = train.encode(signature)?;
    let holdout_rows = holdout.encode(signature)?;
    let model = match trainer {
        Trainer::Gbdt(params) => {
            let (model, _) = gbdt::train(&train_rows, &train.labels, params, Some((&holdout_rows, &holdout.labels)))?;
            Model::Gbdt(model)
        }
        Trainer::Logistic(params) => Model::Logistic(logistic::train(signature, &train_rows, &train.labels, params)?),
    };
    let holdout_scores = model.predict_rows(&holdout_rows);
    let threshold = metrics::threshold_for_false_positive_rate(&holdout_scores, &holdout.labels, target_false_positive_rate);
    let metrics = metrics::binary_metrics(&holdout_scores, &holdout.labels, threshold);
    let artifact = ModelArtifact::new(model, signature.clone(), threshold, metadata)?;
    Ok(FitOutcome { artifact, metrics, holdout_scores })
}
