//! The one place errors become HTTP responses: `{"error": message, "code": CODE}` with the
//! status of the error's [`ErrorCode`]. (`error` is the Open Inference Protocol's field.)

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The kind.
    pub code: ErrorCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// An invalid-input error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// Converts any crate error.
    pub fn from_error<E: HasErrorCode + std::fmt::Display>(error: &E) -> Self {
        Self::new(error.code(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = self.code.as_str(), message = %self.message, "request failed");
        }
        (status, Json(serde_json::json!({"error": self.message, "code": self.code.as_str()}))).into_response()
    }
}

impl From<causeway_serving::Error> for ApiError {
    fn from(error: causeway_serving::Error) -> Self {
        Self::from_error(&error)
    }
}

impl From<causeway_store::Error> for ApiError {
    fn from(error: causeway_store::Error) -> Self {
        Self::from_error(&error)
    }
}

impl From<causeway_models::InputError> for ApiError {
    fn from(error: causeway_models::InputError) -> Self {
        Self::invalid(error.to_string())
    }
}

/// Why a server could not start or stopped badly (not a request's error: that is [`ApiError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {cause}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// A model that had to deploy did not.
    #[error("cannot serve `{model}`: {reason}")]
    NotDeployed {
        /// The model.
        model: String,
        /// Why it did not deploy.
        reason: String,
    },
    /// The serving engine failed.
    #[error(transparent)]
    Serving(#[from] causeway_serving::Error),
    /// The prediction log failed.
    #[error(transparent)]
    Monitor(#[from] causeway_monitor::Error),
    /// The online store failed.
    #[error(transparent)]
    Features(#[from] causeway_features::Error),
    /// The runtime or the listener failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}
