//! MLflow 3 logged models: a model's files and metadata, produced by a run, before (and
//! independently of) registration. Runs record which models they output.

use std::collections::BTreeMap;

use crate::db::{OptionalRow, params};
use causeway_types::SeededRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::MetaStore;

/// A logged model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    /// `m-` and 32 hex digits.
    pub model_id: String,
    /// The experiment.
    pub experiment_id: String,
    /// The name (often the artifact path, e.g. `model`).
    pub name: String,
    /// Where its files go.
    pub artifact_location: String,
    /// `PENDING`, `READY` or `FAILED`.
    pub status: String,
    /// Why it failed, when it did.
    pub status_message: String,
    /// The run that produced it (may be empty).
    pub source_run_id: String,
    /// A free-form type.
    pub model_type: String,
    /// Creation time (epoch ms).
    pub creation_time: i64,
    /// Last change (epoch ms).
    pub last_updated_time: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Metrics logged with this model's id, in the order they were logged.
    pub metrics: Vec<LoggedModelMetric>,
}

/// A metric point of a logged model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelMetric {
    /// The metric's name.
    pub key: String,
    /// The value.
    pub value: f64,
    /// When it was measured (epoch ms).
    pub timestamp: i64,
    /// The step.
    pub step: i64,
    /// The run that logged it.
    pub run_id: String,
    /// The dataset it was measured on (may be empty).
    pub dataset_name: String,
    /// That dataset's digest (may be empty).
    pub dataset_digest: String,
}

/// What a new logged model is created from.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    /// The experiment (must exist).
    pub experiment_id: String,
    /// The name (generated when empty).
    pub name: String,
    /// The producing run.
    pub source_run_id: String,
    /// A free-form type.
    pub model_type: String,
    /// Initial parameters.
    pub params: Vec<(String, String)>,
    /// Initial tags.
    pub tags: Vec<(String, String)>,
}

