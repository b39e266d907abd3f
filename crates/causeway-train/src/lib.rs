//! Training in Causeway: the trainers (histogram gradient-boosted trees, logistic and
//! multinomial logistic regression, ridge regression) for binary, multi-class and regression
//! tasks, evaluation, the training-set and signature builder, and run tracking with what
//! reproduces a run (seed, dataset version, git commit, tool version, parameters, metrics). The
//! metrics themselves live in `causeway_models::metrics` (re-exported here as `metrics`), so
//! serving and monitoring measure without linking the trainers.
//!
//! This crate does not serve: it turns labelled feature rows into model artifacts and records runs.

pub mod cross_validation;
mod error;
pub mod evaluation;
pub mod gbdt;
pub mod logistic;
pub mod search;
pub mod tracking;

use std::collections::{BTreeMap, BTreeSet};

use causeway_features::FeatureSetSpec;
pub use causeway_models::metrics;
use causeway_models::{FeatureKind, FeatureSpec, Model, ModelArtifact, Signature, Task, TaskKind};
use causeway_types::{FeatureValue, SeededRng};
use serde::{Deserialize, Serialize};

pub use cross_validation::{CrossValidation, cross_validate};
pub use error::{Error, Result};
pub use evaluation::{Evaluation, evaluate};
pub use gbdt::{GbdtParams, Loss};
pub use logistic::{LinearParams, LogisticParams};
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
    /// Encoded labels: 0/1 (binary), the class index (multi-class) or the value (regression).
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

    /// How many rows [`TrainingSet::split_random`] with these arguments puts in the second set.
    pub fn count_random(&self, fraction: f64, seed: u64) -> usize {
        let mut rng = SeededRng::derive(seed, "random-split");
        (0..self.len()).filter(|_| rng.chance(fraction)).count()
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
            FeatureSpec { name: name.clone(), kind, nullable: nullable.contains(name) }
        })
        .collect();
    Signature { features }
}

/// Which model family to fit, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Trainer {
    /// Gradient-boosted trees (every task).
    Gbdt(GbdtParams),
    /// Logistic regression: binary, or multinomial for several classes. On a regression task
    /// it is read as [`Trainer::Linear`] with the same penalty.
    Logistic(LogisticParams),
    /// Ridge regression. On a classification task it is read as [`Trainer::Logistic`].
    Linear(LinearParams),
}

impl Trainer {
    /// The family name.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Gbdt(_) => "gbdt",
            Self::Logistic(_) => "logistic",
            Self::Linear(_) => "linear",
        }
    }

    /// This trainer as it fits `task`: the linear families swap (logistic for classes, linear
    /// for numbers) keeping their penalty; trees fit every task.
    pub fn for_task(&self, task: TaskKind) -> Trainer {
        match (self, task) {
            (Self::Logistic(params), TaskKind::Regression) => Self::Linear(LinearParams { l2: params.l2 }),
            (Self::Linear(params), TaskKind::Binary | TaskKind::Multiclass) => {
                Self::Logistic(LogisticParams { l2: params.l2, ..LogisticParams::default() })
            }
            (trainer, _) => trainer.clone(),
        }
    }

    /// The parameters as strings, for tracking.
    pub fn params(&self) -> BTreeMap<String, String> {
        let value = match self {
            Self::Gbdt(params) => serde_json::to_value(params),
            Self::Logistic(params) => serde_json::to_value(params),
            Self::Linear(params) => serde_json::to_value(params),
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
    /// Holdout metrics (at the chosen threshold, for binary models).
    pub metrics: BTreeMap<String, f64>,
    /// One score per holdout row, in order: the positive class's probability, the most likely
    /// class's probability, or the prediction.
    pub holdout_scores: Vec<f64>,
    /// Every output of every holdout row, row after row (the same as the scores unless
    /// multi-class, where it holds every class's probability).
    pub holdout_outputs: Vec<f64>,
    /// Rounds the trees kept (early stopping), for GBDT.
    pub rounds: Option<usize>,
}

/// What is being learnt, shared by every fit of one training run (cross-validation folds, search
/// trials, the final model): the task, the inputs, the false-positive rate binary thresholds aim
/// for, and the seed of every split.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The task, with its classes.
    pub task: &'a Task,
    /// The model's inputs.
    pub signature: &'a Signature,
    /// Binary models: the threshold is the lowest whose validation false-positive rate is at
    /// most this.
    pub target_false_positive_rate: f64,
    /// Seeds the validation split.
    pub seed: u64,
}

/// Which signature features the trees split as categories.
fn categorical_mask(signature: &Signature) -> Vec<bool> {
    signature.features.iter().map(|feature| matches!(feature.kind, FeatureKind::Categorical { .. })).collect()
}

/// The loss the trees minimize for `task`.
fn loss_for(task: &Task) -> Loss {
    match task {
        Task::Binary { .. } => Loss::Logistic,
        Task::Multiclass { classes } => Loss::Softmax { classes: classes.len() },
        Task::Regression => Loss::SquaredError,
    }
}

/// The share of the training rows (a seeded random sample) used for early stopping and for
/// choosing the decision threshold, so the holdout stays untouched until the final evaluation.
pub const VALIDATION_FRACTION: f64 = 0.15;

