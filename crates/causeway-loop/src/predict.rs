//! `causeway predict FILE`: a whole file scored by a registered version (the champion by
//! default), each row's features computed as serving computes them, written with the row's id,
//! its score, its prediction and, for multi-class models, every class's probability.

use std::path::Path;

use causeway_data::{Column, Frame};
use causeway_models::metrics::argmax;
use causeway_models::{ModelArtifact, Task};
use causeway_types::{CHAMPION, FeatureValue};

use crate::error::{Error, Result};
use crate::pipeline::{file_set, load_artifact, load_dataset};
use crate::project::Project;

/// A scored file.
pub struct Predictions {
    /// One row per input row: the id column (when the project names one and the file has it),
    /// `score`, `prediction`, and `probability_<class>` per class for multi-class models.
    pub frame: Frame,
    /// The model.
    pub model: String,
    /// The version that scored.
    pub version: u32,
    /// What it predicts.
    pub task: Task,
}

/// Scores every row of `path` with `model` (default: `[model].name`) version `version`
/// (default: the champion).
pub fn predict_file(project: &Project, model: Option<&str>, version: Option<u32>, path: &Path) -> Result<Predictions> {
    let model = match model {
        Some(model) => model.to_string(),
        None => project
            .config
            .model()
            .map_err(|_| Error::Config("pass --model NAME or declare [model] in causeway.toml".into()))?
            .name
            .clone(),
    };
    let version = match version {
        Some(version) => version,
        None => project.meta.alias(&model, CHAMPION)?.ok_or_else(|| {
            Error::Precondition(format!("{model} has no champion: pass --version N, or promote a version first"))
        })?,
    };
    let record = project.meta.model_version(&model, version)?;
    let artifact = load_artifact(project, &record)?;
    let options = match &project.config.model {
        Some(section) => {
            let suite = project.config.suite(&section.dataset);
            causeway_data::ReadOptions {
                types: project.ingestor().column_types(&section.dataset, &suite)?,
                ..causeway_data::ReadOptions::default()
            }
        }
        None => causeway_data::ReadOptions::default(),
    };
    let rows = causeway_data::read_file_with(path, &options)?;
    let values = input_values(project, &artifact, &rows)?;
    let encoded: Vec<Vec<f64>> = values
        .iter()
        .enumerate()
        .map(|(row, values)| {
            artifact.signature.encode(values).map_err(|error| Error::Precondition(format!("row {row}: {error}")))
        })
        .collect::<Result<_>>()?;
    let outputs = artifact.model.predict_outputs(&encoded);
    let width = artifact.task.outputs().max(1);
    if let Some(row) = outputs.chunks(width).position(|row| row.iter().any(|value| value.is_nan())) {
        return Err(Error::Precondition(format!(
            "{model} version {version} could not score row {row} (it answered NaN): nothing was written"
        )));
    }
    let frame = predictions_frame(project, &artifact, &rows, &outputs)?;
    Ok(Predictions { frame, model, version, task: artifact.task })
}

/// Each row's values of the artifact's inputs: the project's features computed point-in-time
/// (from the stored dataset and the file's own rows) when the model reads them, else the file's
/// columns of the same names (an imported model).
fn input_values(project: &Project, artifact: &ModelArtifact, rows: &Frame) -> Result<Vec<Vec<FeatureValue>>> {
    let wanted = artifact.signature.names();
    if let (Some(spec), Some(section)) = (&project.config.features, &project.config.model) {
        let names = spec.feature_names();
        if wanted.iter().all(|name| names.iter().any(|known| known == name)) {
            let history = match load_dataset(project, &section.dataset) {
                Ok(history) => history,
                Err(Error::Precondition(_)) => Frame::new(),
                Err(error) => return Err(error),
            };
            let set = file_set(project, &history, rows, &artifact.task, false)?;
            let positions: Vec<usize> =
                wanted.iter().filter_map(|name| names.iter().position(|known| known == name)).collect();
            return Ok(set
                .values
                .into_iter()
                .map(|row| {
                    positions.iter().map(|index| row.get(*index).cloned().unwrap_or(FeatureValue::Missing)).collect()
                })
                .collect());
        }
    }
    let missing: Vec<&str> = wanted.iter().copied().filter(|name| rows.column(name).is_none()).collect();
    if !missing.is_empty() {
        return Err(Error::Precondition(format!(
            "the file lacks the model's inputs {}; it has {}",
            missing.join(", "),
            rows.names().join(", ")
        )));
    }
    let columns: Vec<&Column> = wanted.iter().filter_map(|name| rows.column(name)).collect();
    Ok((0..rows.rows()).map(|row| columns.iter().map(|column| column.feature_value(row)).collect()).collect())
}

fn predictions_frame(project: &Project, artifact: &ModelArtifact, rows: &Frame, outputs: &[f64]) -> Result<Frame> {
    let mut frame = Frame::new();
    let id = project.config.model.as_ref().and_then(|section| section.id_column.as_deref());
    if let Some((name, column)) = id.and_then(|name| rows.column(name).map(|column| (name, column))) {
        frame = frame.with_column(name, column.clone())?;
    }
    let width = artifact.task.outputs().max(1);
    let per_row: Vec<&[f64]> = outputs.chunks(width).collect();
    let score: Vec<Option<f64>> = per_row
        .iter()
        .map(|row| Some(row.iter().copied().fold(f64::NAN, f64::max)).filter(|value| !value.is_nan()))
        .collect();
    frame = frame.with_column("score", Column::Float64(score))?;
    let prediction = match &artifact.task {
        Task::Binary { classes } => Column::Utf8(
            per_row.iter().map(|row| Some(classes[usize::from(row[0] >= artifact.threshold)].clone())).collect(),
        ),
        Task::Multiclass { classes } => {
            Column::Utf8(per_row.iter().map(|row| Some(classes[argmax(row)].clone())).collect())
        }
        Task::Regression => Column::Float64(per_row.iter().map(|row| Some(row[0])).collect()),
    };
    frame = frame.with_column("prediction", prediction)?;
    if let Task::Multiclass { classes } = &artifact.task {
        for (index, class) in classes.iter().enumerate() {
            let column = Column::Float64(per_row.iter().map(|row| row.get(index).copied()).collect());
            frame = frame.with_column(format!("probability_{class}"), column)?;
        }
    }
    Ok(frame)
}
