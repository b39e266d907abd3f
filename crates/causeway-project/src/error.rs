//! The project crate's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// What can go wrong loading a project.
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
    /// There is nothing to do this with.
    #[error("{0}")]
    Precondition(String),
    /// A store failed to open.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
    /// The online store failed to open.
    #[error(transparent)]
    Features(#[from] causeway_features::Error),
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) => ErrorCode::InvalidInput,
            Self::Io { .. } => ErrorCode::Storage,
            Self::Precondition(_) => ErrorCode::Conflict,
            Self::Store(error) => error.code(),
            Self::Features(error) => error.code(),
        }
    }
}

/// Result with the project crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
