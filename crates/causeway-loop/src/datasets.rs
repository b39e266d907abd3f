//! Fixing a project's data: deleting a dataset version that should not have been stored, unless
//! a registered model version was trained on it (its lineage would break) and the deletion is not
//! forced. Every deletion is in the audit log.

use causeway_types::DatasetVersion;

use crate::error::{Error, Result};
use crate::project::Project;

/// The run parameter that lists, comma-separated, the dataset versions a training run read.
pub const DATASET_VERSIONS_PARAM: &str = "dataset_versions";

/// What a deletion removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    /// The removed version.
    pub version: DatasetVersion,
    /// Registered model versions whose lineage named it (`fraud v3`), deleted anyway by force.
    pub forced_past: Vec<String>,
}

/// The registered model versions that may have been trained on `dataset`: those whose training
/// run lists it among the versions it read, or, for runs that do not say, every version
/// registered after it was stored from a snapshot of its dataset.
pub fn lineage_users(project: &Project, dataset: &DatasetVersion) -> Result<Vec<String>> {
    let prefix = format!("{}@", dataset.name);
    let mut users = Vec::new();
    for model in project.meta.model_names()? {
        for version in project.meta.model_versions(&model)? {
            if !version.dataset.starts_with(&prefix) {
                continue;
            }
            let listed =
                project.meta.run(&version.run_id).ok().and_then(|run| run.params.get(DATASET_VERSIONS_PARAM).cloned());
            let uses = match listed {
                Some(list) => list.split(',').any(|listed| listed == dataset.version),
                None => dataset.created_ms <= version.created_ms,
            };
            if uses {
                users.push(format!("{model} v{}", version.version));
            }
        }
    }
    Ok(users)
}

/// Deletes version `version` (a unique prefix is enough) of dataset `name` (any dataset holding
/// such a version when `name` is `None`): its record, its Parquet file and its profile. Refused
/// while a registered model version's lineage needs it, unless `force`, which the audit event
/// records with the versions it overrode.
pub fn delete_version(
    project: &Project,
    name: Option<&str>,
    version: &str,
    force: bool,
    actor: &str,
    at_ms: i64,
) -> Result<Deleted> {
    let matching: Vec<DatasetVersion> = project
        .meta
        .all_datasets()?
        .into_iter()
        .filter(|candidate| name.is_none_or(|name| candidate.name == name) && candidate.version.starts_with(version))
        .collect();
    let dataset = match matching.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::Precondition(format!(
                "no dataset version {version}{}; `causeway datasets` lists them",
                name.map(|name| format!(" of `{name}`")).unwrap_or_default()
            )));
        }
        several => {
            let names: Vec<String> =
                several.iter().map(|candidate| format!("{}@{}", candidate.name, candidate.short_version())).collect();
            return Err(Error::Precondition(format!(
                "{version} names {} dataset versions ({}); give more digits or --name",
                several.len(),
                names.join(", ")
            )));
        }
    };
    let users = lineage_users(project, &dataset)?;
    if !users.is_empty() && !force {
        return Err(Error::Precondition(format!(
            "{}@{} is in the lineage of {}: deleting it would leave them without the data they were trained on; \
             pass --force to delete it anyway (the audit log records it)",
            dataset.name,
            dataset.short_version(),
            users.join(", ")
        )));
    }
    let reason = if users.is_empty() {
        "by hand".to_string()
    } else {
        format!("forced past the lineage of {}", users.join(", "))
    };
    project.meta.delete_dataset(&dataset.name, &dataset.version, actor, at_ms, &reason)?;
    for key in [&dataset.blob_key, &dataset.profile_key] {
        if project.blobs.contains(key)? {
            project.blobs.delete(key)?;
        }
    }
    Ok(Deleted { version: dataset, forced_past: users })
}