/// Fits `trainer` for `task` on `train` and evaluates it on `holdout`, which training never saw.
///
/// A seeded [`VALIDATION_FRACTION`] of `train` early-stops the trees and, for binary models,
/// picks the threshold whose false-positive rate there is at most `target_false_positive_rate`.
/// With [`GbdtParams::refit`] (the default), the trees are then grown again on all of `train`
/// for the rounds early stopping chose, so no row is spent on validation alone; the threshold
/// stays the one picked on the validation rows.
pub fn fit(
    trainer: &Trainer,
    problem: &Problem<'_>,
    train: &TrainingSet,
    holdout: &TrainingSet,
    metadata: BTreeMap<String, String>,
) -> Result<FitOutcome> {
    let Problem { task, signature, target_false_positive_rate, seed } = *problem;
    let trainer = trainer.for_task(task.kind());
    let (fit_part, validation) = train.split_random(VALIDATION_FRACTION, seed);
    let fit_rows = fit_part.encode(signature)?;
    let validation_rows = validation.encode(signature)?;
    let holdout_rows = holdout.encode(signature)?;
    let classes = task.classes().len();
    let (model, rounds) = match &trainer {
        Trainer::Gbdt(params) => {
            let (categorical, loss) = (categorical_mask(signature), loss_for(task));
            let validating = !validation.is_empty();
            let (model, history) = gbdt::train_loss(
                &fit_rows,
                &fit_part.labels,
                &categorical,
                params,
                validating.then_some((validation_rows.as_slice(), validation.labels.as_slice())),
                loss,
            )?;
            (Model::Gbdt(model), Some(history.best_rounds))
        }
        Trainer::Logistic(params) => match task {
            Task::Multiclass { .. } => {
                (Model::Linear(logistic::train_softmax(signature, &fit_rows, &fit_part.labels, classes, params)?), None)
            }
            _ => (Model::Logistic(logistic::train(signature, &fit_rows, &fit_part.labels, params)?), None),
        },
        Trainer::Linear(params) => {
            (Model::Linear(logistic::train_ridge(signature, &fit_rows, &fit_part.labels, params)?), None)
        }
    };
    let threshold = match task {
        Task::Binary { .. } if !validation.is_empty() => metrics::threshold_for_false_positive_rate(
            &model.predict_outputs(&validation_rows),
            &validation.labels,
            target_false_positive_rate,
        ),
        _ => 0.5,
    };
    // Grow the trees again on every training row, for the rounds early stopping chose.
    let model = match (&trainer, rounds) {
        (Trainer::Gbdt(params), Some(rounds)) if params.refit && !validation.is_empty() => {
            let refit = GbdtParams { rounds: rounds.max(1), early_stopping_rounds: None, ..params.clone() };
            let (categorical, loss) = (categorical_mask(signature), loss_for(task));
            let all_rows = train.encode(signature)?;
            Model::Gbdt(gbdt::train_loss(&all_rows, &train.labels, &categorical, &refit, None, loss)?.0)
        }
        _ => model,
    };
    let holdout_outputs = model.predict_outputs(&holdout_rows);
    let holdout_scores = if task.outputs() > 1 {
        holdout_outputs.chunks(classes).map(|row| row.iter().copied().fold(f64::NAN, f64::max)).collect()
    } else {
        holdout_outputs.clone()
    };
    let metrics = metrics::task_metrics(task, &holdout_outputs, &holdout.labels, threshold);
    let artifact = ModelArtifact::for_task(model, signature.clone(), task.clone(), threshold, metadata)?;
    Ok(FitOutcome { artifact, metrics, holdout_scores, holdout_outputs, rounds })
}

#[cfg(test)]
mod tests {
    use causeway_models::{FeatureKind, FeatureSpec, Model};

    use super::*;

    fn problem_set(seed: u64, rows: usize) -> (Signature, TrainingSet) {
        let mut rng = SeededRng::new(seed);
        let mut set = TrainingSet::default();
        for index in 0..rows {
            let (a, b) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
            set.ids.push(index.to_string());
            set.timestamps.push(index as i64);
            set.values.push(vec![FeatureValue::Number(a), FeatureValue::Number(b)]);
            set.labels.push(f64::from(u8::from((a * b > 0.0) != rng.chance(0.1))));
        }
        let numeric = |name: &str| FeatureSpec { name: name.into(), kind: FeatureKind::Numeric, nullable: true };
        (Signature { features: vec![numeric("a"), numeric("b")] }, set)
    }

    #[test]
    fn early_stopping_picks_the_rounds_and_the_refit_grows_them_on_every_training_row() -> Result<()> {
        let (signature, set) = problem_set(4, 3_000);
        let (train, holdout) = set.split_random(0.3, 1);
        let task = Task::binary();
        let problem = Problem { task: &task, signature: &signature, target_false_positive_rate: 0.05, seed: 9 };
        let params = GbdtParams { rounds: 300, max_depth: 3, ..GbdtParams::default() };
        let refit = fit(&Trainer::Gbdt(params.clone()), &problem, &train, &holdout, BTreeMap::new())?;
        let once =
            fit(&Trainer::Gbdt(GbdtParams { refit: false, ..params }), &problem, &train, &holdout, BTreeMap::new())?;
        let rounds = refit.rounds.expect("early stopping chose the rounds");
        assert!(rounds < 300, "early stopping stopped ({rounds} rounds)");
        let trees = |outcome: &FitOutcome| match &outcome.artifact.model {
            Model::Gbdt(model) => model.trees.len(),
            other => panic!("a GBDT, not {}", other.flavor()),
        };
        assert_eq!((trees(&refit), trees(&once)), (rounds, rounds), "both keep the chosen rounds");
        assert_ne!(refit.artifact.model, once.artifact.model, "the refit learnt from the validation rows too");
        assert_eq!(refit.artifact.threshold, once.artifact.threshold, "the threshold is the validation rows' own");
        Ok(())
    }
}
