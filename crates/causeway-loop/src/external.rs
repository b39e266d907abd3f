//! External training: the researcher's own command (`python train.py`) trains the model.
//!
//! Causeway prepares everything a reproducible run needs and keeps everything that judges the
//! result: it splits the window as for its own trainers, writes the fitting rows (encoded in
//! signature order, categorical values as vocabulary codes) and the signature to a work
//! directory, starts a tracked run, and runs the command with the paths and the MLflow tracking
//! URI and run id in its environment — `mlflow.start_run()` in the script resumes that run, so
//! whatever the script logs lands on it. The script writes one model file (XGBoost JSON/UBJSON,
//! LightGBM text or ONNX) into `CAUSEWAY_MODEL_DIR`; Causeway imports it, picks the threshold on
//! rows the script never saw, evaluates it on the holdout and registers it like its own models.
//! This module does not start a tracking server: the caller passes the URI of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use causeway_models::{Model, ModelArtifact, Signature, Task};
use causeway_train::{FitOutcome, RunTracker, TrainingSet, VALIDATION_FRACTION, metrics, signature_for};

pub use causeway_project::config::ExternalSpec;

use crate::error::{Error, Result};
use crate::pipeline::{Labelled, Split, SplitSummary, Trained, split_holdout, store_and_register};
use crate::project::Project;

/// Model file names the import accepts, by extension.
const MODEL_EXTENSIONS: [&str; 4] = ["json", "ubj", "txt", "onnx"];

/// Trains with the configured external command and registers its model.
pub fn train_external(
    project: &Project,
    spec: &ExternalSpec,
    labelled: &Labelled,
    snapshot: &str,
    tracking_uri: &str,
    at_ms: i64,
    actor: &str,
) -> Result<Trained> {
    let model = project.config.model()?;
    let task = &labelled.task;
    let program = spec.command.first().ok_or_else(|| Error::Config("[model.external] command is empty".into()))?;
    let Split { train, holdout, warnings } = split_holdout(model, &labelled.set, task)?;
    let signature = signature_for(project.config.features()?, &train);
    // The script fits on most of the training part; the rest picks the threshold, unseen by it.
    let (fit_part, validation) = train.split_random(VALIDATION_FRACTION, model.seed);

    let tracker = RunTracker::new(&project.meta, &project.dir);
    let params = BTreeMap::from([
        ("family".to_string(), "external".to_string()),
        ("command".to_string(), spec.command.join(" ")),
        ("train_rows".to_string(), fit_part.len().to_string()),
        ("holdout_rows".to_string(), holdout.len().to_string()),
    ]);
    let run = tracker.start(&format!("{}-external", model.name), model.seed, snapshot, params, at_ms)?;
    let work = project.dir.join(".causeway").join("work").join(&run.run_id);
    let result = (|| -> Result<FitOutcome> {
        let model_dir = work.join("model");
        std::fs::create_dir_all(&model_dir).map_err(|error| io_error(&model_dir, error))?;
        let train_path = work.join("train.csv");
        write_encoded_csv(&train_path, &signature, &fit_part, &model.label)?;
        let signature_path = work.join("signature.json");
        std::fs::write(&signature_path, serde_json::to_vec_pretty(&signature)?)
            .map_err(|error| io_error(&signature_path, error))?;
        let environment = [
            ("MLFLOW_TRACKING_URI", tracking_uri.to_string()),
            ("MLFLOW_RUN_ID", run.run_id.clone()),
            ("CAUSEWAY_TRAIN_DATA", path_text(&train_path)),
            ("CAUSEWAY_SIGNATURE", path_text(&signature_path)),
            ("CAUSEWAY_MODEL_DIR", path_text(&model_dir)),
            ("CAUSEWAY_LABEL_COLUMN", model.label.clone()),
            ("CAUSEWAY_TASK", task.kind().as_str().to_string()),
            ("CAUSEWAY_CLASSES", task.classes().join(",")),
            ("CAUSEWAY_FEATURES", signature.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(",")),
            ("CAUSEWAY_SEED", model.seed.to_string()),
        ];
        let mut command = Command::new(program);
        command.args(&spec.command[1..]).current_dir(&project.dir).envs(&spec.environment);
        for (name, value) in &environment {
            command.env(name, value);
        }
        run_with_timeout(&mut command, Duration::from_secs(spec.timeout_minutes.max(1) * 60), &spec.command)?;
        let (file, bytes) = find_model_file(&model_dir)?;
        let imported = causeway_models::import_model(&bytes)?;
        check_inputs(&imported.features, imported.ensemble.features, &signature, &file)?;
        let file_name = file.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default();
        project.blobs.put(&format!("models/{}/{}.original", model.name, run.run_id), &bytes)?;
        let metadata = BTreeMap::from([
            ("run_id".to_string(), run.run_id.clone()),
            ("dataset".to_string(), snapshot.to_string()),
            ("trained_by".to_string(), spec.command.join(" ")),
            ("model_file".to_string(), file_name),
        ]);
        let candidate =
            ModelArtifact::for_task(Model::Ensemble(imported.ensemble), signature.clone(), task.clone(), 0.5, metadata)
                .map_err(|error| {
                    Error::Precondition(format!("{} does not fit the {} task: {error}", file.display(), task.kind()))
                })?;
        let threshold = match task {
            Task::Binary { .. } => metrics::threshold_for_false_positive_rate(
                &candidate.model.predict_outputs(&validation.encode(&signature)?),
                &validation.labels,
                model.target_false_positive_rate,
            ),
            _ => 0.5,
        };
        let artifact = ModelArtifact { threshold, ..candidate };
        let holdout_outputs = artifact.model.predict_outputs(&holdout.encode(&signature)?);
        let holdout_scores = if task.outputs() > 1 {
            holdout_outputs.chunks(task.outputs()).map(|row| row.iter().copied().fold(f64::NAN, f64::max)).collect()
        } else {
            holdout_outputs.clone()
        };
        let metrics = metrics::task_metrics(task, &holdout_outputs, &holdout.labels, threshold);
        Ok(FitOutcome { artifact, metrics, holdout_scores, holdout_outputs, rounds: None })
    })();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => {
            tracker.fail(&run, at_ms)?;
            return Err(error);
        }
    };
    let (version, baseline, run) = store_and_register(
        project,
        &model.name,
        &signature,
        (&train, &holdout),
        &outcome,
        &run,
        (snapshot, at_ms, actor),
    )?;
    // The work files served their purpose; the model file is kept beside the artifact.
    let _ = std::fs::remove_dir_all(&work);
    let split =
        SplitSummary { train: train.len(), fit: fit_part.len(), validation: validation.len(), holdout: holdout.len() };
    Ok(Trained {
        version,
        outcome,
        baseline,
        run,
        holdout,
        comparison: None,
        search: None,
        task_note: labelled.task_note.clone(),
        split,
        warnings,
    })
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Precondition(format!("{}: {error}", path.display()))
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().to_string()
}

