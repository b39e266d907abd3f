//! A project directory: `causeway.toml` plus the embedded stores under `.causeway/`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use causeway_data::Ingestor;
use causeway_features::OnlineStore;
use causeway_store::{BlobStore, MetaStore};

use crate::config::{ProjectConfig, StorageSection};
use crate::error::{Error, Result};

/// The project description file.
pub const CONFIG_FILE: &str = "causeway.toml";
/// The directory of embedded stores.
pub const STATE_DIR: &str = ".causeway";

/// What `causeway init` writes when no configuration exists.
pub const INIT_TEMPLATE: &str = r#"# Causeway project description. Everything here is declarative and belongs in git.
# See README.md for every section; `causeway demo fraud --dir DIR` writes a complete example.
[project]
name = "my-project"

# Expectations a dataset's batches must meet before they are stored:
# [[datasets.transactions.expectations]]
# column = "amount"
# type = "float64"
# not_null = true
# min = 0.0

# The features a model reads (raw fields, windowed aggregates per entity, ratios):
# [features]
# numeric = ["amount"]
# categorical = ["channel"]

# The model the loop trains, serves and monitors:
# [model]
# name = "fraud"
# dataset = "transactions"
# label = "is_fraud"
# id_column = "transaction_id"
# timestamp_column = "timestamp"
"#;

/// An open project: its configuration and its stores.
pub struct Project {
    /// The project directory.
    pub dir: PathBuf,
    /// The parsed `causeway.toml`.
    pub config: ProjectConfig,
    /// Metadata (SQLite under `.causeway/`, or PostgreSQL).
    pub meta: Arc<MetaStore>,
    /// Artifacts (a local directory under `.causeway/`, or an S3 bucket).
    pub blobs: BlobStore,
    /// Online features (redb), opened on first use: only one process may hold it, so commands
    /// that do not serve never touch it and run beside a live server.
    online: OnceLock<Arc<OnlineStore>>,
}

impl Project {
    /// Creates `causeway.toml` (from `config_text`, unless one exists) and the stores.
    /// Returns the project and whether the configuration file was written.
    pub fn init(dir: &Path, config_text: &str) -> Result<(Project, bool)> {
        Self::init_with(dir, config_text, &StorageSection::default())
    }

    /// [`Project::init`] with the stores where `storage` says.
    pub fn init_with(dir: &Path, config_text: &str, storage: &StorageSection) -> Result<(Project, bool)> {
        std::fs::create_dir_all(dir).map_err(|cause| Error::Io { path: dir.display().to_string(), cause })?;
        let config_path = dir.join(CONFIG_FILE);
        let written = !config_path.exists();
        if written {
            ProjectConfig::parse(config_text)?;
            std::fs::write(&config_path, config_text)
                .map_err(|cause| Error::Io { path: config_path.display().to_string(), cause })?;
        }
        Ok((Self::open_with(dir, storage)?, written))
    }

    /// Opens a project; the directory must hold a `causeway.toml`.
    pub fn open(dir: &Path) -> Result<Project> {
        Self::open_with(dir, &StorageSection::default())
    }

    /// Opens a project with its stores where `storage` says (each unset field falls back to
    /// `[storage]` of causeway.toml, then to the embedded store under `.causeway/`).
    pub fn open_with(dir: &Path, storage: &StorageSection) -> Result<Project> {
        if !dir.join(CONFIG_FILE).is_file() {
            return Err(Error::Config(format!(
                "{} has no {CONFIG_FILE}: run `causeway init --dir {}` first",
                dir.display(),
                dir.display()
            )));
        }
        let config = ProjectConfig::load(dir)?;
        let state = dir.join(STATE_DIR);
        std::fs::create_dir_all(&state).map_err(|cause| Error::Io { path: state.display().to_string(), cause })?;
        let metadata = storage.metadata.as_ref().or(config.storage.metadata.as_ref());
        let meta = Arc::new(match metadata {
            Some(url) => MetaStore::open_url(url)?,
            None => MetaStore::open(&state.join("meta.db"))?,
        });
        let blobs = match storage.artifacts.as_ref().or(config.storage.artifacts.as_ref()) {
            Some(url) => BlobStore::open_url(url)?,
            None => BlobStore::open(state.join("artifacts"))?,
        };
        Ok(Project { dir: dir.to_path_buf(), config, meta, blobs, online: OnceLock::new() })
    }

