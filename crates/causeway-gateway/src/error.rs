//! The gateway's error and its [`ErrorCode`].

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Why a gateway operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[gateway]` configuration is inconsistent; the message says what to change.
    #[error("gateway configuration: {0}")]
    Config(String),
}

/// The gateway's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) => ErrorCode::InvalidInput,
        }
    }
}
