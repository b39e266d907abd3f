//! The model registry with MLflow's vocabulary (registered models, model versions, tags,
//! descriptions, aliases) on the same tables as Causeway's own registry: a version registered
//! through the MLflow API is a Causeway version, and aliases are shared.

use std::collections::BTreeMap;

use crate::db::{OptionalRow, params};
use causeway_types::ModelVersionRecord;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::MetaStore;

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// The unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time (epoch ms).
    pub creation_time: i64,
    /// Last change (epoch ms).
    pub last_updated_time: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Aliases and the versions they point at.
    pub aliases: BTreeMap<String, u32>,
    /// The newest version, if any.
    pub latest_version: Option<u32>,
}

/// A model version as the registry API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryVersion {
    /// The registered model.
    pub name: String,
    /// The version number.
    pub version: u32,
    /// Creation time (epoch ms).
    pub creation_time: i64,
    /// Last change (epoch ms).
    pub last_updated_time: i64,
    /// Who registered it.
    pub user_id: String,
    /// Free text.
    pub description: String,
    /// Where the model files are (an artifact URI or Causeway blob key).
    pub source: String,
    /// The run that produced it (may be empty).
    pub run_id: String,
    /// A link to the run, as given.
    pub run_link: String,
    /// The MLflow 3 logged model it was registered from (may be empty).
    pub model_id: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
}

/// What a new version is registered from.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    /// The registered model (must exist).
    pub name: String,
    /// Where the model files are.
    pub source: String,
    /// The producing run (may be empty).
    pub run_id: String,
    /// Free text.
    pub description: String,
    /// A link to the run.
    pub run_link: String,
    /// Initial tags.
    pub tags: Vec<(String, String)>,
    /// Who registers it.
    pub user_id: String,
    /// The MLflow 3 logged model it comes from (may be empty).
    pub model_id: String,
}

