//! The loop crate's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Everything that can go wrong running the loop or a project command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `causeway.toml` is missing, malformed or inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// A project file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause (in the message, not a separate source, so it is said once).
        cause: std::io::Error,
    },
    /// There is nothing to do this with (no data, no model, …).
    #[error("{0}")]
    Precondition(String),
    /// The project (its `causeway.toml` or stores) could not be loaded.
    #[error(transparent)]
    Project(#[from] causeway_project::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
    /// Data handling failed.
    #[error(transparent)]
    Data(#[from] causeway_data::Error),
    /// Feature computation failed.
    #[error(transparent)]
    Features(#[from] causeway_features::Error),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] causeway_train::Error),
    /// A model failed to load.
    #[error(transparent)]
    Model(#[from] causeway_models::Error),
    /// Monitoring failed.
    #[error(transparent)]
    Monitor(#[from] causeway_monitor::Error),
    /// Serving failed.
    #[error(transparent)]
    Serving(#[from] causeway_serving::Error),
    /// A stored document is malformed.
    #[error("stored document: {0}")]
    Json(#[from] serde_json::Error),
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) => ErrorCode::InvalidInput,
            Self::Io { .. } => ErrorCode::Storage,
            Self::Precondition(_) => ErrorCode::Conflict,
            Self::Project(error) => error.code(),
            Self::Store(error) => error.code(),
            Self::Data(error) => error.code(),
            Self::Features(error) => error.code(),
            Self::Train(error) => error.code(),
            Self::Model(error) => error.code(),
            Self::Monitor(error) => error.code(),
            Self::Serving(error) => error.code(),
            Self::Json(_) => ErrorCode::Storage,
        }
    }
}

/// Result with the loop crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
