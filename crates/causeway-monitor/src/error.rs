//! The monitor crate's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Everything that can go wrong logging or reading predictions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
    /// A log segment could not be written or read.
    #[error("prediction log segment {segment}: {message}")]
    Segment {
        /// The segment's key.
        segment: String,
        /// What went wrong.
        message: String,
    },
    /// The writer thread has stopped.
    #[error("prediction log writer has stopped")]
    Stopped,
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Store(error) => error.code(),
            Self::Segment { .. } | Self::Stopped => ErrorCode::Storage,
        }
    }
}

/// Result with the monitor crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
