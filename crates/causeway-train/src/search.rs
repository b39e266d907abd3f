//! Hyper-parameter search: random search and successive halving over a declared space.
//!
//! Every trial is a trainer with some parameters drawn from the space (seeded: the same seed draws
//! the same trials). Trials are fitted on one part of the training rows and scored on the rest;
//! the holdout the caller keeps is never seen. Successive halving starts every trial on a small
//! budget (boosting rounds, or solver iterations), keeps the best third (`reduction`) and gives
//! those three times the budget, until the full budget. The caller records each evaluation (a
//! child run) through the observer; this module does not touch the store.

use std::collections::BTreeMap;

use causeway_models::Task;
use causeway_types::SeededRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{FitOutcome, Problem, Trainer, TrainingSet, fit};

/// The share of the training rows the search scores its trials on.
pub const SEARCH_VALIDATION_FRACTION: f64 = 0.2;

/// Where one parameter's values are drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// A real number uniformly in `[low, high]`.
    Uniform([f64; 2]),
    /// A positive real number whose logarithm is uniform in `[ln low, ln high]`.
    LogUniform([f64; 2]),
    /// An integer uniformly in `low..=high`.
    Integers([i64; 2]),
    /// One of the listed values (numbers, strings, booleans).
    Choice(Vec<serde_json::Value>),
}

impl Distribution {
    fn check(&self, name: &str) -> Result<()> {
        let bad = |why: &str| Err(Error::Search(format!("parameter `{name}`: {why}")));
        match self {
            Self::Uniform([low, high]) if !(low.is_finite() && high.is_finite() && low <= high) => {
                bad("uniform needs finite [low, high] with low <= high")
            }
            Self::LogUniform([low, high]) if !(*low > 0.0 && high.is_finite() && low <= high) => {
                bad("log_uniform needs 0 < low <= high")
            }
            Self::Integers([low, high]) if low > high => bad("integers needs [low, high] with low <= high"),
            Self::Choice(values) if values.is_empty() => bad("choice needs at least one value"),
            _ => Ok(()),
        }
    }

    fn sample(&self, rng: &mut SeededRng) -> serde_json::Value {
        match self {
            Self::Uniform([low, high]) => serde_json::json!(rng.range(*low, *high)),
            Self::LogUniform([low, high]) => serde_json::json!(rng.range(low.ln(), high.ln()).exp()),
            Self::Integers([low, high]) => {
                let span = (high - low) as u64 + 1;
                serde_json::json!(low + (rng.next_u64() % span) as i64)
            }
            Self::Choice(values) => values[rng.below(values.len())].clone(),
        }
    }
}

/// How trials are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Every trial on the full budget.
    Random,
    /// Every trial on a small budget; the best `1 / reduction` go on with `reduction` times more.
    #[default]
    SuccessiveHalving,
}

/// A search, as declared in `causeway.toml` under `[model.search]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSpec {
    /// How many configurations to draw.
    pub trials: usize,
    /// How they are scheduled.
    pub strategy: Strategy,
    /// The metric that ranks trials (`roc_auc`, `pr_auc`, `log_loss`, `brier`, `accuracy`,
    /// `macro_f1`, `rmse`, `mae`, ...; default: the task's headline metric, ROC-AUC, accuracy or
    /// RMSE). Losses and errors are minimized, everything else maximized.
    pub metric: Option<String>,
    /// Successive halving keeps `1 / reduction` of the trials per rung.
    pub reduction: usize,
    /// Parameter name → distribution; names are the trainer's parameters.
    pub space: BTreeMap<String, Distribution>,
}

impl Default for SearchSpec {
    fn default() -> Self {
        Self { trials: 16, strategy: Strategy::SuccessiveHalving, metric: None, reduction: 3, space: BTreeMap::new() }
    }
}

impl SearchSpec {
    /// The metric that ranks trials for `task`.
    pub fn metric_for(&self, task: &Task) -> String {
        self.metric.clone().unwrap_or_else(|| task.kind().headline_metric().0.to_string())
    }
}

/// Whether a larger value of `metric` is better (losses and errors are minimized).
pub fn maximize(metric: &str) -> bool {
    !matches!(metric, "log_loss" | "brier" | "rmse" | "mae" | "mape")
}

/// One drawn configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// 0-based trial number (the draw order).
    pub number: usize,
    /// The drawn values, as text, by parameter name.
    pub drawn: BTreeMap<String, String>,
    /// The trainer with the drawn values (at the full budget).
    pub trainer: Trainer,
}

