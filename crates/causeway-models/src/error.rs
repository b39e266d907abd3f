//! The models crate's error types.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// An input that does not fit the model's signature, naming the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("input `{field}`: {message}")]
pub struct InputError {
    /// The feature or tensor at fault.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InputError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Everything that can go wrong loading or using a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input does not match the signature.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The artifact could not be parsed.
    #[error("model artifact is not valid JSON for this format: {0}")]
    Parse(#[from] serde_json::Error),
    /// The artifact parsed but is inconsistent.
    #[error("model artifact is inconsistent: {0}")]
    Invalid(String),
    /// The model uses something Causeway cannot score exactly (named in the message).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The artifact was written by a newer Causeway.
    #[error("model artifact format {found} is newer than this Causeway supports ({supported}); upgrade Causeway")]
    TooNew {
        /// The format found.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Input(_) => ErrorCode::InvalidInput,
            Self::Parse(_) | Self::Invalid(_) | Self::Unsupported(_) | Self::TooNew { .. } => ErrorCode::InvalidInput,
        }
    }
}

/// Result with the models crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
