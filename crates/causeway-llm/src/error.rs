//! The language-model crate's error and its [`ErrorCode`].

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Why loading or running a model failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a model this crate can read; the message says what is wrong.
    #[error("{0}")]
    Format(String),
    /// The model is valid but uses something not implemented here (an architecture, a tensor type).
    #[error("{0}")]
    Unsupported(String),
    /// The caller asked for something the model cannot do (a prompt longer than its context).
    #[error("{0}")]
    Invalid(String),
}

/// The crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } => ErrorCode::Storage,
            Self::Format(_) | Self::Unsupported(_) | Self::Invalid(_) => ErrorCode::InvalidInput,
        }
    }
}