/// One evaluation of a trial at a budget.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialResult {
    /// The trial.
    pub trial: usize,
    /// The rung (0 = first); random search has one rung.
    pub rung: usize,
    /// Boosting rounds or solver iterations used.
    pub budget: usize,
    /// Validation metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// Every trial drawn.
    pub trials: Vec<Trial>,
    /// Every evaluation, in the order they ran.
    pub evaluations: Vec<TrialResult>,
    /// The winning trial's number (best metric at the full budget; the lower number on ties).
    pub best: usize,
    /// The winner's metric value.
    pub best_value: f64,
}

impl SearchOutcome {
    /// The winning trial.
    pub fn best_trial(&self) -> Option<&Trial> {
        self.trials.get(self.best)
    }
}

/// The parameter a strategy's budget is spent on, and its full value.
fn budget_of(trainer: &Trainer) -> (&'static str, usize) {
    match trainer {
        Trainer::Gbdt(params) => ("rounds", params.rounds),
        Trainer::Logistic(params) => ("max_iterations", params.max_iterations),
        Trainer::Linear(_) => ("l2", 0),
    }
}

fn with_budget(trainer: &Trainer, budget: usize) -> Trainer {
    let mut trainer = trainer.clone();
    match &mut trainer {
        Trainer::Gbdt(params) => params.rounds = budget,
        Trainer::Logistic(params) => params.max_iterations = budget,
        Trainer::Linear(_) => {}
    }
    trainer
}

/// Draws `spec.trials` trainers from `base` and the space: the same seed gives the same trials.
pub fn draw_trials(spec: &SearchSpec, base: &Trainer, seed: u64) -> Result<Vec<Trial>> {
    if spec.trials == 0 {
        return Err(Error::Search("trials must be at least 1".into()));
    }
    if spec.space.is_empty() {
        return Err(Error::Search("the space is empty: name at least one parameter under [model.search.space]".into()));
    }
    let base_value = serde_json::to_value(base).map_err(|error| Error::Search(error.to_string()))?;
    (0..spec.trials)
        .map(|number| {
            let mut rng = SeededRng::derive(seed, &format!("search-trial-{number}"));
            let mut value = base_value.clone();
            let mut drawn = BTreeMap::new();
            for (name, distribution) in &spec.space {
                distribution.check(name)?;
                if name == "family" {
                    return Err(Error::Search("the family is not a searchable parameter".into()));
                }
                let sample = distribution.sample(&mut rng);
                drawn.insert(name.clone(), sample.to_string());
                if let Some(object) = value.as_object_mut() {
                    object.insert(name.clone(), sample);
                }
            }
            let trainer: Trainer = serde_json::from_value(value).map_err(|error| {
                Error::Search(format!("the {} trainer does not take these values: {error}", base.family()))
            })?;
            Ok(Trial { number, drawn, trainer })
        })
        .collect()
}

