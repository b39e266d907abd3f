//! `causeway.toml`: the declarative description of a project, versioned in git.

use std::collections::BTreeMap;
use std::path::Path;

use causeway_data::ExpectationSuite;
use causeway_features::FeatureSetSpec;
use causeway_models::TaskKind;
use causeway_monitor::AlertRules;
use causeway_train::{GbdtParams, LogisticParams, SearchSpec, Trainer};
use causeway_types::Span;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Cron;

/// The whole project description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project-wide settings.
    #[serde(default)]
    pub project: ProjectSection,
    /// Expectation suites per dataset name.
    #[serde(default)]
    pub datasets: BTreeMap<String, ExpectationSuite>,
    /// The features models read.
    #[serde(default)]
    pub features: Option<FeatureSetSpec>,
    /// The model the loop trains and serves.
    #[serde(default)]
    pub model: Option<ModelSection>,
    /// More models, each with its own dataset and, where it says so, its own features, monitor
    /// and loop settings (`[[models]]`; `[model]` alone is the common case).
    #[serde(default)]
    pub models: Vec<ModelSection>,
    /// Alert thresholds.
    #[serde(default)]
    pub monitor: AlertRules,
    /// Retraining triggers and rollout.
    #[serde(default, rename = "loop")]
    pub rollout: LoopSection,
    /// Where metadata and artifacts live (default: embedded, under `.causeway/`).
    #[serde(default)]
    pub storage: StorageSection,
    /// The LLM gateway's providers, routes and prices (`causeway gateway --dir`).
    #[serde(default)]
    pub gateway: Option<causeway_gateway::GatewayConfig>,
}

/// Where the project's stores live. Each is a URL; unset means the embedded default. The
/// `--store` / `--artifacts` options (or `CAUSEWAY_STORE` / `CAUSEWAY_ARTIFACTS`) override these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// `postgresql://user@host:5432/db[?schema=NAME]` or `sqlite:///path/meta.db`.
    pub metadata: Option<String>,
    /// `s3://bucket/prefix[?endpoint=URL]` (credentials from `AWS_*`) or a local directory.
    pub artifacts: Option<String>,
}

/// Project-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSection {
    /// A name for people.
    pub name: String,
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self { name: "causeway-project".into() }
    }
}

/// What the loop trains and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The registered model's name.
    pub name: String,
    /// The dataset rows come from.
    pub dataset: String,
    /// The label column; rows without a label take one from the label store (by id).
    pub label: String,
    /// `binary`, `multiclass` or `regression`; inferred from the label's values when absent.
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// Binary tasks: the label value that is the positive class (needed when the values are not
    /// a yes/no, true/false or 1/0 pair).
    #[serde(default)]
    pub positive_class: Option<String>,
    /// Multi-class tasks: the classes, in output order (default: the label's values, sorted).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// The row id column (the prediction request id labels join on); optional.
    #[serde(default)]
    pub id_column: Option<String>,
    /// The event-time column (a timestamp, or epoch milliseconds); optional. With it, the
    /// holdout is drawn from the freshest `holdout_window` and `train --days` picks a window;
    /// without it, the holdout is a seeded random share of the rows.
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// The champion's trainer.
    #[serde(default = "default_trainer")]
    pub trainer: Trainer,
    /// A simpler trainer fitted alongside for comparison (tracked, not deployed).
    #[serde(default = "default_baseline")]
    pub baseline_trainer: Option<Trainer>,
    /// The decision threshold is chosen for this false-positive rate on the holdout.
    #[serde(default = "default_false_positive_rate")]
    pub target_false_positive_rate: f64,
    /// The share of rows held out (seeded) for evaluation: of the most recent `holdout_window`
    /// with a time column, of all rows without one.
    #[serde(default = "default_holdout")]
    pub holdout_fraction: f64,
    /// How recent the rows the holdout is drawn from are (with a time column; `"7d"`).
    #[serde(default = "default_holdout_window", alias = "holdout_days")]
    pub holdout_window: Span,
    /// The seed recorded with every run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A hyper-parameter search over the trainer's parameters (`causeway train --search`).
    #[serde(default)]
    pub search: Option<SearchSpec>,
    /// The researcher's own training command (`causeway train --external`).
    #[serde(default)]
    pub external: Option<ExternalSpec>,
    /// This model's features, when not the project's `[features]`.
    #[serde(default)]
    pub features: Option<FeatureSetSpec>,
    /// This model's alert thresholds, when not the project's `[monitor]`.
    #[serde(default)]
    pub monitor: Option<AlertRules>,
    /// This model's retraining and rollout, when not the project's `[loop]`.
    #[serde(default, rename = "loop")]
    pub rollout: Option<LoopSection>,
}

