//! The gateway's error and its [`ErrorCode`].

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Why a gateway operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[gateway]` configuration is inconsistent; the message says what to change.
    #[error("gateway configuration: {0}")]
    Config(String),
    /// The caller's request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A guardrail refused the request; the message names the rule and where, never what it found.
    #[error("{0}")]
    Blocked(String),
    /// What the request names does not exist (a route).
    #[error("{0}")]
    NotFound(String),
    /// The caller is over a limit; it may retry after `retry_after_seconds`.
    #[error("{message}")]
    Limited {
        /// Which limit, whose, and when to retry.
        message: String,
        /// Whole seconds (the `Retry-After` header).
        retry_after_seconds: u64,
    },
    /// The ledger's store could not be read or its writer started.
    #[error("the LLM ledger: {0}")]
    Ledger(String),
    /// The upstream could not be reached, timed out, failed or broke its answer off.
    #[error("provider `{provider}`: {message}")]
    Upstream {
        /// The provider's name.
        provider: String,
        /// What went wrong.
        message: String,
    },
}

/// The gateway's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) | Self::Invalid(_) | Self::Blocked(_) => ErrorCode::InvalidInput,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Limited { .. } => ErrorCode::RateLimited,
            Self::Ledger(_) => ErrorCode::Storage,
            Self::Upstream { .. } => ErrorCode::Unavailable,
        }
    }
}