fn new_model_id(name: &str, at_ms: i64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = SeededRng::derive(nanos ^ at_ms as u64 ^ u64::from(std::process::id()), name);
    format!("m-{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// A readable name for an unnamed model, as MLflow gives one (`brave-otter-482`), derived from
/// its unique id so two unnamed models are told apart.
fn generated_name(model_id: &str) -> String {
    const ADJECTIVES: [&str; 16] = [
        "amber", "brave", "calm", "clever", "eager", "gentle", "keen", "lively", "merry", "nimble", "proud", "quiet",
        "rapid", "sturdy", "tidy", "witty",
    ];
    const ANIMALS: [&str; 16] = [
        "badger", "crane", "dolphin", "falcon", "fox", "heron", "ibis", "lynx", "marten", "otter", "owl", "panda",
        "raven", "seal", "stoat", "wren",
    ];
    let digits = u64::from_str_radix(model_id.trim_start_matches("m-").get(..12).unwrap_or("0"), 16).unwrap_or(0);
    let adjective = ADJECTIVES[(digits % 16) as usize];
    let animal = ANIMALS[((digits >> 4) % 16) as usize];
    format!("{adjective}-{animal}-{}", (digits >> 8) % 1000)
}

impl MetaStore {
    /// Creates a PENDING logged model under the experiment's artifact location.
    pub fn create_logged_model(&self, model: &NewLoggedModel, at_ms: i64) -> Result<LoggedModel> {
        let experiment = self.experiment(&model.experiment_id)?;
        let model_id = new_model_id(&model.name, at_ms);
        let name = if model.name.is_empty() { generated_name(&model_id) } else { model.name.clone() };
        let location = format!("{}/models/{model_id}/artifacts", experiment.artifact_location.trim_end_matches('/'));
        {
            let mut connection = self.lock();
            let mut transaction = connection.transaction()?;
            transaction.execute(
                "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, status, source_run_id, model_type,
                                            creation_ms, last_updated_ms)
                 VALUES (?1, ?2, ?3, ?4, 'PENDING', ?5, ?6, ?7, ?7)",
                params![
                    model_id,
                    experiment.experiment_id.parse::<i64>().unwrap_or(0),
                    name,
                    location,
                    model.source_run_id,
                    model.model_type,
                    at_ms
                ],
            )?;
            for (key, value) in &model.params {
                transaction.execute(
                    "INSERT INTO logged_model_params (model_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                    params![model_id, key, value],
                )?;
            }
            for (key, value) in &model.tags {
                transaction.execute(
                    "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                    params![model_id, key, value],
                )?;
            }
            transaction.commit()?;
        }
        self.logged_model(&model_id)
    }

    /// One logged model (deleted ones only when `allow_deleted`).
    pub fn logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let mut connection = self.lock();
        let mut model = connection
            .query_row(
                "SELECT model_id, experiment_id, name, artifact_location, status, status_message, source_run_id, model_type,
                        creation_ms, last_updated_ms
                 FROM logged_models WHERE model_id = ?1 AND lifecycle_stage = 'active'",
                params![model_id],
                |row| {
                    Ok(LoggedModel {
                        model_id: row.get(0)?,
                        experiment_id: row.get::<i64>(1)?.to_string(),
                        name: row.get(2)?,
                        artifact_location: row.get(3)?,
                        status: row.get(4)?,
                        status_message: row.get(5)?,
                        source_run_id: row.get(6)?,
                        model_type: row.get(7)?,
                        creation_time: row.get(8)?,
                        last_updated_time: row.get(9)?,
                        tags: BTreeMap::new(),
                        params: BTreeMap::new(),
                        metrics: Vec::new(),
                    })
                },
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("logged model `{model_id}`")))?;
        model.tags = connection
            .query_pairs("SELECT key, value FROM logged_model_tags WHERE model_id = ?1", params![model_id])?;
        model.params = connection
            .query_pairs("SELECT key, value FROM logged_model_params WHERE model_id = ?1", params![model_id])?;
        model.metrics = connection.query_map(
            "SELECT key, value, at_ms, step, is_nan, run_id, dataset_name, dataset_digest FROM logged_model_metrics
             WHERE model_id = ?1 ORDER BY at_ms, step, key",
            params![model_id],
            |row| {
                let is_nan: bool = row.get(4)?;
                Ok(LoggedModelMetric {
                    key: row.get(0)?,
                    value: if is_nan { f64::NAN } else { row.get(1)? },
                    timestamp: row.get(2)?,
                    step: row.get(3)?,
                    run_id: row.get(5)?,
                    dataset_name: row.get(6)?,
                    dataset_digest: row.get(7)?,
                })
            },
        )?;
        Ok(model)
    }

    /// The active logged models of some experiments, newest first.
    pub fn logged_models(&self, experiment_ids: &[String]) -> Result<Vec<LoggedModel>> {
        let ids: Vec<String> = {
            let mut connection = self.lock();
            let mut ids = Vec::new();
            for experiment_id in experiment_ids {
                let id: i64 = experiment_id
                    .parse()
                    .map_err(|_| Error::InvalidValue(format!("experiment id `{experiment_id}` is not a number")))?;
                ids.extend(connection.query_map(
                    "SELECT model_id FROM logged_models WHERE lifecycle_stage = 'active' AND experiment_id = ?1
                     ORDER BY creation_ms DESC, model_id",
                    params![id],
                    |row| row.get::<String>(0),
                )?);
            }
            ids
        };
        ids.iter().map(|id| self.logged_model(id)).collect()
    }

    /// Sets a logged model's status (`READY` or `FAILED` finalize it).
    pub fn finalize_logged_model(&self, model_id: &str, status: &str, at_ms: i64) -> Result<LoggedModel> {
        self.logged_model(model_id)?;
        self.lock().execute(
            "UPDATE logged_models SET status = ?2, last_updated_ms = ?3 WHERE model_id = ?1",
            params![model_id, status, at_ms],
        )?;
        self.logged_model(model_id)
    }

    /// Marks a logged model deleted.
    pub fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.logged_model(model_id)?;
        self.lock()
            .execute("UPDATE logged_models SET lifecycle_stage = 'deleted' WHERE model_id = ?1", params![model_id])?;
        Ok(())
    }

    /// Sets tags (`Some`) or removes one (`None`) on a logged model.
    pub fn set_logged_model_tags(&self, model_id: &str, tags: &[(String, Option<String>)]) -> Result<()> {
        self.logged_model(model_id)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for (key, value) in tags {
            match value {
                Some(value) => transaction.execute(
                    "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                    params![model_id, key, value],
                )?,
                None => {
                    let removed = transaction.execute(
                        "DELETE FROM logged_model_tags WHERE model_id = ?1 AND key = ?2",
                        params![model_id, key],
                    )?;
                    if removed == 0 {
                        return Err(Error::NotFound(format!("No tag with key '{key}' found for model with ID '{model_id}'")));
                    }
                    removed
                }
            };
        }
        transaction.commit()?;
        Ok(())
    }

    /// Adds parameters to a logged model.
    pub fn log_logged_model_params(&self, model_id: &str, params_list: &[(String, String)]) -> Result<()> {
        self.logged_model(model_id)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for (key, value) in params_list {
            transaction.execute(
                "INSERT INTO logged_model_params (model_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                params![model_id, key, value],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Records that a run output these models (at a step).
    pub fn log_run_outputs(&self, run_id: &str, models: &[(String, i64)]) -> Result<()> {
        self.tracked_run(run_id)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for (model_id, step) in models {
            transaction.execute(
                "INSERT INTO run_outputs (run_id, model_id, step) VALUES (?1, ?2, ?3) ON CONFLICT (run_id, model_id) DO UPDATE SET step = excluded.step",
                params![run_id, model_id, step],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// The models a run output, with their steps.
    pub fn run_outputs(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        self.lock()
            .query_pairs("SELECT model_id, step FROM run_outputs WHERE run_id = ?1 ORDER BY rowid", params![run_id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn logged_models_are_created_finalized_tagged_and_linked_to_runs(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let model = store.create_logged_model(
            &NewLoggedModel {
                experiment_id: "0".into(),
                name: "model".into(),
                params: vec![("depth".into(), "3".into())],
                ..NewLoggedModel::default()
            },
            10,
        )?;
        assert!(model.model_id.starts_with("m-") && model.model_id.len() == 34);
        assert_eq!(model.artifact_location, format!("mlflow-artifacts:/0/models/{}/artifacts", model.model_id));
        assert_eq!((model.status.as_str(), model.params["depth"].as_str()), ("PENDING", "3"));
        assert_eq!(store.finalize_logged_model(&model.model_id, "READY", 11)?.status, "READY");
        store.set_logged_model_tags(&model.model_id, &[("flavor".into(), Some("sklearn".into()))])?;
        assert_eq!(store.logged_model(&model.model_id)?.tags["flavor"], "sklearn");
        assert_eq!(store.logged_models(&["0".into()])?.len(), 1);
        store.delete_logged_model(&model.model_id)?;
        assert!(matches!(store.logged_model(&model.model_id), Err(Error::NotFound(_))));
        Ok(())
    }

    on_both_backends!(logged_models_are_created_finalized_tagged_and_linked_to_runs);
}