fn default_trainer() -> Trainer {
    Trainer::Gbdt(GbdtParams::default())
}
fn default_baseline() -> Option<Trainer> {
    Some(Trainer::Logistic(LogisticParams::default()))
}
fn default_false_positive_rate() -> f64 {
    0.01
}
fn default_holdout() -> f64 {
    0.3
}
fn default_holdout_window() -> Span {
    Span::days(7)
}
fn default_seed() -> u64 {
    42
}

/// What may start a retraining on its own (`causeway loop retrain` always may).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A performance rule fired.
    Performance,
    /// A drift rule fired.
    Drift,
    /// The `[loop] schedule` (cron) came due.
    Schedule,
    /// `[loop] volume` new labelled predictions arrived since the champion was trained.
    Volume,
}

/// What a live retraining trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingSource {
    /// The `[model]` dataset's stored rows (every version) within `retrain_window`.
    Dataset,
    /// The champion's served predictions within `retrain_window` with the labels that arrived
    /// for them: the features as they were served, so training and serving cannot skew.
    Predictions,
}

/// Promotion gates. Each applies to the tasks it names; the others skip it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gates {
    /// Binary: the challenger's false-positive rate must stay at or below this.
    pub max_false_positive_rate: f64,
    /// Binary: the challenger's recall must not be lower than the champion's (minus this).
    pub recall_tolerance: f64,
    /// Binary: the challenger's ROC-AUC must not be lower than the champion's (minus this).
    pub auc_tolerance: f64,
    /// Binary: the candidate's holdout ROC-AUC must be at least this.
    pub min_roc_auc: Option<f64>,
    /// Binary: the candidate's holdout recall must be at least this.
    pub min_recall: Option<f64>,
    /// Multi-class: the challenger's accuracy must not be lower than the champion's (minus this).
    pub accuracy_tolerance: f64,
    /// Multi-class: the candidate's holdout accuracy must be at least this.
    pub min_accuracy: Option<f64>,
    /// Regression: the challenger's RMSE must not exceed the champion's by more than this share
    /// (0.02: 2 % worse at most).
    pub rmse_tolerance: f64,
    /// Regression: the candidate's holdout RMSE must be at most this.
    pub max_rmse: Option<f64>,
    /// The largest gap between comparable slices of a categorical feature (recall or
    /// false-positive rate; accuracy; RMSE — the model card's call-out) must be at most this.
    pub max_slice_gap: Option<f64>,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            max_false_positive_rate: 0.03,
            recall_tolerance: 0.0,
            auc_tolerance: 0.01,
            min_roc_auc: None,
            min_recall: None,
            accuracy_tolerance: 0.01,
            min_accuracy: None,
            rmse_tolerance: 0.02,
            max_rmse: None,
            max_slice_gap: None,
        }
    }
}

/// Retraining and rollout settings. Every length of time is written with its unit (`"90s"`,
/// `"15m"`, `"6h"`, `"30d"`); the `*_days` keys of earlier versions still read as days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopSection {
    /// How often the live loop (`causeway server`, `causeway loop run`) looks at each model.
    pub tick: Span,
    /// What starts a retraining on its own.
    pub retrain_on: Vec<Trigger>,
    /// For `retrain_on = ["schedule"]`: when, in cron syntax (`"0 3 * * MON"`: Mondays at 03:00
    /// UTC; minute, hour, day of month, month, day of week).
    pub schedule: Option<String>,
    /// For `retrain_on = ["volume"]`: labelled predictions that must arrive after the champion
    /// was trained before it is retrained.
    pub volume: Option<u64>,
    /// How far back a retraining reads labelled data.
    #[serde(alias = "retrain_window_days")]
    pub retrain_window: Span,
    /// What a retraining trains on: `["dataset"]` (default), `["predictions"]` or both.
    pub train_on: Vec<TrainingSource>,
    /// After a retraining starts, how long before a trigger may start another.
    #[serde(alias = "cooldown_days")]
    pub cooldown: Span,
    /// How long a challenger runs in shadow at least.
    #[serde(alias = "shadow_days")]
    pub shadow: Span,
    /// Predictions the challenger must score in shadow before it may become the canary.
    pub shadow_min_predictions: u64,
    /// How long a challenger runs as canary before it may be promoted.
    #[serde(alias = "canary_days")]
    pub canary: Span,
    /// Share of requests the canary answers.
    pub canary_share: f64,
    /// Labelled positives (binary; labelled rows for the other tasks) needed before a live
    /// decision.
    pub min_labeled_positives: u64,
    /// How sure the live comparison must be that the challenger regressed before it is rolled
    /// back (a one-sided paired test; 0.95).
    pub confidence: f64,
    /// The challenger's error rate over every serving replica (requests it failed, in shadow
    /// or canary) above which it is rolled back, when significantly so.
    pub max_error_rate: f64,
    /// The challenger's 99th-percentile scoring latency in milliseconds above which it is rolled
    /// back (measured by the replicas, from 100 predictions on); unset: not checked.
    pub max_p99_latency_ms: Option<f64>,
    /// The gates.
    pub gates: Gates,
}