/// Writes `set` encoded with `signature` as CSV: one column per feature (missing values empty,
/// categorical values as their vocabulary index), then the label.
fn write_encoded_csv(path: &Path, signature: &Signature, set: &TrainingSet, label: &str) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|error| io_error(path, error))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut header: Vec<&str> = signature.features.iter().map(|feature| feature.name.as_str()).collect();
    header.push(label);
    let mut text = header.join(",");
    text.push('\n');
    for (row, label) in set.encode(signature)?.iter().zip(&set.labels) {
        for value in row {
            if !value.is_nan() {
                text.push_str(&value.to_string());
            }
            text.push(',');
        }
        text.push_str(&label.to_string());
        text.push('\n');
        if text.len() > 1 << 20 {
            writer.write_all(text.as_bytes()).map_err(|error| io_error(path, error))?;
            text.clear();
        }
    }
    writer.write_all(text.as_bytes()).and_then(|()| writer.flush()).map_err(|error| io_error(path, error))
}

/// Runs `command`, its output going to ours; fails on a non-zero exit, on a failure to start and
/// after `timeout` (the process is killed).
fn run_with_timeout(command: &mut Command, timeout: Duration, words: &[String]) -> Result<()> {
    let shown = words.join(" ");
    let mut child = command
        .spawn()
        .map_err(|error| Error::Precondition(format!("cannot start the training command `{shown}`: {error}")))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(Error::Precondition(format!(
                    "the training command `{shown}` failed ({status}); its output is above"
                )));
            }
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Precondition(format!(
                    "the training command `{shown}` ran longer than {} minutes and was stopped",
                    timeout.as_secs() / 60
                )));
            }
            // Polling a child process: there is no portable blocking wait with a timeout.
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(error) => return Err(Error::Precondition(format!("waiting for `{shown}`: {error}"))),
        }
    }
}

/// The one model file the command wrote.
fn find_model_file(directory: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let entries = std::fs::read_dir(directory).map_err(|error| io_error(directory, error))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension().is_some_and(|extension| MODEL_EXTENSIONS.iter().any(|known| extension == *known))
        })
        .collect();
    files.sort();
    match files.as_slice() {
        [file] => {
            let bytes = std::fs::read(file).map_err(|error| io_error(file, error))?;
            Ok((file.clone(), bytes))
        }
        [] => Err(Error::Precondition(format!(
            "the training command wrote no model file into CAUSEWAY_MODEL_DIR ({}); write an XGBoost .json/.ubj, a LightGBM .txt or an .onnx file there",
            directory.display()
        ))),
        _ => Err(Error::Precondition(format!(
            "the training command wrote {} model files into {}; write exactly one",
            files.len(),
            directory.display()
        ))),
    }
}

/// The model must take the signature's inputs: the same count and, when it names them, the same
/// names in the same order.
fn check_inputs(
    described: &[causeway_models::FeatureDescription],
    width: usize,
    signature: &Signature,
    file: &Path,
) -> Result<()> {
    let expected: Vec<&str> = signature.features.iter().map(|feature| feature.name.as_str()).collect();
    if width != expected.len() {
        return Err(Error::Precondition(format!(
            "{} takes {width} inputs but the signature has {} ({}); train on CAUSEWAY_TRAIN_DATA's feature columns, in order",
            file.display(),
            expected.len(),
            expected.join(", ")
        )));
    }
    let named: Vec<&str> = described.iter().map(|feature| feature.name.as_str()).collect();
    let generic = named.iter().enumerate().all(|(index, name)| {
        name.is_empty()
            || *name == format!("f{index}")
            || *name == format!("Column_{index}")
            || *name == format!("x{index}")
    });
    if !generic && named != expected {
        return Err(Error::Precondition(format!(
            "{} names its inputs {} but the signature's are {}",
            file.display(),
            named.join(", "),
            expected.join(", ")
        )));
    }
    Ok(())
}
