//! Bearer-token authentication and scopes for every route except the health probes.
//!
//! Reading needs `read`; logging runs, artifacts, predictions and labels needs `write`; changing
//! registered models, versions and aliases needs `admin`. When tokens are not required (a
//! loopback bind), requests without a token pass as `anonymous`, but a token that is sent must be
//! valid. The caller's name reaches handlers as a [`Caller`] extension for the audit log.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use causeway_store::{MetaStore, Scope};
use serde_json::json;

/// How requests are authenticated.
#[derive(Clone)]
pub struct AuthConfig {
    /// Where tokens live.
    pub meta: Arc<MetaStore>,
    /// Whether every request must carry a valid token.
    pub required: bool,
}

/// Who is calling, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous`.
    pub name: String,
    /// What the caller may do.
    pub scope: Scope,
}

/// The scope a request needs.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else if path.starts_with("/api/2.0/mlflow/registered-models")
        || path.starts_with("/api/2.0/mlflow/model-versions")
    {
        Scope::Admin
    } else {
        Scope::Write
    }
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    // Both error shapes at once: MLflow clients read `error_code`, OIP clients read `error`.
    (status, Json(json!({"error_code": code, "code": code, "message": message, "error": message}))).into_response()
}

/// The middleware: checks the bearer token and attaches the [`Caller`].
pub async fn authenticate(State(config): State<AuthConfig>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/v2/health/") || path.starts_with(crate::artifacts::PART_ROUTE_PREFIX) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(|token| token.trim().to_string());
    let caller = match presented {
        Some(secret) => {
            let meta = config.meta.clone();
            match tokio::task::spawn_blocking(move || meta.authenticate(&secret)).await {
                Ok(Ok(Some(token))) => Caller { name: token.name, scope: token.scope },
                Ok(Ok(None)) => {
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHENTICATED",
                        "the bearer token is unknown or revoked".into(),
                    );
                }
                _ => {
                    return refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "INTERNAL_ERROR",
                        "could not check the bearer token".into(),
                    );
                }
            }
        }
        None if config.required => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "this server requires `Authorization: Bearer <token>` (create one with `causeway token create`)".into(),
            );
        }
        None => Caller { name: "anonymous".into(), scope: Scope::Admin },
    };
    let needed = required_scope(request.method(), &path);
    if caller.scope < needed {
        return refuse(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "token `{}` has scope `{}`; {} {path} needs `{}`",
                caller.name,
                caller.scope.as_str(),
                request.method(),
                needed.as_str()
            ),
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The actor name for the audit log: the caller, or `mlflow` when no middleware ran.
pub fn actor(caller: Option<&Caller>) -> String {
    caller.map_or_else(|| "mlflow".to_string(), |caller| caller.name.clone())
}
