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

use causeway_models::{Model, ModelArtifact, Predictor, Signature};
use causeway_train::{FitOutcome, RunTracker, TrainingSet, VALIDATION_FRACTION, metrics, signature_for};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::{Trained, split_holdout, store_and_register};
use crate::project::Project;

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

/// Model file names the import accepts, by extension.
const MODEL_EXTENSIONS: [&str; 4] = ["json", "ubj", "txt", "onnx"];

/// Trains with the configured external command and registers its model.
pub fn train_external(
    project: &Project,
    spec: &ExternalSpec,
    set: &TrainingSet,
    snapshot: &str,
    tracking_uri: &str,
    at_ms: i64,
    actor: &str,
) -> Result<Trained> {
    let model = project.config.model()?;
    let program = spec.command.first().ok_or_else(|| Error::Config("[model.external] command is empty".into()))?;
    let (train, holdout) = split_holdout(model, set)?;
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
        let candidate = ModelArtifact::new(Model::Ensemble(imported.ensemble), signature.clone(), 0.5, metadata)?;
        let validation_scores = candidate.model.predict_rows(&validation.encode(&signature)?);
        let threshold = metrics::threshold_for_false_positive_rate(
            &validation_scores,
            &validation.labels,
            model.target_false_positive_rate,
        );
        let artifact = ModelArtifact { threshold, ..candidate };
        let holdout_scores = artifact.model.predict_rows(&holdout.encode(&signature)?);
        let metrics = metrics::binary_metrics(&holdout_scores, &holdout.labels, threshold);
        Ok(FitOutcome { artifact, metrics, holdout_scores })
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
    Ok(Trained { version, outcome, baseline, run, holdout, comparison: None, search: None })
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
