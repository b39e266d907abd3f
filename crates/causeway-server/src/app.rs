//! One function assembles the whole HTTP surface, so the binary's commands and the tests get the
//! same routes and the same layers in the same order: the access guard (hosts, origins, JSON
//! error bodies) outermost, then authentication, then the routes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use causeway_serving::Engine;
use causeway_store::{BlobStore, MetaStore};
use causeway_types::Clock;

use crate::access::AccessPolicy;
use crate::artifacts::ArtifactState;
use crate::auth::AuthConfig;
use crate::mlflow::TrackingState;
use crate::{AppState, access, auth};

/// What a server is made of.
pub struct ServerParts {
    /// The metadata store.
    pub meta: Arc<MetaStore>,
    /// The artifact store.
    pub blobs: BlobStore,
    /// The clock stamping what clients do not.
    pub clock: Arc<dyn Clock>,
    /// The data plane (inference, labels, metrics), if this server serves models.
    pub engine: Option<Arc<Engine>>,
    /// Whether the MLflow tracking, registry and artifact API is served.
    pub tracking: bool,
    /// Whether every request must carry a token.
    pub require_tokens: bool,
    /// Hosts and origins beyond the defaults.
    pub access: AccessPolicy,
    /// The server's URL as clients reach it (for multipart upload URLs).
    pub public_url: String,
    /// How the tracking API differs from MLflow's defaults.
    pub tracking_options: crate::mlflow::TrackingOptions,
    /// The web UI's routes (`causeway-ui`), served inside the same authentication and access
    /// layers as every other route.
    pub ui: Option<Router>,
    /// The LLM gateway's OpenAI API (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`),
    /// when the project configures `[gateway]`.
    pub gateway: Option<Arc<causeway_gateway::Gateway>>,
}

impl ServerParts {
    /// The URL clients reach a server bound to `bound` at, unless told otherwise: the bound
    /// address, or loopback for an unspecified one (0.0.0.0 or ::).
    pub fn default_public_url(bound: SocketAddr) -> String {
        if bound.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", bound.port())
        } else {
            format!("http://{bound}")
        }
    }
}

/// The route `path_and_query` means when it is spelled another way, or `None` when it is already
/// canonical: repeated slashes are one (Flask merges them, and MLflow's clients send
/// `//model-versions/...`), and on a tracking server MLflow's web UI's `/ajax-api/` is `/api/`.
fn canonical_path(path_and_query: &str, tracking: bool) -> Option<axum::http::Uri> {
    let (path, query) =
        path_and_query.split_once('?').map_or((path_and_query, None), |(path, query)| (path, Some(query)));
    let mut collapsed = String::with_capacity(path.len());
    for character in path.chars() {
        if !(character == '/' && collapsed.ends_with('/')) {
            collapsed.push(character);
        }
    }
    if tracking && collapsed.starts_with("/ajax-api/") {
        collapsed.replace_range(.."/ajax-api".len(), "/api");
    }
    if collapsed == path {
        return None;
    }
    let rewritten = match query {
        Some(query) => format!("{collapsed}?{query}"),
        None => collapsed,
    };
    rewritten.parse().ok()
}

/// The routes and layers of a server.
pub fn build(parts: ServerParts) -> Router {
    let mut app = Router::new();
    if let Some(engine) = parts.engine {
        let mut state = AppState::new(engine, parts.meta.clone(), parts.clock.clone());
        if let Some(gateway) = &parts.gateway {
            state.metrics = Arc::new(crate::Metrics::with_gateway(Some(gateway.metrics())));
        }
        app = app.merge(crate::router(state));
    }
    if parts.tracking {
        let tracking = TrackingState {
            options: parts.tracking_options,
            ..TrackingState::new(parts.meta.clone(), parts.clock.clone(), Some(parts.blobs.clone()))
        };
        let artifacts = ArtifactState { blobs: parts.blobs, public_url: parts.public_url, clock: parts.clock };
        app = app.merge(crate::mlflow::router(tracking)).merge(crate::artifacts::router(artifacts));
    }
    if let Some(ui) = parts.ui {
        app = app.merge(ui);
    }
    if let Some(gateway) = parts.gateway {
        app = app.merge(crate::openai::router(gateway));
    }
    app = app.fallback(crate::routes::not_found);
    let authentication = AuthConfig { meta: parts.meta, required: parts.require_tokens };
    let policy = AccessPolicy { check_hosts: parts.access.check_hosts && !parts.require_tokens, ..parts.access };
    let checked = app
        .layer(axum::middleware::from_fn_with_state(authentication, auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(Arc::new(policy), access::guard));
    // Spellings are made canonical before anything looks at the path, so the guard, the scopes
    // and the routes all see one path.
    Router::new()
        .fallback_service(checked)
        .layer(axum::middleware::map_request_with_state(parts.tracking, canonical_request))
        .layer(axum::middleware::from_fn(server_timing))
}

/// Adds `Server-Timing: app;dur=MS` to every answer: the time until its head was ready, which
/// browsers show in their network panel and `PerformanceResourceTiming.serverTiming`, and the
/// benchmarks read to tell the server's time from the client's.
async fn server_timing(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let milliseconds = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("app;dur={milliseconds:.2}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Rewrites the request to its route's canonical spelling (see [`canonical_path`]).
async fn canonical_request(
    axum::extract::State(tracking): axum::extract::State<bool>,
    mut request: Request,
) -> Request {
    if let Some(uri) = request.uri().path_and_query().and_then(|path| canonical_path(path.as_str(), tracking)) {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    fn canonical(path: &str, tracking: bool) -> Option<String> {
        canonical_path(path, tracking).map(|uri| uri.to_string())
    }

    #[test]
    fn other_spellings_of_a_route_become_its_own() {
        assert_eq!(
            canonical("//model-versions/get-artifact?path=a//b", true).as_deref(),
            Some("/model-versions/get-artifact?path=a//b")
        );
        assert_eq!(canonical("/ajax-api/2.0/mlflow/runs/search", true).as_deref(), Some("/api/2.0/mlflow/runs/search"));
        assert_eq!(canonical("//ajax-api//2.0/mlflow/x?a=1", true).as_deref(), Some("/api/2.0/mlflow/x?a=1"));
        assert_eq!(canonical("/ajax-api/2.0/mlflow/runs/search", false), None, "no tracking API, no alias");
        assert_eq!(canonical("/api/2.0/mlflow/runs/search?x=1", true), None);
        assert_eq!(canonical("/", true), None);
    }
}
