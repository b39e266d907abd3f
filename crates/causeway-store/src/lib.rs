//! Causeway's single source of truth: the [`MetaStore`] (datasets, runs, model versions, aliases,
//! traffic policies, labels and the event/audit log, in SQLite with WAL and versioned migrations)
//! and the [`BlobStore`] (datasets, models, profiles and prediction-log segments as files).
//!
//! This crate knows nothing about HTTP, training or serving: it stores records and answers queries.

mod blob;
mod db;
mod error;
pub mod lease;
pub mod llm_usage;
pub mod logged_models;
mod meta;
pub mod registry;
pub mod rollout;
mod run_search;
mod s3;
pub mod search;
pub mod summaries;
pub mod tokens;
pub mod tracking;

pub use blob::BlobStore;
pub use error::{Error, Result};
pub use lease::{Lease, QueuedCommand, ServingCount};
pub use llm_usage::{LlmCall, UsageDimension, UsageTotal};
pub use logged_models::{LoggedModel, LoggedModelMetric, NewLoggedModel};
pub use meta::{Durability, EventFilter, LabelWrite, MetaStore, SCHEMA_VERSION};
pub use registry::{NewVersion, RegisteredModel, RegistryVersion};
pub use rollout::{Rollout, RolloutChange};
pub use summaries::{IndexedPrediction, JoinedLabel, StoredSummary, SummaryKey, SummaryKind, SummaryPass};
pub use tokens::{ApiToken, Scope, hex, random_hex};
pub use tracking::{DatasetInput, Experiment, MetricPoint, ModelMetricLink, NewRun, TrackedRun, ViewType};

/// Test stores on either backend, and the macro that runs a test body on both.
#[cfg(test)]
pub(crate) mod testing {
    use causeway_test_support::PostgresSchema;

    use crate::{MetaStore, Result};

    /// Where one test's store lives: a fresh SQLite file, or a PostgreSQL schema of its own
    /// (dropped with this).
    pub(crate) struct TestStore {
        url: String,
        _schema: Option<PostgresSchema>,
        _directory: tempfile::TempDir,
    }

    impl TestStore {
        /// A fresh SQLite file.
        pub(crate) fn sqlite() -> Self {
            let directory = tempfile::tempdir().unwrap_or_else(|error| panic!("temporary directory: {error}"));
            let url = directory.path().join("meta.db").display().to_string();
            Self { url, _schema: None, _directory: directory }
        }

        /// A fresh schema on the test PostgreSQL server.
        pub(crate) fn postgres() -> Self {
            let schema = PostgresSchema::new("store");
            let directory = tempfile::tempdir().unwrap_or_else(|error| panic!("temporary directory: {error}"));
            Self { url: schema.url(), _schema: Some(schema), _directory: directory }
        }

        /// Opens (again) the store.
        pub(crate) fn open(&self) -> Result<MetaStore> {
            MetaStore::open_url(&self.url)
        }
    }

    /// Runs each named `fn(&TestStore) -> Result<()>` as two tests, on SQLite and on PostgreSQL.
    macro_rules! on_both_backends {
        ($($test:ident),+ $(,)?) => {
            mod on_sqlite {
                $(#[test]
                fn $test() -> crate::Result<()> {
                    super::$test(&crate::testing::TestStore::sqlite())
                })+
            }
            mod on_postgres {
                $(#[test]
                fn $test() -> crate::Result<()> {
                    super::$test(&crate::testing::TestStore::postgres())
                })+
            }
        };
    }
    pub(crate) use on_both_backends;
}
