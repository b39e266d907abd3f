//! The serving crate's error type.

use causeway_models::InputError;
use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Everything that can go wrong serving a prediction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such model or version.
    #[error("model `{0}` is not deployed: register a version and point its `champion` alias at it")]
    NotDeployed(String),
    /// The requested version does not exist.
    #[error("model `{model}` has no version {version}")]
    NoSuchVersion {
        /// The model.
        model: String,
        /// The version asked for.
        version: u32,
    },
    /// The input does not fit the model.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Record scoring needs a feature set and an online store.
    #[error("record scoring is not configured: declare [features] in causeway.toml")]
    NoFeatures,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
    /// A model artifact failed to load.
    #[error("cannot load model `{model}` version {version}: {cause}")]
    Load {
        /// The model.
        model: String,
        /// The version.
        version: u32,
        /// The cause (in the message, said once).
        cause: causeway_models::Error,
    },
    /// The online store failed.
    #[error(transparent)]
    Features(#[from] causeway_features::Error),
    /// The model cannot answer this kind of request.
    #[error("{0}")]
    Unsupported(String),
    /// The model gave no number for a row (a runtime failure, or a graph that propagates NaN).
    #[error("model `{model}` version {version} could not score row {row} (it answered NaN)")]
    NoScore {
        /// The model.
        model: String,
        /// The version.
        version: u32,
        /// The first row without a score.
        row: usize,
    },
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotDeployed(_) | Self::NoSuchVersion { .. } => ErrorCode::NotFound,
            Self::Input(_) => ErrorCode::InvalidInput,
            Self::NoFeatures => ErrorCode::Unavailable,
            Self::Store(error) => error.code(),
            Self::Load { .. } | Self::NoScore { .. } => ErrorCode::Internal,
            Self::Features(error) => error.code(),
            Self::Unsupported(_) => ErrorCode::InvalidInput,
        }
    }
}

/// Result with the serving crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