/// Runs the search on `set` (split into a fitting part and a scoring part, seeded) and calls
/// `observe` after every evaluation, so the caller can record it as it happens.
pub fn search(
    spec: &SearchSpec,
    base: &Trainer,
    problem: &Problem<'_>,
    set: &TrainingSet,
    mut observe: impl FnMut(&Trial, &TrialResult) -> Result<()>,
) -> Result<SearchOutcome> {
    let (task, seed) = (problem.task, problem.seed);
    let base = &base.for_task(task.kind());
    let trials = draw_trials(spec, base, seed)?;
    let metric = spec.metric_for(task);
    let (budget_name, full_budget) = budget_of(base);
    if spec.strategy == Strategy::SuccessiveHalving && spec.space.contains_key(budget_name) {
        return Err(Error::Search(format!(
            "successive halving sets `{budget_name}` itself; remove it from the space or use strategy = \"random\""
        )));
    }
    if spec.strategy == Strategy::SuccessiveHalving && spec.reduction < 2 {
        return Err(Error::Search("reduction must be at least 2".into()));
    }
    let (fit_part, scoring_part) = set.split_random(SEARCH_VALIDATION_FRACTION, seed ^ 0x5EA2C4);
    let no_positives = |part: &TrainingSet| part.labels.iter().all(|label| *label < 0.5);
    if matches!(task, Task::Binary { .. }) && (no_positives(&scoring_part) || no_positives(&fit_part)) {
        return Err(Error::Data("the search's fitting or scoring part has no positive labels".into()));
    }
    let rank_value = |metrics: &BTreeMap<String, f64>| -> Result<f64> {
        let value = metrics.get(&metric).copied().ok_or_else(|| {
            let known: Vec<&String> = metrics.keys().collect();
            Error::Search(format!("unknown metric `{metric}` for a {} task; trials report {known:?}", task.kind()))
        })?;
        // Larger is better after this; NaN ranks last.
        let value = if maximize(&metric) { value } else { -value };
        Ok(if value.is_nan() { f64::NEG_INFINITY } else { value })
    };

    // The budgets of the rungs: full / reduction^k, ..., full (random search: one rung).
    let budgets: Vec<usize> = match spec.strategy {
        Strategy::Random => vec![full_budget],
        Strategy::SuccessiveHalving => {
            let mut rungs = 0;
            let mut survivors = trials.len();
            while survivors > 1 && full_budget / spec.reduction.pow(rungs + 1) >= 1 {
                survivors = survivors.div_ceil(spec.reduction);
                rungs += 1;
            }
            (0..=rungs).rev().map(|power| (full_budget / spec.reduction.pow(power)).max(1)).collect()
        }
    };
    let mut alive: Vec<usize> = (0..trials.len()).collect();
    let mut evaluations = Vec::new();
    let mut last_scores: Vec<(usize, f64)> = Vec::new();
    for (rung, budget) in budgets.iter().enumerate() {
        last_scores.clear();
        for &number in &alive {
            let trial = &trials[number];
            let trainer = with_budget(&trial.trainer, *budget);
            let FitOutcome { metrics, .. } = fit(&trainer, problem, &fit_part, &scoring_part, BTreeMap::new())?;
            let evaluation = TrialResult { trial: number, rung, budget: *budget, metrics };
            last_scores.push((number, rank_value(&evaluation.metrics)?));
            observe(trial, &evaluation)?;
            evaluations.push(evaluation);
        }
        // Best first; the lower trial number on ties.
        last_scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if rung + 1 < budgets.len() {
            let keep = alive.len().div_ceil(spec.reduction).max(1);
            alive = last_scores.iter().take(keep).map(|(number, _)| *number).collect();
            alive.sort_unstable();
        }
    }
    let (best, score) = last_scores.first().copied().ok_or_else(|| Error::Search("no trial ran".into()))?;
    let best_value = if maximize(&metric) { score } else { -score };
    Ok(SearchOutcome { trials, evaluations, best, best_value })
}

#[cfg(test)]
mod tests {
    use causeway_models::{FeatureKind, FeatureSpec, Signature};
    use causeway_types::FeatureValue;

    use super::*;
    use crate::GbdtParams;

    fn set(seed: u64, count: usize) -> (Signature, TrainingSet) {
        let mut rng = SeededRng::new(seed);
        let mut set = TrainingSet::default();
        for index in 0..count {
            let a = rng.range(-1.0, 1.0);
            let b = rng.range(-1.0, 1.0);
            let positive = (a * b > 0.1) != rng.chance(0.1);
            set.ids.push(index.to_string());
            set.timestamps.push(index as i64);
            set.values.push(vec![FeatureValue::Number(a), FeatureValue::Number(b)]);
            set.labels.push(f64::from(u8::from(positive)));
        }
        let features = ["a", "b"]
            .iter()
            .map(|name| FeatureSpec { name: (*name).into(), kind: FeatureKind::Numeric, nullable: false })
            .collect();
        (Signature { features }, set)
    }