impl MetaStore {
    /// Creates a registered model (audited).
    pub fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if name.trim().is_empty() {
            return Err(Error::InvalidValue("registered model name must not be empty".into()));
        }
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let inserted = transaction.execute(
            "INSERT INTO registered_models (name, description, creation_time, last_updated_time) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT DO NOTHING",
            params![name, description, at_ms],
        )?;
        if inserted == 0 {
            return Err(Error::AlreadyExists(format!("Registered Model (name={name})")));
        }
        for (key, value) in tags {
            transaction.execute(
                "INSERT INTO registered_model_tags (name, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
                params![name, key, value],
            )?;
        }
        crate::meta::insert_audit(&mut transaction, at_ms, actor, name, format!("created registered model {name}"))?;
        transaction.commit()?;
        Ok(())
    }

    /// One registered model.
    pub fn registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let mut connection = self.lock();
        let (description, creation_time, last_updated_time): (String, i64, i64) = connection
            .query_row(
                "SELECT description, creation_time, last_updated_time FROM registered_models WHERE name = ?1",
                params![name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("Registered Model with name={name}")))?;
        let tags =
            connection.query_pairs("SELECT key, value FROM registered_model_tags WHERE name = ?1", params![name])?;
        let aliases = connection.query_pairs("SELECT alias, version FROM aliases WHERE model = ?1", params![name])?;
        let latest_version: Option<u32> =
            connection.query_row("SELECT MAX(version) FROM model_versions WHERE model = ?1", params![name], |row| {
                row.get(0)
            })?;
        Ok(RegisteredModel {
            name: name.to_string(),
            description,
            creation_time,
            last_updated_time,
            tags,
            aliases,
            latest_version,
        })
    }

    /// Every registered model, by name.
    pub fn registered_models(&self) -> Result<Vec<RegisteredModel>> {
        let names: Vec<String> =
            self.lock().query_map("SELECT name FROM registered_models ORDER BY name", params![], |row| row.get(0))?;
        names.iter().map(|name| self.registered_model(name)).collect()
    }

    /// Changes a registered model's description (audited).
    pub fn describe_registered_model(&self, name: &str, description: &str, actor: &str, at_ms: i64) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let changed = transaction.execute(
            "UPDATE registered_models SET description = ?2, last_updated_time = ?3 WHERE name = ?1",
            params![name, description, at_ms],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("Registered Model with name={name}")));
        }
        crate::meta::insert_audit(&mut transaction, at_ms, actor, name, format!("changed the description of {name}"))?;
        transaction.commit()?;
        Ok(())
    }

    /// Renames a registered model with its versions, tags and aliases (audited).
    pub fn rename_registered_model(&self, name: &str, new_name: &str, actor: &str, at_ms: i64) -> Result<()> {
        self.registered_model(name)?;
        if self.registered_model(new_name).is_ok() {
            return Err(Error::AlreadyExists(format!("Registered Model (name={new_name})")));
        }
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        transaction.execute(
            "UPDATE registered_models SET name = ?2, last_updated_time = ?3 WHERE name = ?1",
            params![name, new_name, at_ms],
        )?;
        for table in ["registered_model_tags", "model_version_tags"] {
            transaction.execute(&format!("UPDATE {table} SET name = ?2 WHERE name = ?1"), params![name, new_name])?;
        }
        for table in ["model_versions", "aliases", "alias_history", "traffic"] {
            transaction.execute(&format!("UPDATE {table} SET model = ?2 WHERE model = ?1"), params![name, new_name])?;
        }
        // The stored policy names its model too.
        let policy: Option<String> = transaction
            .query_row("SELECT policy_json FROM traffic WHERE model = ?1", params![new_name], |row| row.get(0))
            .optional()?;
        if let Some(json) = policy
            && let Some(mut policy) = serde_json::from_str::<Option<causeway_types::TrafficPolicy>>(&json)?
        {
            policy.model = new_name.to_string();
            transaction.execute(
                "UPDATE traffic SET policy_json = ?2 WHERE model = ?1",
                params![new_name, serde_json::to_string(&Some(policy))?],
            )?;
        }
        crate::meta::insert_audit(
            &mut transaction,
            at_ms,
            actor,
            new_name,
            format!("renamed registered model {name} to {new_name}"),
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Deletes a registered model with its versions, tags and aliases (audited).
    pub fn delete_registered_model(&self, name: &str, actor: &str, at_ms: i64) -> Result<()> {
        self.registered_model(name)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for table in ["registered_model_tags", "model_version_tags", "registered_models"] {
            transaction.execute(&format!("DELETE FROM {table} WHERE name = ?1"), params![name])?;
        }
        for table in ["model_versions", "aliases", "traffic"] {
            transaction.execute(&format!("DELETE FROM {table} WHERE model = ?1"), params![name])?;
        }
        crate::meta::insert_audit(&mut transaction, at_ms, actor, name, format!("deleted registered model {name}"))?;
        transaction.commit()?;
        Ok(())
    }

    /// Sets or removes (`value` = None) a registered-model tag (audited).
    pub fn set_registered_model_tag(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        self.registered_model(name)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let message = match value {
            Some(value) => {
                transaction.execute(
                    "INSERT INTO registered_model_tags (name, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
                    params![name, key, value],
                )?;
                format!("set tag {key} of {name}")
            }
            None => {
                transaction
                    .execute("DELETE FROM registered_model_tags WHERE name = ?1 AND key = ?2", params![name, key])?;
                format!("deleted tag {key} of {name}")
            }
        };
        crate::meta::insert_audit(&mut transaction, at_ms, actor, name, message)?;
        transaction.commit()?;
        Ok(())
    }

    /// Registers a new version of an existing registered model (audited).
    pub fn create_model_version(&self, version: &NewVersion, at_ms: i64) -> Result<RegistryVersion> {
        self.registered_model(&version.name)?;
        let record = self.register_version(
            &ModelVersionRecord {
                model: version.name.clone(),
                version: 0,
                run_id: version.run_id.clone(),
                dataset: String::new(),
                artifact_key: version.source.clone(),
                flavor: "mlflow".into(),
                created_ms: at_ms,
                metrics: BTreeMap::new(),
            },
            if version.user_id.is_empty() { "mlflow" } else { &version.user_id },
        )?;
        {
            let mut connection = self.lock();
            let mut transaction = connection.transaction()?;
            transaction.execute(
                "UPDATE model_versions SET description = ?3, user_id = ?4, run_link = ?5, model_id = ?6 WHERE model = ?1 AND version = ?2",
                params![record.model, record.version, version.description, version.user_id, version.run_link, version.model_id],
            )?;
            for (key, value) in &version.tags {
                transaction.execute(
                    "INSERT INTO model_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
                    params![record.model, record.version, key, value],
                )?;
            }
            transaction.commit()?;
        }
        self.registry_version(&record.model, record.version)
    }

    /// The version an alias names, as MLflow resolves it: `latest` (any case, which no alias may
    /// be called) is the highest version number; any other name is the alias set on the model.
    /// `None` when the alias is not set or the model has no version.
    pub fn version_by_alias(&self, name: &str, alias: &str) -> Result<Option<u32>> {
        if alias.eq_ignore_ascii_case(crate::rollout::LATEST_ALIAS) {
            let highest: Option<i64> = self.lock().query_row(
                "SELECT MAX(version) FROM model_versions WHERE model = ?1",
                params![name],
                |row| row.get(0),
            )?;
            return Ok(highest.and_then(|version| u32::try_from(version).ok()));
        }
        self.alias(name, alias)
    }

    /// One version with its registry fields.
    pub fn registry_version(&self, name: &str, version: u32) -> Result<RegistryVersion> {
        let mut connection = self.lock();
        let mut found = connection
            .query_row(
                "SELECT created_ms, last_updated_ms, user_id, description, artifact_key, run_id, run_link, model_id
                 FROM model_versions WHERE model = ?1 AND version = ?2",
                params![name, version],
                |row| {
                    Ok(RegistryVersion {
                        name: name.to_string(),
                        version,
                        creation_time: row.get(0)?,
                        last_updated_time: row.get::<i64>(1)?.max(row.get(0)?),
                        user_id: row.get(2)?,
                        description: row.get(3)?,
                        source: row.get(4)?,
                        run_id: row.get(5)?,
                        run_link: row.get(6)?,
                        model_id: row.get(7)?,
                        tags: BTreeMap::new(),
                        aliases: Vec::new(),
                    })
                },
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("Model Version (name={name}, version={version})")))?;
        found.tags = connection.query_pairs(
            "SELECT key, value FROM model_version_tags WHERE name = ?1 AND version = ?2",
            params![name, version],
        )?;
        found.aliases = connection.query_map(
            "SELECT alias FROM aliases WHERE model = ?1 AND version = ?2 ORDER BY alias",
            params![name, version],
            |row| row.get(0),
        )?;
        Ok(found)
    }

    /// Every version of every registered model (or of one), newest first per model.
    pub fn registry_versions(&self, name: Option<&str>) -> Result<Vec<RegistryVersion>> {
        let keys: Vec<(String, u32)> = self.lock().query_pairs("SELECT model, version FROM model_versions WHERE CAST(?1 AS TEXT) IS NULL OR model = ?1 ORDER BY model, version DESC", params![name])?;
        keys.iter().map(|(name, version)| self.registry_version(name, *version)).collect()
    }

    /// Changes a version's description (audited).
    pub fn describe_model_version(
        &self,
        name: &str,
        version: u32,
        description: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let changed = transaction.execute(
            "UPDATE model_versions SET description = ?3, last_updated_ms = ?4 WHERE model = ?1 AND version = ?2",
            params![name, version, description, at_ms],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("Model Version (name={name}, version={version})")));
        }
        crate::meta::insert_audit(
            &mut transaction,
            at_ms,
            actor,
            name,
            format!("changed the description of {name} version {version}"),
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Deletes a version and the aliases pointing at it (audited). A deleted champion stops the
    /// model answering (nothing else is promoted behind the caller's back); a deleted challenger
    /// ends its rollout.
    pub fn delete_model_version(&self, name: &str, version: u32, actor: &str, at_ms: i64) -> Result<()> {
        self.registry_version(name, version)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        crate::rollout::forget_version(&mut transaction, name, version, actor, at_ms)?;
        transaction.execute("DELETE FROM model_versions WHERE model = ?1 AND version = ?2", params![name, version])?;
        transaction
            .execute("DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2", params![name, version])?;
        transaction
            .execute("UPDATE registered_models SET last_updated_time = ?2 WHERE name = ?1", params![name, at_ms])?;
        crate::meta::insert_audit(&mut transaction, at_ms, actor, name, format!("deleted {name} version {version}"))?;
        transaction.commit()?;
        Ok(())
    }

    /// Sets or removes (`value` = None) a version tag (audited).
    pub fn set_model_version_tag(
        &self,
        name: &str,
        version: u32,
        key: &str,
        value: Option<&str>,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        self.registry_version(name, version)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let message = match value {
            Some(value) => {
                transaction.execute(SET_VERSION_TAG, params![name, version, key, value])?;
                format!("set tag {key} of {name} version {version}")
            }
            None => {
                transaction.execute(
                    "DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2 AND key = ?3",
                    params![name, version, key],
                )?;
                format!("deleted tag {key} of {name} version {version}")
            }
        };
        crate::meta::insert_audit(&mut transaction, at_ms, actor, name, message)?;
        transaction.commit()?;
        Ok(())
    }

    /// Moves a version to one of MLflow's deprecated stages (`None`, `Staging`, `Production`,
    /// `Archived`), kept as its [`STAGE_TAG`] tag, and with `archive_others` archives the model's
    /// other versions in that stage — one audited transaction that marks the version and the model
    /// updated, as MLflow does. Stages never change what serves: aliases do.
    pub fn transition_model_version_stage(
        &self,
        name: &str,
        version: u32,
        stage: &str,
        archive_others: bool,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        self.registry_version(name, version)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let touch = "UPDATE model_versions SET last_updated_ms = ?3 WHERE model = ?1 AND version = ?2";
        if archive_others && matches!(stage, "Staging" | "Production") {
            let others: Vec<u32> = transaction.query_map(
                "SELECT version FROM model_version_tags WHERE name = ?1 AND key = ?2 AND value = ?3 AND version <> ?4",
                params![name, STAGE_TAG, stage, version],
                |row| row.get::<u32>(0),
            )?;
            for other in others {
                transaction.execute(SET_VERSION_TAG, params![name, other, STAGE_TAG, "Archived"])?;
                transaction.execute(touch, params![name, other, at_ms])?;
                crate::meta::insert_audit(
                    &mut transaction,
                    at_ms,
                    actor,
                    name,
                    format!("archived {name} version {other}"),
                )?;
            }
        }
        transaction.execute(SET_VERSION_TAG, params![name, version, STAGE_TAG, stage])?;
        transaction.execute(touch, params![name, version, at_ms])?;
        transaction
            .execute("UPDATE registered_models SET last_updated_time = ?2 WHERE name = ?1", params![name, at_ms])?;
        crate::meta::insert_audit(
            &mut transaction,
            at_ms,
            actor,
            name,
            format!("moved {name} version {version} to stage {stage}"),
        )?;
        transaction.commit()?;
        Ok(())
    }
}

