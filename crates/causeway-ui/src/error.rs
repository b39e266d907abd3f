//! The UI crate's error, and the one place it becomes an HTTP answer (through the server's
//! [`ApiError`], so the browser reads the same `{error, code}` body every route gives).

use axum::response::{IntoResponse, Response};
use causeway_server::error::ApiError;
use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Why a UI request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (a bad parameter, an unknown action).
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with what changed meanwhile (the champion moved since the page was read).
    #[error("{0}")]
    Conflict(String),
    /// The loop or a project operation failed.
    #[error(transparent)]
    Loop(#[from] causeway_loop::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
    /// A blocking task did not finish (the server is stopping).
    #[error("the request was cancelled: {0}")]
    Cancelled(String),
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidInput,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Loop(error) => error.code(),
            Self::Store(error) => error.code(),
            Self::Cancelled(_) => ErrorCode::Unavailable,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from_error(&self).into_response()
    }
}
