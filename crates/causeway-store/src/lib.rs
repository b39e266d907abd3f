//! Causeway's single source of truth: the [`MetaStore`] (datasets, runs, model versions, aliases,
//! traffic policies, labels and the event/audit log, in SQLite with WAL and versioned migrations)
//! and the [`BlobStore`] (datasets, models, profiles and prediction-log segments as files).
//!
//! This crate knows nothing about HTTP, training or serving: it stores records and answers queries.

mod blob;
mod error;
pub mod logged_models;
mod meta;
pub mod registry;
pub mod search;
pub mod tokens;
pub mod tracking;

pub use blob::BlobStore;
pub use error::{Error, Result};
pub use logged_models::{LoggedModel, NewLoggedModel};
pub use meta::{MetaStore, SCHEMA_VERSION};
pub use registry::{NewVersion, RegisteredModel, RegistryVersion};
pub use tokens::{ApiToken, Scope};
pub use tracking::{DatasetInput, Experiment, MetricPoint, NewRun, TrackedRun, ViewType};