/// Sets a version tag (name, version, key, value), replacing its earlier value.
const SET_VERSION_TAG: &str = "INSERT INTO model_version_tags (name, version, key, value) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value";

/// The version tag that holds MLflow's deprecated stage.
pub const STAGE_TAG: &str = "mlflow.stage";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn registered_models_versions_tags_and_shared_aliases(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        store.create_registered_model("fraud", "card fraud", &[("team".into(), "risk".into())], "test", 1)?;
        assert!(matches!(store.create_registered_model("fraud", "", &[], "test", 2), Err(Error::AlreadyExists(_))));
        let first = store.create_model_version(
            &NewVersion {
                name: "fraud".into(),
                source: "mlflow-artifacts:/1/r/artifacts/model".into(),
                run_id: "r".into(),
                ..NewVersion::default()
            },
            3,
        )?;
        assert_eq!(first.version, 1);
        store.set_alias("fraud", "champion", 1, "test", 4, "")?;
        let model = store.registered_model("fraud")?;
        assert_eq!((model.latest_version, model.aliases.get("champion")), (Some(1), Some(&1)));
        assert_eq!(store.registry_version("fraud", 1)?.aliases, vec!["champion".to_string()]);
        store.set_model_version_tag("fraud", 1, "validated", Some("yes"), "test", 5)?;
        store.describe_model_version("fraud", 1, "first", "test", 5)?;
        let version = store.registry_version("fraud", 1)?;
        assert_eq!(
            (version.tags["validated"].as_str(), version.description.as_str(), version.last_updated_time),
            ("yes", "first", 5)
        );
        store.rename_registered_model("fraud", "fraud-v2", "test", 6)?;
        assert_eq!(store.alias("fraud-v2", "champion")?, Some(1));
        assert!(store.registered_model("fraud").is_err());
        store.delete_model_version("fraud-v2", 1, "test", 7)?;
        assert_eq!(store.alias("fraud-v2", "champion")?, None);
        store.delete_registered_model("fraud-v2", "test", 8)?;
        assert!(store.registered_models()?.is_empty());
        assert!(
            store.events(Some(causeway_types::EventKind::Audit))?.iter().any(|event| event.message.contains("renamed"))
        );
        Ok(())
    }

    fn stage_transitions_archive_others_and_mark_the_model_updated(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        store.create_registered_model("churn", "", &[], "test", 1)?;
        for at in [2, 3] {
            let source = "mlflow-artifacts:/1/r/artifacts/model".to_string();
            store.create_model_version(&NewVersion { name: "churn".into(), source, ..NewVersion::default() }, at)?;
        }
        store.transition_model_version_stage("churn", 1, "Production", false, "ci", 10)?;
        store.transition_model_version_stage("churn", 2, "Production", true, "ci", 20)?;
        let (first, second) = (store.registry_version("churn", 1)?, store.registry_version("churn", 2)?);
        assert_eq!((first.tags[STAGE_TAG].as_str(), first.last_updated_time), ("Archived", 20));
        assert_eq!((second.tags[STAGE_TAG].as_str(), second.last_updated_time), ("Production", 20));
        assert_eq!(store.registered_model("churn")?.last_updated_time, 20);
        let missing = store.transition_model_version_stage("churn", 9, "Staging", false, "ci", 30);
        assert_eq!(
            missing.map_err(|error| error.to_string()),
            Err("Model Version (name=churn, version=9) not found".into())
        );
        let audit: Vec<String> =
            store.events(Some(causeway_types::EventKind::Audit))?.into_iter().map(|event| event.message).collect();
        assert!(audit.iter().any(|message| message.starts_with("archived churn version 1")), "{audit:?}");
        assert!(
            audit.iter().any(|message| message.starts_with("moved churn version 2 to stage Production")),
            "{audit:?}"
        );
        Ok(())
    }

    fn a_deleted_versions_number_is_never_given_again(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        store.create_registered_model("churn", "", &[], "test", 1)?;
        let register = |at: i64| {
            let source = "mlflow-artifacts:/1/r/artifacts/model".to_string();
            store.create_model_version(&NewVersion { name: "churn".into(), source, ..NewVersion::default() }, at)
        };
        for at in [2, 3, 4] {
            register(at)?;
        }
        store.delete_model_version("churn", 3, "test", 5)?;
        assert_eq!(register(6)?.version, 4, "not 3 again");
        store.delete_model_version("churn", 4, "test", 7)?;
        store.delete_model_version("churn", 2, "test", 7)?;
        let reopened = location.open()?;
        let source = "mlflow-artifacts:/1/r/artifacts/model".to_string();
        let next =
            reopened.create_model_version(&NewVersion { name: "churn".into(), source, ..NewVersion::default() }, 8)?;
        assert_eq!(next.version, 5);
        Ok(())
    }

    on_both_backends!(
        registered_models_versions_tags_and_shared_aliases,
        stage_transitions_archive_others_and_mark_the_model_updated,
        a_deleted_versions_number_is_never_given_again
    );
}
