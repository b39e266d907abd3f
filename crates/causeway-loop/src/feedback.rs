//! Labels from outside (`causeway labels ingest FILE`): a CSV or Parquet file of request ids,
//! labels and optional arrival times, each label checked against the deployed model's task.
//! Malformed rows, duplicates and ids the prediction log does not hold are counted and reported;
//! a label that differs from a stored one is never replaced without `correct` (audited).

use std::collections::HashSet;
use std::path::Path;

use causeway_store::LabelWrite;
use causeway_types::LabelRecord;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::labels::label_value;
use crate::pipeline::load_artifact;
use crate::project::Project;

/// The columns a label file has.
pub const REQUEST_ID: &str = "request_id";
/// The label column.
pub const LABEL: &str = "label";
/// The optional arrival time column (a timestamp, or epoch milliseconds).
pub const TIME: &str = "time";

/// The most malformed rows and unknown ids a report names (it counts them all).
const NAMED: usize = 10;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LabelIngest {
    /// The model the labels are for.
    pub model: String,
    /// Rows read.
    pub rows: u64,
    /// What the store did with the well-formed, first-seen labels.
    pub write: LabelWrite,
    /// Rows whose request id appeared earlier in the file (the first one counts).
    pub duplicates: u64,
    /// Rows that could not be read, and the first few reasons (row and column named).
    pub malformed: u64,
    /// The first few reasons.
    pub malformed_rows: Vec<String>,
    /// Request ids the prediction log does not hold (stored anyway: they join when their
    /// predictions reach the log).
    pub unknown: u64,
    /// The first few.
    pub unknown_ids: Vec<String>,
}

/// Reads `file` and stores its labels for `model` (the project's only model when `None`).
pub fn ingest_labels(
    project: &Project,
    file: &Path,
    model: Option<&str>,
    correct: bool,
    actor: &str,
    now: i64,
) -> Result<LabelIngest> {
    let models = project.config.loop_models(model)?;
    let [model] = models.as_slice() else {
        return Err(Error::Config(format!(
            "name the model the labels are for: --model {}",
            models.join(" or --model ")
        )));
    };
    let Some(policy) = project.meta.serving_policy(model)? else {
        return Err(Error::Precondition(format!(
            "model `{model}` has no champion: labels are checked against the deployed model's task, so promote a version first"
        )));
    };
    let task = load_artifact(&project.scoped(model)?, &project.meta.model_version(model, policy.champion)?)?.task;
    let frame = causeway_data::read_file(file)?;
    let missing: Vec<&str> = [REQUEST_ID, LABEL].into_iter().filter(|name| frame.column(name).is_none()).collect();
    if !missing.is_empty() {
        return Err(Error::Precondition(format!(
            "{} has no {} column (its columns: {}); a label file has request_id, label and optionally time",
            file.display(),
            missing.join(" or "),
            frame.names().join(", ")
        )));
    }
    let ids = frame.require(REQUEST_ID)?;
    let labels = frame.require(LABEL)?;
    let times = frame.column(TIME);
    let mut report = LabelIngest { model: model.clone(), rows: frame.rows() as u64, ..LabelIngest::default() };
    let malformed = |report: &mut LabelIngest, reason: String| {
        report.malformed += 1;
        if report.malformed_rows.len() < NAMED {
            report.malformed_rows.push(reason);
        }
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut accepted: Vec<(String, LabelRecord)> = Vec::new();
    for row in 0..frame.rows() {
        // Row numbers as people count them in a file: the header is line 1.
        let line = row + 2;
        let Some(id) = ids.text(row).filter(|id| !id.trim().is_empty()) else {
            malformed(&mut report, format!("row {line}: column `{REQUEST_ID}` is empty"));
            continue;
        };
        let Some(value) = label_value(&task, labels, row) else {
            malformed(&mut report, format!("row {line}: column `{LABEL}` is empty"));
            continue;
        };
        let encoded = match task.encode_label(&value) {
            Ok(encoded) => encoded,
            Err(why) => {
                malformed(&mut report, format!("row {line}: column `{LABEL}`: {why}"));
                continue;
            }
        };
        let arrived_ms = match times {
            Some(column) if !column.is_null(row) => match column.number(row) {
                Some(time) => time as i64,
                None => {
                    malformed(&mut report, format!("row {line}: column `{TIME}` is not a time"));
                    continue;
                }
            },
            _ => now,
        };
        if !seen.insert(id.clone()) {
            report.duplicates += 1;
            continue;
        }
        accepted.push((id, LabelRecord { label: encoded, arrived_ms }));
    }
    let logged = causeway_monitor::logged_request_ids(&project.blobs, model)?;
    for (id, _) in &accepted {
        if !logged.contains(id) {
            report.unknown += 1;
            if report.unknown_ids.len() < NAMED {
                report.unknown_ids.push(id.clone());
            }
        }
    }
    report.write = project.meta.record_labels(&accepted, correct, actor, now)?;
    Ok(report)
}