    /// A binary problem over `signature`.
    fn problem(signature: &Signature, seed: u64) -> Problem<'_> {
        static TASK: std::sync::OnceLock<Task> = std::sync::OnceLock::new();
        Problem { task: TASK.get_or_init(Task::binary), signature, target_false_positive_rate: 0.05, seed }
    }

    fn spec(strategy: Strategy) -> SearchSpec {
        SearchSpec {
            trials: 9,
            strategy,
            space: BTreeMap::from([
                ("learning_rate".into(), Distribution::LogUniform([0.05, 0.5])),
                ("max_depth".into(), Distribution::Integers([1, 4])),
                ("min_child_weight".into(), Distribution::Choice(vec![serde_json::json!(1.0), serde_json::json!(5.0)])),
            ]),
            ..SearchSpec::default()
        }
    }

    #[test]
    fn successive_halving_narrows_the_field_and_is_reproducible() -> Result<()> {
        let (signature, set) = set(1, 3_000);
        let base = Trainer::Gbdt(GbdtParams { rounds: 27, early_stopping_rounds: None, ..GbdtParams::default() });
        let mut seen = Vec::new();
        let outcome = search(&spec(Strategy::SuccessiveHalving), &base, &problem(&signature, 7), &set, |trial, e| {
            seen.push((trial.number, e.rung, e.budget));
            Ok(())
        })?;
        // Nine trials on 3 rounds, three on 9, one on 27.
        let per_rung: Vec<(usize, usize)> = (0..3)
            .map(|rung| {
                let runs: Vec<_> = seen.iter().filter(|(_, r, _)| *r == rung).collect();
                (runs.len(), runs.first().map_or(0, |(_, _, budget)| *budget))
            })
            .collect();
        assert_eq!(per_rung, vec![(9, 3), (3, 9), (1, 27)]);
        // The survivors of each rung were the best of the rung before.
        for rung in 0..2 {
            let scores: Vec<(usize, f64)> = outcome
                .evaluations
                .iter()
                .filter(|e| e.rung == rung)
                .map(|e| (e.trial, e.metrics["roc_auc"]))
                .collect();
            let next: Vec<usize> = outcome.evaluations.iter().filter(|e| e.rung == rung + 1).map(|e| e.trial).collect();
            let worst_kept =
                next.iter().map(|t| scores.iter().find(|(n, _)| n == t).map_or(0.0, |s| s.1)).fold(1.0, f64::min);
            let best_dropped = scores.iter().filter(|(n, _)| !next.contains(n)).map(|s| s.1).fold(0.0, f64::max);
            assert!(worst_kept >= best_dropped, "rung {rung}: kept {worst_kept}, dropped {best_dropped}");
        }
        let last = outcome.evaluations.last().map(|e| e.trial);
        assert_eq!(Some(outcome.best), last);
        assert!(outcome.best_value > 0.8, "{}", outcome.best_value);
        // The same seed draws and picks the same.
        let again = search(&spec(Strategy::SuccessiveHalving), &base, &problem(&signature, 7), &set, |_, _| Ok(()))?;
        assert_eq!(again.best, outcome.best);
        assert_eq!(again.trials, outcome.trials);
        Ok(())
    }

    #[test]
    fn random_search_runs_every_trial_on_the_full_budget() -> Result<()> {
        let (signature, set) = set(2, 2_000);
        let base = Trainer::Gbdt(GbdtParams { rounds: 10, ..GbdtParams::default() });
        let outcome = search(&spec(Strategy::Random), &base, &problem(&signature, 3), &set, |_, _| Ok(()))?;
        assert_eq!(outcome.evaluations.len(), 9);
        assert!(outcome.evaluations.iter().all(|e| e.budget == 10));
        let best = outcome.evaluations.iter().map(|e| e.metrics["roc_auc"]).fold(f64::MIN, f64::max);
        assert_eq!(outcome.best_value, best);
        // Drawn values stay inside their distributions.
        for trial in &outcome.trials {
            let Trainer::Gbdt(params) = &trial.trainer else { panic!("gbdt") };
            assert!((0.05..=0.5).contains(&params.learning_rate) && (1..=4).contains(&params.max_depth));
            assert!(params.min_child_weight == 1.0 || params.min_child_weight == 5.0);
        }
        Ok(())
    }

    #[test]
    fn mistakes_are_named() {
        let (signature, set) = set(3, 500);
        let base = Trainer::Gbdt(GbdtParams { rounds: 5, ..GbdtParams::default() });
        let run = |spec: &SearchSpec| {
            search(spec, &base, &problem(&signature, 1), &set, |_, _| Ok(()))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let mut unknown = spec(Strategy::Random);
        unknown.space.insert("learning_speed".into(), Distribution::Uniform([0.0, 1.0]));
        assert!(run(&unknown).contains("learning_speed"), "{}", run(&unknown));
        let mut budget = spec(Strategy::SuccessiveHalving);
        budget.space.insert("rounds".into(), Distribution::Integers([10, 20]));
        assert!(run(&budget).contains("sets `rounds` itself"), "{}", run(&budget));
        let mut metric = spec(Strategy::Random);
        metric.metric = Some("accuracy".into());
        assert!(run(&metric).contains("unknown metric `accuracy` for a binary task"), "{}", run(&metric));
        let mut bad_range = spec(Strategy::Random);
        bad_range.space.insert("lambda".into(), Distribution::LogUniform([0.0, 1.0]));
        assert!(run(&bad_range).contains("parameter `lambda`"), "{}", run(&bad_range));
    }
}
