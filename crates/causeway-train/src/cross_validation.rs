//! K-fold cross-validation: the rows split into `folds` seeded, near-equal parts; each part is the
//! holdout once while [`fit`] trains on the others. Reports every fold's metrics, their means and
//! standard deviations, so a single lucky split cannot pass for a model's quality.

use std::collections::BTreeMap;

use causeway_types::SeededRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{Problem, Trainer, TrainingSet, fit};

/// The outcome of a cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Each fold's holdout metrics, in fold order.
    pub folds: Vec<BTreeMap<String, f64>>,
    /// The mean of each metric over the folds.
    pub mean: BTreeMap<String, f64>,
    /// The (population) standard deviation of each metric over the folds.
    pub standard_deviation: BTreeMap<String, f64>,
}

/// The fold (0..`folds`) of each row: a seeded shuffle dealt round-robin, so fold sizes differ by
/// at most one.
pub fn assign_folds(rows: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = SeededRng::derive(seed, "cross-validation");
    for index in (1..rows).rev() {
        let other = (rng.next_u64() % (index as u64 + 1)) as usize;
        order.swap(index, other);
    }
    let mut assignment = vec![0; rows];
    for (position, row) in order.into_iter().enumerate() {
        assignment[row] = position % folds.max(1);
    }
    assignment
}

/// Trains and evaluates `trainer` once per fold.
pub fn cross_validate(
    trainer: &Trainer,
    problem: &Problem<'_>,
    set: &TrainingSet,
    folds: usize,
) -> Result<CrossValidation> {
    if folds < 2 || folds > set.len() {
        return Err(Error::Data(format!("{folds} folds for {} rows: need 2 ≤ folds ≤ rows", set.len())));
    }
    let assignment = assign_folds(set.len(), folds, problem.seed);
    let mut results = Vec::with_capacity(folds);
    for fold in 0..folds {
        let (train, holdout) = set.partition(|row| assignment[row] == fold);
        let outcome = fit(trainer, problem, &train, &holdout, BTreeMap::new())?;
        results.push(outcome.metrics);
    }
    let names: Vec<String> = results.first().map(|first| first.keys().cloned().collect()).unwrap_or_default();
    let mut mean = BTreeMap::new();
    let mut standard_deviation = BTreeMap::new();
    for name in names {
        let values: Vec<f64> = results.iter().filter_map(|metrics| metrics.get(&name).copied()).collect();
        let average = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|value| (value - average).powi(2)).sum::<f64>() / values.len() as f64;
        mean.insert(name.clone(), average);
        standard_deviation.insert(name, variance.sqrt());
    }
    Ok(CrossValidation { folds: results, mean, standard_deviation })
}

#[cfg(test)]
mod tests {
    use causeway_models::{FeatureKind, FeatureSpec, Signature};
    use causeway_types::FeatureValue;

    use super::*;
    use crate::GbdtParams;

    #[test]
    fn folds_partition_the_rows_evenly_and_deterministically() {
        let folds = assign_folds(103, 5, 7);
        let sizes: Vec<usize> = (0..5).map(|fold| folds.iter().filter(|assigned| **assigned == fold).count()).collect();
        assert!(sizes.iter().all(|size| *size == 20 || *size == 21), "{sizes:?}");
        assert_eq!(folds, assign_folds(103, 5, 7));
        assert_ne!(folds, assign_folds(103, 5, 8));
    }

    #[test]
    fn every_fold_is_held_out_once_and_the_spread_is_reported() -> Result<()> {
        let mut rng = SeededRng::new(3);
        let mut set = TrainingSet::default();
        for index in 0..1_200 {
            let (a, b) = (rng.uniform() * 4.0 - 2.0, rng.uniform() * 4.0 - 2.0);
            let positive = a + b + (rng.uniform() - 0.5) > 0.8;
            set.ids.push(index.to_string());
            set.timestamps.push(index);
            set.values.push(vec![FeatureValue::Number(a), FeatureValue::Number(b)]);
            set.labels.push(f64::from(u8::from(positive)));
        }
        let numeric = |name: &str| FeatureSpec { name: name.into(), kind: FeatureKind::Numeric, nullable: false };
        let signature = Signature { features: vec![numeric("a"), numeric("b")] };
        let trainer = Trainer::Gbdt(GbdtParams { rounds: 30, max_depth: 3, ..GbdtParams::default() });
        let task = causeway_models::Task::binary();
        let problem = Problem { task: &task, signature: &signature, target_false_positive_rate: 0.05, seed: 11 };
        let result = cross_validate(&trainer, &problem, &set, 4)?;
        assert_eq!(result.folds.len(), 4);
        let held_out: f64 = result.folds.iter().map(|metrics| metrics["rows"]).sum();
        assert_eq!(held_out, 1_200.0, "every row is held out exactly once");
        assert!(result.mean["roc_auc"] > 0.9, "{:?}", result.mean);
        assert!(result.standard_deviation["roc_auc"] < 0.05);
        assert_eq!(result, cross_validate(&trainer, &problem, &set, 4)?, "same seed, same result");
        assert!(cross_validate(&trainer, &problem, &set, 1).is_err());
        Ok(())
    }
}
