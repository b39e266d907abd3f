//! The registry: `runs`, `models`, `import`, `card`, `promote`, `rollback`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use causeway_loop::Project;
use causeway_models::{Task, TaskKind};
use causeway_types::{CHAMPION, Clock, ModelVersionRecord, SystemClock, format_timestamp};

use super::{open, table};
use crate::args::ProjectArgs;

/// [`causeway_loop::gates::set_champion`] now, by a person.
pub(crate) fn set_champion(project: &Project, model: &str, version: u32, actor: &str, reason: &str) -> Result<()> {
    Ok(causeway_loop::gates::set_champion(project, model, version, actor, reason, SystemClock.now_ms())?)
}

pub(crate) fn runs(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut output = table(&["run", "name", "status", "started", "seed", "dataset", "git", "tool", "metrics"]);
    for run in project.meta.runs()? {
        // The headline metrics first when present, then the rest, at most five.
        let mut names: Vec<&String> = run.metrics.keys().collect();
        names.sort_by_key(|name| (!matches!(name.as_str(), "roc_auc" | "recall" | "pr_auc"), name.as_str()));
        let metrics: Vec<String> =
            names.iter().take(5).map(|name| format!("{name}={:.4}", run.metrics[*name])).collect();
        output.add_row(vec![
            run.run_id[..12.min(run.run_id.len())].to_string(),
            run.name.clone(),
            run.status.as_str().to_string(),
            format_timestamp(run.started_ms),
            run.seed.to_string(),
            run.dataset.clone(),
            run.git_commit.as_deref().map_or("–", |commit| &commit[..8.min(commit.len())]).to_string(),
            run.tool_version.clone(),
            metrics.join(" "),
        ]);
    }
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn models(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut output = table(&["model", "version", "family", "task", "trained on", "holdout metrics", "aliases"]);
    for name in project.meta.model_names()? {
        let aliases = project.meta.aliases(&name)?;
        for version in project.meta.model_versions(&name)? {
            let tags: Vec<&str> = aliases
                .iter()
                .filter(|(_, target)| **target == version.version)
                .map(|(alias, _)| alias.as_str())
                .collect();
            let task = version_task(&project, &version);
            output.add_row(vec![
                name.clone(),
                version.version.to_string(),
                version.flavor.clone(),
                task.map_or_else(|| "–".into(), |task| task.as_str().to_string()),
                version.dataset.clone(),
                headline(&version.metrics, task),
                tags.join(", "),
            ]);
        }
    }
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}

/// What a registered version predicts: told by its holdout metrics, else by its artifact (none
/// for versions Causeway cannot load, such as pickled MLflow models).
fn version_task(project: &Project, version: &ModelVersionRecord) -> Option<TaskKind> {
    if version.metrics.contains_key("roc_auc") {
        Some(TaskKind::Binary)
    } else if version.metrics.contains_key("accuracy") {
        Some(TaskKind::Multiclass)
    } else if version.metrics.contains_key("rmse") {
        Some(TaskKind::Regression)
    } else {
        causeway_loop::pipeline::load_artifact(project, version).ok().map(|artifact| artifact.task.kind())
    }
}

/// A version's headline holdout metrics, for its task (`–` when it has none, as imports).
fn headline(metrics: &std::collections::BTreeMap<String, f64>, task: Option<TaskKind>) -> String {
    let names: &[(&str, &str)] = match task {
        Some(TaskKind::Binary) => {
            &[("roc_auc", "roc_auc"), ("recall", "recall"), ("false_positive_rate", "fpr"), ("threshold", "threshold")]
        }
        Some(TaskKind::Multiclass) => &[("accuracy", "accuracy"), ("macro_f1", "macro_f1"), ("log_loss", "log_loss")],
        Some(TaskKind::Regression) => &[("rmse", "rmse"), ("mae", "mae"), ("r2", "r2")],
        None => &[],
    };
    let shown: Vec<String> = names
        .iter()
        .filter_map(|(key, label)| metrics.get(*key).map(|value| format!("{label} {}", format_metric(*value))))
        .collect();
    if shown.is_empty() { "–".into() } else { shown.join("  ") }
}

/// Four decimals for rates and scores, fewer digits lost for large numbers (RMSE in dollars).
fn format_metric(value: f64) -> String {
    if value.abs() >= 1000.0 { format!("{value:.0}") } else { format!("{value:.4}") }
}

pub(crate) fn model_name(project: &Project, model: Option<String>) -> Result<String> {
    match model {
        Some(model) => Ok(model),
        None => {
            Ok(project.config.model().context("pass --model NAME or declare [model] in causeway.toml")?.name.clone())
        }
    }
}

/// Reads a model file and registers it as the next version of `model` (not promoted).
pub(crate) fn import_file(
    project: &Project,
    file: &Path,
    model: &str,
    threshold: f64,
    task: Option<TaskKind>,
) -> Result<ModelVersionRecord> {
    let bytes = std::fs::read(file).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", file.display()))?;
    let file_name =
        file.file_name().map_or_else(|| file.display().to_string(), |name| name.to_string_lossy().into_owned());
    Ok(causeway_loop::pipeline::import_and_register(
        project,
        &file_name,
        &bytes,
        model,
        threshold,
        task,
        "cli",
        SystemClock.now_ms(),
    )?)
}

pub(crate) fn import(
    dir: &ProjectArgs,
    file: &Path,
    model: Option<String>,
    threshold: f64,
    task: Option<TaskKind>,
    promote: bool,
) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    let version = import_file(&project, file, &model, threshold, task)
        .with_context(|| format!("cannot import {}", file.display()))?;
    let artifact = causeway_loop::pipeline::load_artifact(&project, &version)?;
    println!(
        "imported {} as {model} version {} (run {}): {}",
        file.display(),
        version.version,
        version.run_id,
        describe_task(&artifact.task)
    );
    if promote {
        // An imported file has no holdout evaluation here, so there is nothing to gate on.
        set_champion(&project, &model, version.version, "cli", "imported (no holdout evaluation; gates not checked)")?;
        println!(
            "{model}@champion -> version {} (imported: no holdout evaluation, gates not checked)",
            version.version
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The task of a model for people: `binary (classes 0, 1)`, `multiclass (3 classes: a, b, c)`,
/// `regression`.
pub(crate) fn describe_task(task: &Task) -> String {
    match task {
        Task::Binary { classes } => format!("binary (classes {}, positive {})", classes.join(", "), classes[1]),
        Task::Multiclass { classes } => format!("multiclass ({} classes: {})", classes.len(), classes.join(", ")),
        Task::Regression => "regression".to_string(),
    }
}

pub(crate) fn card(
    dir: &ProjectArgs,
    model: Option<String>,
    version: Option<u32>,
    html: Option<&Path>,
) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    let version = match version {
        Some(version) => version,
        None => project
            .meta
            .alias(&model, CHAMPION)?
            .with_context(|| format!("{model} has no champion: pass --version N"))?,
    };
    let card = causeway_loop::card::model_card(&project, &model, version)?;
    print!("{}", card.markdown);
    if let Some(path) = html {
        std::fs::write(path, &card.html).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn promote(dir: &ProjectArgs, model: Option<String>, version: u32, force: bool) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    project.meta.model_version(&model, version)?;
    if !promote_through_gates(&project, &model, version, force, "promote")? {
        return Ok(ExitCode::FAILURE);
    }
    println!("{model}@champion -> version {version}; running servers pick it up within their reload interval");
    Ok(ExitCode::SUCCESS)
}

/// Promotes by hand through the gates ([`causeway_loop::gates::promote`]) and prints every
/// verdict. Returns whether the version became champion.
pub(crate) fn promote_through_gates(
    project: &Project,
    model: &str,
    version: u32,
    force: bool,
    reason: &str,
) -> Result<bool> {
    let promotion = causeway_loop::gates::promote(project, model, version, force, "cli", reason, SystemClock.now_ms())?;
    let report = &promotion.report;
    let mut output = table(&["gate", "verdict", "check"]);
    for check in &report.checks {
        output.add_row(vec![
            check.gate.to_string(),
            if check.passed { "pass" } else { "FAIL" }.to_string(),
            check.detail.clone(),
        ]);
    }
    println!("gates for {model} version {version}:\n{output}");
    if let Some(basis) = &report.basis {
        println!("compared with {basis}");
    }
    if !promotion.promoted {
        eprintln!(
            "error: {model} version {version} was not promoted: {}; fix the model or [loop.gates] in causeway.toml, or pass --force",
            report.failures().join("; ")
        );
    }
    Ok(promotion.promoted)
}

pub(crate) fn rollback(dir: &ProjectArgs, model: Option<String>) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    let now = SystemClock.now_ms();
    let version = causeway_loop::gates::rollback(&project, &model, "cli", "by hand", now)?;
    println!("{model}@champion rolled back to version {version}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn predict(
    dir: &ProjectArgs,
    file: &Path,
    output: &Path,
    model: Option<String>,
    version: Option<u32>,
) -> Result<ExitCode> {
    let project = open(dir)?;
    let started = std::time::Instant::now();
    let predictions = causeway_loop::predict::predict_file(&project, model.as_deref(), version, file)?;
    causeway_data::write_file(&predictions.frame, output)?;
    println!(
        "scored {} rows of {} with {} version {} ({}) in {:.2} s; wrote {}",
        predictions.frame.rows(),
        file.display(),
        predictions.model,
        predictions.version,
        describe_task(&predictions.task),
        started.elapsed().as_secs_f64(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
