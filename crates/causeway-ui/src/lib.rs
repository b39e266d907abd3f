//! The web UI: the pages (hand-written ES modules, CSS and a vendored chart library, embedded in
//! the binary so it works offline) and the JSON they read under `/ui/api/`. Runs, experiments
//! and artifacts come from the MLflow API the server already answers; this crate adds what that
//! API lacks: the overview, models with their gates, the loop, monitoring series, datasets, the
//! audit log and downsampled metric curves.
//!
//! A thin adapter: each route decodes, calls one library operation (the same the CLI calls, so a
//! promotion from the browser is audited like one from the terminal) and encodes. It decides
//! nothing itself, and it never bypasses the server's authentication: the router is merged inside
//! the server's auth and access layers, which also decide each route's scope.

mod api;
mod assets;
pub mod downsample;
mod error;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use causeway_loop::Project;
use causeway_types::Clock;

pub use error::Error;

/// What the UI's routes read and act on.
#[derive(Clone)]
pub struct UiState {
    /// The project: its stores and `causeway.toml` (the loop's and the gates' settings).
    pub project: Arc<Project>,
    /// The clock stamping what a person does from the browser.
    pub clock: Arc<dyn Clock>,
}

/// The UI's routes: the page shell at `/` and `/ui/...`, the embedded assets under
/// `/ui/assets/`, and the JSON API under `/ui/api/`.
pub fn router(state: UiState) -> Router {
    let api = Router::new()
        .route("/ui/api/whoami", get(api::whoami))
        .route("/ui/api/overview", get(api::overview))
        .route("/ui/api/models", get(api::models))
        .route("/ui/api/models/{model}", get(api::model))
        .route("/ui/api/models/{model}/versions/{version}", get(api::version))
        .route("/ui/api/models/{model}/versions/{version}/gates", get(api::gates))
        .route("/ui/api/models/{model}/promote", post(api::promote))
        .route("/ui/api/models/{model}/rollback", post(api::rollback))
        .route("/ui/api/loop/{model}", get(api::loop_status))
        .route("/ui/api/loop/{model}/{action}", post(api::loop_command))
        .route("/ui/api/monitoring/{model}", get(api::monitoring))
        .route("/ui/api/datasets", get(api::datasets))
        .route("/ui/api/datasets/{name}/{version}", get(api::dataset))
        .route("/ui/api/events", get(api::events))
        .route("/ui/api/series", get(api::series))
        .route("/ui/api/runs/{run_id}", get(api::run))
        .route("/ui/api/{*rest}", axum::routing::any(api::unknown))
        .with_state(state);
    Router::new()
        .route("/", get(assets::shell))
        .route("/ui", get(assets::shell))
        .route("/ui/", get(assets::shell))
        .route("/ui/assets/{*path}", get(assets::asset))
        .route("/ui/{*page}", get(assets::shell))
        .route("/favicon.ico", get(assets::favicon))
        .merge(api)
}