    /// Opens a project for `causeway server`, which like `mlflow server` starts in any directory:
    /// without a `causeway.toml` the project has the default configuration and its stores are
    /// where `storage` says, else under `.causeway/` of `dir` (created). Returns whether the
    /// directory held a configuration.
    pub fn open_for_server(dir: &Path, storage: &StorageSection) -> Result<(Project, bool)> {
        if dir.join(CONFIG_FILE).is_file() {
            return Ok((Self::open_with(dir, storage)?, true));
        }
        let state = dir.join(STATE_DIR);
        std::fs::create_dir_all(&state).map_err(|cause| Error::Io { path: state.display().to_string(), cause })?;
        let meta = Arc::new(match storage.metadata.as_ref() {
            Some(url) => MetaStore::open_url(url)?,
            None => MetaStore::open(&state.join("meta.db"))?,
        });
        let blobs = match storage.artifacts.as_ref() {
            Some(url) => BlobStore::open_url(url)?,
            None => BlobStore::open(state.join("artifacts"))?,
        };
        let config = ProjectConfig::parse("")?;
        Ok((Project { dir: dir.to_path_buf(), config, meta, blobs, online: OnceLock::new() }, false))
    }

    /// The project as one of its models sees it ([`ProjectConfig::scoped`]): the same stores,
    /// the configuration of that model.
    pub fn scoped(&self, model: &str) -> Result<Project> {
        Ok(self.with_config(self.config.scoped(model)?))
    }

    /// [`Project::scoped`] for `model`, or the project itself when `model` is `None` and it has
    /// one model or none.
    pub fn for_model(&self, model: Option<&str>) -> Result<Project> {
        match model {
            Some(model) => self.scoped(model),
            None if self.config.models.is_empty() => Ok(self.with_config(self.config.clone())),
            None => Err(Error::Config(format!(
                "causeway.toml declares several models ({}): name one with --model",
                self.config.loop_models(None)?.join(", ")
            ))),
        }
    }

    /// The same stores under `config`.
    fn with_config(&self, config: ProjectConfig) -> Project {
        Project {
            dir: self.dir.clone(),
            config,
            meta: self.meta.clone(),
            blobs: self.blobs.clone(),
            online: self.online.clone(),
        }
    }

    /// The online store, opened on first use.
    pub fn online(&self) -> Result<Arc<OnlineStore>> {
        if let Some(store) = self.online.get() {
            return Ok(store.clone());
        }
        let path = self.dir.join(STATE_DIR).join("online.redb");
        let store = Arc::new(OnlineStore::open(&path).map_err(|error| match error {
            causeway_features::Error::Online(message) if message.contains("already open") => Error::Precondition(format!(
                "the online store {} is held by another Causeway process (a running `causeway serve`, `server` or `demo`?); stop it first",
                path.display()
            )),
            other => other.into(),
        })?);
        Ok(self.online.get_or_init(|| store).clone())
    }

    /// An ingestor writing into this project's stores.
    pub fn ingestor(&self) -> Ingestor<'_> {
        Ingestor::new(&self.meta, &self.blobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_config_and_stores_and_keeps_an_existing_config() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let (project, written) = Project::init(directory.path(), INIT_TEMPLATE)?;
        assert!(written);
        assert_eq!(project.config.project.name, "my-project");
        assert!(directory.path().join(".causeway/meta.db").is_file());
        drop(project);
        let (_, written_again) = Project::init(directory.path(), "garbage that is never parsed")?;
        assert!(!written_again);
        Ok(())
    }

    #[test]
    fn open_without_config_says_how_to_fix_it() {
        let directory = tempfile::tempdir().expect("tempdir");
        let error = Project::open(directory.path()).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.contains("run `causeway init"), "{error}");
    }
}
