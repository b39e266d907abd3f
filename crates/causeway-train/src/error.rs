//! The train crate's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Everything that can go wrong training or tracking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The training data cannot be used.
    #[error("training data: {0}")]
    Data(String),
    /// A hyper-parameter search is declared wrongly.
    #[error("search: {0}")]
    Search(String),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] causeway_models::Error),
    /// Tracking failed.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Data(_) | Self::Search(_) => ErrorCode::InvalidInput,
            Self::Model(error) => error.code(),
            Self::Store(error) => error.code(),
        }
    }
}

/// Result with the train crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