impl Default for LoopSection {
    fn default() -> Self {
        Self {
            tick: Span::seconds(60),
            retrain_on: vec![Trigger::Performance],
            schedule: None,
            volume: None,
            retrain_window: Span::days(28),
            train_on: vec![TrainingSource::Dataset],
            cooldown: Span::days(7),
            shadow: Span::days(3),
            shadow_min_predictions: 0,
            canary: Span::days(7),
            canary_share: 0.05,
            min_labeled_positives: 40,
            confidence: 0.95,
            max_error_rate: 0.01,
            max_p99_latency_ms: None,
            gates: Gates::default(),
        }
    }
}

impl LoopSection {
    /// Checks what serde cannot: the triggers have what they need.
    fn check(&self) -> Result<()> {
        if self.train_on.is_empty() {
            return Err(Error::Config(
                "loop.train_on names nothing to train on: use [\"dataset\"], [\"predictions\"] or both".into(),
            ));
        }
        if !(0.5..1.0).contains(&self.confidence) {
            return Err(Error::Config(format!("loop.confidence must be within 0.5..1, got {}", self.confidence)));
        }
        if self.tick.is_zero() {
            return Err(Error::Config("loop.tick must be longer than zero, e.g. tick = \"1m\"".into()));
        }
        if let Some(schedule) = &self.schedule {
            schedule.parse::<Cron>()?;
        }
        if self.retrain_on.contains(&Trigger::Schedule) && self.schedule.is_none() {
            return Err(Error::Config(
                "loop.retrain_on names \"schedule\" but loop.schedule is not set: add e.g. schedule = \"0 3 * * MON\""
                    .into(),
            ));
        }
        if self.retrain_on.contains(&Trigger::Volume) && self.volume.is_none_or(|volume| volume == 0) {
            return Err(Error::Config(
                "loop.retrain_on names \"volume\" but loop.volume is not set: add e.g. volume = 10000 (labelled predictions since the champion was trained)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The parsed schedule, when one is set.
    pub fn cron(&self) -> Result<Option<Cron>> {
        self.schedule.as_deref().map(str::parse).transpose()
    }
}

impl ProjectConfig {
    /// Parses and checks a configuration.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|error| Error::Config(error.to_string()))?;
        if let Some(features) = &config.features {
            features.check().map_err(|error| Error::Config(error.to_string()))?;
        }
        if !(0.0..=1.0).contains(&config.rollout.canary_share) {
            return Err(Error::Config(format!(
                "loop.canary_share must be within 0..1, got {}",
                config.rollout.canary_share
            )));
        }
        config.rollout.check()?;
        if let Some(gateway) = &config.gateway {
            gateway.validate().map_err(|error| Error::Config(error.to_string()))?;
        }
        config.monitor.check().map_err(|error| Error::Config(format!("[monitor] {error}")))?;
        for rule in &config.monitor.alerts {
            rule.check().map_err(|error| Error::Config(format!("monitor.alerts: {error}")))?;
        }
        let names: Vec<&str> = config.model.iter().chain(&config.models).map(|model| model.name.as_str()).collect();
        if let Some(twice) =
            names.iter().enumerate().find(|(index, name)| names[..*index].contains(name)).map(|(_, name)| name)
        {
            return Err(Error::Config(format!(
                "model `{twice}` is declared twice ([model] and [[models]] names must differ)"
            )));
        }
        for model in &config.models {
            if let Some(rollout) = &model.rollout {
                rollout.check().map_err(|error| Error::Config(format!("models `{}`: {error}", model.name)))?;
            }
            if let Some(features) = &model.features {
                features.check().map_err(|error| Error::Config(format!("models `{}`: {error}", model.name)))?;
            }
            if let Some(monitor) = &model.monitor {
                monitor.check().map_err(|error| Error::Config(format!("models `{}`: {error}", model.name)))?;
            }
            for rule in model.monitor.iter().flat_map(|monitor| &monitor.alerts) {
                rule.check().map_err(|error| Error::Config(format!("models `{}`: {error}", model.name)))?;
            }
        }
        if let Some(model) = &config.model {
            if !(0.0..0.9).contains(&model.holdout_fraction) {
                return Err(Error::Config(format!(
                    "model.holdout_fraction must be within 0..0.9, got {}",
                    model.holdout_fraction
                )));
            }
            if model.positive_class.is_some() && model.task.is_some_and(|task| task != TaskKind::Binary) {
                return Err(Error::Config("model.positive_class applies to task = \"binary\" only".into()));
            }
            if model.classes.is_some() && model.task.is_some_and(|task| task != TaskKind::Multiclass) {
                return Err(Error::Config("model.classes applies to task = \"multiclass\" only".into()));
            }
            if let Some(classes) = &model.classes
                && let Some(twice) = classes.iter().enumerate().find(|(index, class)| classes[..*index].contains(class))
            {
                return Err(Error::Config(format!("model.classes names {:?} twice", twice.1)));
            }
        }
        Ok(config)
    }

    /// Reads `causeway.toml` from a project directory.
    pub fn load(directory: &Path) -> Result<Self> {
        let path = directory.join(crate::project::CONFIG_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|cause| Error::Io { path: path.display().to_string(), cause })?;
        Self::parse(&text).map_err(|error| match error {
            Error::Config(message) => Error::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// The model section, or an error saying how to add one (or, with several models, to name
    /// one: commands scope the configuration to one model with [`ProjectConfig::scoped`]).
    pub fn model(&self) -> Result<&ModelSection> {
        if !self.models.is_empty() {
            return Err(Error::Config(format!(
                "causeway.toml declares several models ({}): name one with --model",
                self.loop_models(None)?.join(", ")
            )));
        }
        self.model.as_ref().ok_or_else(|| Error::Config("causeway.toml has no [model] section".into()))
    }

    /// The configuration one model sees: its own section as `[model]`, with its own features,
    /// monitor and loop settings where it has them. What trains, serves and loops one model reads
    /// this, so every part of the pipeline works for each model of a project alike.
    pub fn scoped(&self, name: &str) -> Result<ProjectConfig> {
        let Some(model) = self.model.iter().chain(&self.models).find(|model| model.name == name) else {
            self.loop_models(Some(name))?;
            return Err(Error::Config(format!("causeway.toml has no model `{name}`")));
        };
        let mut scoped = self.clone();
        scoped.models = Vec::new();
        if let Some(features) = &model.features {
            scoped.features = Some(features.clone());
        }
        if let Some(monitor) = &model.monitor {
            scoped.monitor = monitor.clone();
        }
        if let Some(rollout) = &model.rollout {
            scoped.rollout = rollout.clone();
        }
        scoped.model = Some(model.clone());
        Ok(scoped)
    }

    /// The loop's models: `name` when given (it must be one), else every one configured.
    pub fn loop_models(&self, name: Option<&str>) -> Result<Vec<String>> {
        let configured: Vec<String> = self.model.iter().chain(&self.models).map(|model| model.name.clone()).collect();
        match name {
            Some(name) if configured.iter().any(|model| model == name) => Ok(vec![name.to_string()]),
            Some(name) => Err(Error::Config(format!(
                "causeway.toml has no model `{name}`{}",
                if configured.is_empty() {
                    " (it has no [model] section)".to_string()
                } else {
                    format!(" (its models: {})", configured.join(", "))
                }
            ))),
            None if configured.is_empty() => Err(Error::Config("causeway.toml has no [model] section".into())),
            None => Ok(configured),
        }
    }

    /// The feature set, or an error saying how to add one.
    pub fn features(&self) -> Result<&FeatureSetSpec> {
        self.features.as_ref().ok_or_else(|| Error::Config("causeway.toml has no [features] section".into()))
    }

    /// The expectation suite of a dataset (empty when none is declared).
    pub fn suite(&self, dataset: &str) -> ExpectationSuite {
        self.datasets.get(dataset).cloned().unwrap_or_default()
    }
}

/// `[model.external]` in `causeway.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// The program and its arguments, run in the project directory (no shell).
    pub command: Vec<String>,
    /// The command is stopped and the run failed after this long.
    #[serde(default = "default_timeout_minutes")]
    pub timeout_minutes: u64,
    /// Extra environment variables for the command.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

fn default_timeout_minutes() -> u64 {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_section_is_read_and_checked_when_the_project_opens() {
        let good = "[[gateway.providers]]\nname = \"vllm\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"\n\n\
                    [[gateway.routes]]\nname = \"chat\"\ntargets = [{ provider = \"vllm\" }]\n";
        let config = ProjectConfig::parse(good).expect("valid");
        assert_eq!(config.gateway.map(|gateway| gateway.routes.len()), Some(1));
        let broken = good.replace("provider = \"vllm\" }", "provider = \"nowhere\" }");
        let message = ProjectConfig::parse(&broken).expect_err("an unknown provider").to_string();
        assert!(message.contains("gateway configuration: route `chat` names provider `nowhere`"), "{message}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_their_name() {
        let error = ProjectConfig::parse("[loop]\ncanary_shares = 0.1\n").unwrap_err().to_string();
        assert!(error.contains("canary_shares"), "{error}");
        let error = ProjectConfig::parse("[loop]\ncanary_share = 5.0\n").unwrap_err().to_string();
        assert!(error.contains("canary_share must be within 0..1"), "{error}");
        assert!(ProjectConfig::parse("").is_ok());
    }

    #[test]
    fn a_label_horizon_shorter_than_the_performance_window_says_what_to_write() {
        let error = ProjectConfig::parse("[monitor]\nperformance_window = \"14d\"\nlabel_horizon = \"7d\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("raise label_horizon to at least \"14d\""), "{error}");
        let config = ProjectConfig::parse("[monitor]\nlabel_horizon = \"60d\"\n").expect("valid");
        assert_eq!(config.monitor.label_horizon, Span::days(60));
        assert_eq!(ProjectConfig::parse("").expect("valid").monitor.label_horizon, Span::days(30));
    }

    #[test]
    fn durations_take_units_and_the_old_day_keys_still_read_as_days() {
        let config = ProjectConfig::parse(
            "[monitor]\ndrift_window = \"90s\"\nperformance_window = \"15m\"\n[loop]\nshadow = \"6h\"\ncanary = \"30d\"\ncooldown = \"1h30m\"\n",
        )
        .expect("valid");
        assert_eq!(config.monitor.drift_window, Span::seconds(90));
        assert_eq!(config.monitor.performance_window, Span::seconds(900));
        assert_eq!(config.rollout.shadow, Span::seconds(6 * 3600));
        assert_eq!(config.rollout.canary, Span::days(30));
        assert_eq!(config.rollout.cooldown, Span::seconds(5400));
        let legacy = ProjectConfig::parse(
            "[monitor]\ndrift_window_days = 3\n[loop]\nshadow_days = 2\ncanary_days = 5\nretrain_window_days = 10\ncooldown_days = 1\n",
        )
        .expect("the old keys still work");
        assert_eq!(legacy.monitor.drift_window, Span::days(3));
        assert_eq!(legacy.rollout.shadow, Span::days(2));
        assert_eq!(legacy.rollout.canary, Span::days(5));
        assert_eq!(legacy.rollout.retrain_window, Span::days(10));
        assert_eq!(legacy.rollout.cooldown, Span::days(1));
        let error = ProjectConfig::parse("[loop]\nshadow = \"3 days\"\n").unwrap_err().to_string();
        assert!(error.contains("e.g. \"90s\""), "{error}");
    }

    /// The worked `causeway.toml` README.md shows is one Causeway reads.
    #[test]
    fn the_readme_worked_example_parses() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
        let start = readme.find("A worked `causeway.toml`").expect("the worked example");
        let block =
            readme[start..].split("```toml\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a toml block");
        let config = ProjectConfig::parse(block).expect("the README's causeway.toml parses");
        assert_eq!(config.rollout.retrain_on.len(), 4);
        assert_eq!(config.rollout.train_on.len(), 2);
        assert!(config.rollout.cron().expect("cron").is_some());
        assert_eq!(config.monitor.alerts.len(), 1);
    }

    #[test]
    fn schedule_and_volume_triggers_need_their_settings() {
        let error = ProjectConfig::parse("[loop]\nretrain_on = [\"schedule\"]\n").unwrap_err().to_string();
        assert!(error.contains("add e.g. schedule = \"0 3 * * MON\""), "{error}");
        let error = ProjectConfig::parse("[loop]\nretrain_on = [\"volume\"]\n").unwrap_err().to_string();
        assert!(error.contains("add e.g. volume = 10000"), "{error}");
        let error = ProjectConfig::parse("[loop]\nschedule = \"0 25 * * *\"\n").unwrap_err().to_string();
        assert!(error.contains("hour 25 is outside 0-23"), "{error}");
        let config = ProjectConfig::parse(
            "[loop]\nretrain_on = [\"schedule\", \"volume\"]\nschedule = \"0 3 * * MON\"\nvolume = 500\n",
        )
        .expect("valid");
        assert!(config.rollout.cron().expect("parses").is_some());
    }
}
