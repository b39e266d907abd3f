//! One function assembles the whole HTTP surface, so the binary's commands and the tests get the
//! same routes and the same layers in the same order: the access guard (hosts, origins, JSON
//! error bodies) outermost, then authentication, then the routes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use causeway_serving::Engine;
use causeway_store::{BlobStore, MetaStore};
use causeway_types::Clock;
use tower::ServiceExt;

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

/// The routes and layers of a server.
pub fn build(parts: ServerParts) -> Router {
    let mut app = Router::new();
    if let Some(engine) = parts.engine {
        app = app.merge(crate::router(AppState::new(engine, parts.meta.clone(), parts.clock.clone())));
    }
    if parts.tracking {
        let tracking =
            TrackingState { meta: parts.meta.clone(), clock: parts.clock.clone(), blobs: Some(parts.blobs.clone()) };
        let artifacts = ArtifactState { blobs: parts.blobs, public_url: parts.public_url, clock: parts.clock };
        app = app.merge(crate::mlflow::router(tracking)).merge(crate::artifacts::router(artifacts));
    }
    if parts.tracking {
        // MLflow's web UI calls the same API under `/ajax-api/`.
        let api = app.clone();
        app = app.route(
            "/ajax-api/{*rest}",
            axum::routing::any(move |mut request: Request| {
                let api = api.clone();
                async move {
                    let rewritten = request
                        .uri()
                        .path_and_query()
                        .map(|path| path.as_str().replacen("/ajax-api/", "/api/", 1))
                        .and_then(|path| path.parse::<axum::http::Uri>().ok());
                    if let Some(uri) = rewritten {
                        *request.uri_mut() = uri;
                    }
                    api.oneshot(request).await.into_response()
                }
            }),
        );
    }
    let authentication = AuthConfig { meta: parts.meta, required: parts.require_tokens };
    let policy = AccessPolicy { check_hosts: parts.access.check_hosts && !parts.require_tokens, ..parts.access };
    app.layer(axum::middleware::from_fn_with_state(authentication, auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(Arc::new(policy), access::guard))
}
