//! The one list of error kinds every crate's `Error` maps to, and what each means on the wire.

use serde::{Deserialize, Serialize};

/// What went wrong, independent of which crate noticed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The caller sent something malformed or out of range.
    InvalidInput,
    /// A data batch broke its expectation suite or schema.
    ValidationFailed,
    /// The named thing does not exist.
    NotFound,
    /// The named thing exists already.
    AlreadyExists,
    /// The request conflicts with the current state (for example a rollout already running).
    Conflict,
    /// The request body or a collection exceeds a configured limit.
    TooLarge,
    /// The caller is over a rate or spend limit; it may retry later.
    RateLimited,
    /// A dependency (model, store) is not ready yet.
    Unavailable,
    /// Reading or writing storage failed.
    Storage,
    /// A bug or an unexpected state inside Causeway.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this error answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidInput | Self::ValidationFailed => 400,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Storage | Self::Internal => 500,
        }
    }

    /// The stable machine-readable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "INVALID_INPUT",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::Conflict => "CONFLICT",
            Self::TooLarge => "TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Storage => "STORAGE",
            Self::Internal => "INTERNAL",
        }
    }
}

/// Implemented by every crate's `Error` so the server maps all of them in one place.
pub trait HasErrorCode {
    /// The code this error maps to.
    fn code(&self) -> ErrorCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_name_matches_as_str() {
        for code in [
            ErrorCode::InvalidInput,
            ErrorCode::ValidationFailed,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::Conflict,
            ErrorCode::TooLarge,
            ErrorCode::Unavailable,
            ErrorCode::Storage,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::ValidationFailed.http_status(), 400);
        assert_eq!(ErrorCode::NotFound.http_status(), 404);
    }
}
