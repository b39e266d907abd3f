//! Causeway's HTTP surface: the Open Inference Protocol v2 REST routes, the record-style scoring
//! and label-feedback routes, the Prometheus `/metrics` endpoint, and the MLflow tracking REST API
//! ([`mlflow`]), with one mapping from errors to HTTP responses per protocol.
//!
//! This crate holds no domain logic: handlers parse, call the serving engine, and format.

pub mod access;
pub mod app;
pub mod artifacts;
pub mod auth;
pub mod connections;
pub mod error;
mod history;
mod logged_models;
mod metrics;
pub mod mlflow;
mod oip;
pub mod openai;
mod preview;
pub mod registry;
mod routes;
pub mod run;

use std::sync::Arc;
use std::time::Duration;

use causeway_serving::Engine;
use causeway_store::MetaStore;
use causeway_types::Clock;

pub use error::{ApiError, Error};
pub use metrics::Metrics;
pub use routes::router;

/// The largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The inference engine.
    pub engine: Arc<Engine>,
    /// The metadata store (labels).
    pub meta: Arc<MetaStore>,
    /// The clock stamping labels.
    pub clock: Arc<dyn Clock>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State over an engine.
    pub fn new(engine: Arc<Engine>, meta: Arc<MetaStore>, clock: Arc<dyn Clock>) -> Self {
        Self { engine, meta, clock, metrics: Arc::new(Metrics::new()) }
    }
}

/// Reloads deployments from the store every `period`, so promotions and rollbacks made by the
/// loop or the CLI reach this server without a restart. Runs until the runtime shuts down.
pub fn spawn_refresher(engine: Arc<Engine>, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let engine = engine.clone();
            match tokio::task::spawn_blocking(move || engine.refresh()).await {
                Ok(Ok(report)) => {
                    if !report.changed.is_empty() {
                        tracing::info!(models = ?report.changed, "deployments reloaded");
                    }
                    for (model, reason) in report.unservable {
                        tracing::warn!(model, %reason, "not serving this model");
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "reloading deployments failed"),
                Err(_) => {}
            }
        }
    })
}
