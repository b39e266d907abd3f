//! Training in Causeway: the trainers (histogram gradient-boosted trees and logistic
//! regression), evaluation metrics, the training-set and signature builder, and run tracking with
//! what reproduces a run (seed, dataset version, git commit, tool version, parameters, metrics).
//!
//! This crate does not serve: it turns labelled feature rows into model artifacts and records runs.

pub mod cross_validation;
mod error;
pub mod evaluation;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod search;
pub mod tracking;

use std::collections::{BTreeMap, BTreeSet};

use causeway_features::FeatureSetSpec;
use causeway_models::{FeatureKind, FeatureSpec, Model, ModelArtifact, Predictor, Signature};
use causeway_types::{FeatureValue, SeededRng};
use serde::{Deserialize, Serialize};

pub use cross_validation::{CrossValidation, cross_validate};
pub use error::{Error, Result};
pub use evaluation::{Evaluation, evaluate};
pub use gbdt::GbdtParams;
pub use logistic::LogisticParams;
pub use search::{SearchOutcome, SearchSpec};
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

    /// A fresh holdout: a seeded random `fraction` of the rows of the most recent `recent_ms`
    /// become the second set; everything else (older rows and the rest of the recent ones) the
    /// first. Recent patterns reach training while the evaluation stays on the freshest data.
    pub fn split_fresh(&self, recent_ms: i64, fraction: f64, seed: u64) -> (TrainingSet, TrainingSet) {
        let newest = self.timestamps.iter().copied().max().unwrap_or(0);
        let mut rng = SeededRng::derive(seed, "fresh-holdout");
        let chosen: Vec<bool> =
            self.timestamps.iter().map(|timestamp| *timestamp > newest - recent_ms && rng.chance(fraction)).collect();
        self.partition(|index| chosen[index])
    }

    /// A seeded random split: about `fraction` of rows become the second set.
    pub fn split_random(&self, fraction: f64, seed: u64) -> (TrainingSet, TrainingSet) {
        let mut rng = SeededRng::derive(seed, "random-split");
        let chosen: Vec<bool> = (0..self.len()).map(|_| rng.chance(fraction)).collect();
        self.partition(|index| chosen[index])
    }

    /// Rows where `second(row)` holds go to the second set, the others to the first.
    pub(crate) fn partition(&self, second: impl Fn(usize) -> bool) -> (TrainingSet, TrainingSet) {
        let mut first_set = TrainingSet::default();
        let mut second_set = TrainingSet::default();
        for index in 0..self.len() {
            let target = if second(index) { &mut second_set } else { &mut first_set };
            target.ids.push(self.ids[index].clone());
            target.timestamps.push(self.timestamps[index]);
            target.values.push(self.values[index].clone());
            target.labels.push(self.labels[index]);
        }
        (first_set, second_set)
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
            FeatureSpec {
                name: name.clone(),
                kind,
                nullable: nullable.contains(name) || spec.categorical.contains(name),
            }
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

/// The share of the training rows (a seeded random sample) used for early stopping and for
/// choosing the decision threshold, so the holdout stays untouched until the final evaluation.
pub const VALIDATION_FRACTION: f64 = 0.15;

/// Fits `trainer` on `train` (early-stopping on a seeded [`VALIDATION_FRACTION`] of it), picks
/// the threshold whose false-positive rate on that validation part is at most
/// `target_false_positive_rate`, and evaluates on `holdout`, which training never saw.
pub fn fit(
    trainer: &Trainer,
    signature: &Signature,
    train: &TrainingSet,
    holdout: &TrainingSet,
    target_false_positive_rate: f64,
    seed: u64,
    metadata: BTreeMap<String, String>,
) -> Result<FitOutcome> {
    let (fit_part, validation) = train.split_random(VALIDATION_FRACTION, seed);
    let fit_rows = fit_part.encode(signature)?;
    let validation_rows = validation.encode(signature)?;
    let holdout_rows = holdout.encode(signature)?;
    let model = match trainer {
        Trainer::Gbdt(params) => {
            let categorical: Vec<bool> = signature
                .features
                .iter()
                .map(|feature| matches!(feature.kind, FeatureKind::Categorical { .. }))
                .collect();
            let (model, _) = gbdt::train(
                &fit_rows,
                &fit_part.labels,
                &categorical,
                params,
                Some((&validation_rows, &validation.labels)),
            )?;
            Model::Gbdt(model)
        }
        Trainer::Logistic(params) => Model::Logistic(logistic::train(signature, &fit_rows, &fit_part.labels, params)?),
    };
    let validation_scores = model.predict_rows(&validation_rows);
    let threshold =
        metrics::threshold_for_false_positive_rate(&validation_scores, &validation.labels, target_false_positive_rate);
    let holdout_scores = model.predict_rows(&holdout_rows);
    let metrics = metrics::binary_metrics(&holdout_scores, &holdout.labels, threshold);
    let artifact = ModelArtifact::new(model, signature.clone(), threshold, metadata)?;
    Ok(FitOutcome { artifact, metrics, holdout_scores })
}
