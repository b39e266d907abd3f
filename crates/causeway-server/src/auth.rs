//! Bearer-token authentication and scopes for every route except the health probes.
//!
//! Scopes follow what a request does: reading (GET, and the searches that POST their filters)
//! needs `read`; logging runs, artifacts, predictions and labels, and registering models and
//! versions, needs `write`; moving aliases, stages, deleting and renaming needs `admin`. When tokens are not required (a
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

/// POST routes that only read (searches take their filters in a body).
const READING_POSTS: [&str; 7] = [
    "/api/2.0/mlflow/runs/search",
    "/api/2.0/mlflow/experiments/search-datasets",
    "/api/2.0/mlflow/experiments/search",
    "/api/2.0/mlflow/logged-models/search",
    "/api/2.0/mlflow/registered-models/search",
    "/api/2.0/mlflow/model-versions/search",
    "/api/2.0/mlflow/registered-models/get-latest-versions",
];

/// Registry routes that change who answers or destroy history: aliases, stages, deletions and
/// renames. Registering models and versions, tags and descriptions need only `write`.
const ADMIN_ROUTES: [&str; 5] = [
    "/api/2.0/mlflow/registered-models/alias",
    "/api/2.0/mlflow/registered-models/delete",
    "/api/2.0/mlflow/registered-models/rename",
    "/api/2.0/mlflow/model-versions/delete",
    "/api/2.0/mlflow/model-versions/transition-stage",
];

/// The web UI's JSON routes: every action there (promote, roll back, pause, resume, retrain)
/// changes who answers or what the loop does, so it needs `admin`.
const UI_API: &str = "/ui/api/";

/// Whether `path` is a page of the web UI or one of its files: served without a token, so the
/// login form loads (they hold no data; the data comes from `/ui/api/` and the MLflow API, which
/// need one).
pub fn is_public_page(path: &str) -> bool {
    path == "/" || path == "/favicon.ico" || path == "/ui" || (path.starts_with("/ui/") && !path.starts_with(UI_API))
}

/// The scope a request needs, by what it does rather than by its HTTP method.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    let path = path.trim_end_matches('/');
    let path = path.replacen("/api/2.0/preview/", "/api/2.0/", 1);
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (method == Method::POST && READING_POSTS.contains(&path.as_str()));
    if reads {
        Scope::Read
    } else if ADMIN_ROUTES.contains(&path.as_str()) || path.starts_with(UI_API) {
        Scope::Admin
    } else {
        Scope::Write
    }
}

fn refuse_on(path: &str, status: StatusCode, code: &str, message: String) -> Response {
    if crate::openai::is_openai_route(path) {
        return crate::access::protocol_error(path, status, code, message);
    }
    refuse(status, code, message)
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    // Both error shapes at once: MLflow clients read `error_code`, OIP clients read `error`.
    (status, Json(json!({"error_code": code, "code": code, "message": message, "error": message}))).into_response()
}

/// The middleware: checks the bearer token and attaches the [`Caller`].
pub async fn authenticate(State(config): State<AuthConfig>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/v2/health/")
        || path == "/health"
        || path == "/version"
        || path.starts_with(crate::artifacts::PART_ROUTE_PREFIX)
        || is_public_page(&path)
    {
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
                // OpenAI's clients cannot send no key: on a server that requires no tokens, the
                // key they must send to the gateway's routes is not one of ours and means nothing.
                Ok(Ok(None)) if !config.required && crate::openai::is_openai_route(&path) => {
                    Caller { name: "anonymous".into(), scope: Scope::Admin }
                }
                Ok(Ok(None)) => {
                    return refuse_on(
                        &path,
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHENTICATED",
                        "the bearer token is unknown or revoked".into(),
                    );
                }
                _ => {
                    return refuse_on(
                        &path,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "INTERNAL_ERROR",
                        "could not check the bearer token".into(),
                    );
                }
            }
        }
        None if config.required => {
            return refuse_on(
                &path,
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "this server requires `Authorization: Bearer <token>` (create one with `causeway token create`)".into(),
            );
        }
        None => Caller { name: "anonymous".into(), scope: Scope::Admin },
    };
    let needed = required_scope(request.method(), &path);
    if caller.scope < needed {
        return refuse_on(
            &path,
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

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use causeway_store::Scope;

    use super::{is_public_page, required_scope};

    #[test]
    fn the_web_ui_pages_are_public_and_its_actions_need_admin() {
        for page in ["/", "/ui", "/ui/models/fraud", "/ui/assets/js/app.js", "/favicon.ico"] {
            assert!(is_public_page(page), "{page}");
        }
        for data in ["/ui/api/overview", "/ui/api/models/fraud/promote", "/api/2.0/mlflow/runs/search", "/uix"] {
            assert!(!is_public_page(data), "{data}");
        }
        assert_eq!(required_scope(&Method::GET, "/ui/api/overview"), Scope::Read);
        assert_eq!(required_scope(&Method::POST, "/ui/api/models/fraud/promote"), Scope::Admin);
        assert_eq!(required_scope(&Method::POST, "/ui/api/loop/fraud/pause"), Scope::Admin);
        assert_eq!(required_scope(&Method::POST, "/api/2.0/mlflow/runs/search"), Scope::Read);
        assert_eq!(required_scope(&Method::POST, "/api/2.0/mlflow/runs/log-batch"), Scope::Write);
    }
}
