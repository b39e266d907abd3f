//! Prometheus metrics: requests, errors and latency per model version, and the prediction log's
//! drop counter.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a served request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The model.
    pub model: String,
    /// The version that answered.
    pub version: String,
    /// The route (`infer` or `score`).
    pub endpoint: String,
}

/// Labels of a failed request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The model.
    pub model: String,
    /// The route.
    pub endpoint: String,
    /// The error code.
    pub code: String,
}

/// Labels of a categorical input's unknown values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CategoryLabels {
    /// The model.
    pub model: String,
    /// The categorical input.
    pub feature: String,
}

/// The server's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Successful predictions.
    pub requests: Family<RequestLabels, Counter>,
    /// Failed predictions.
    pub errors: Family<ErrorLabels, Counter>,
    /// Handler latency in seconds.
    pub latency: Family<RequestLabels, Histogram>,
    /// Category values the model never saw (scored as missing), per model and input.
    pub unknown_categories: Family<CategoryLabels, Counter>,
    dropped: Counter,
    dropped_seen: Mutex<u64>,
    logged: Counter,
    logged_seen: Mutex<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        Self::with_gateway(None)
    }

    /// Registers every metric, the LLM gateway's (`causeway_llm_*`) too when there is one.
    pub fn with_gateway(gateway: Option<&causeway_gateway::metrics::GatewayMetrics>) -> Self {
        let mut registry = Registry::with_prefix("causeway");
        if let Some(gateway) = gateway {
            gateway.register(&mut registry);
        }
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
        });
        let dropped = Counter::default();
        let logged = Counter::default();
        let unknown_categories = Family::<CategoryLabels, Counter>::default();
        registry.register(
            "unknown_categories",
            "Categorical input values the model never saw in training (scored as missing), per model and input",
            unknown_categories.clone(),
        );
        registry.register(
            "prediction_requests",
            "Predictions served, per model version and endpoint",
            requests.clone(),
        );
        registry.register(
            "prediction_errors",
            "Prediction requests that failed, per model, endpoint and error code",
            errors.clone(),
        );
        registry.register("prediction_latency_seconds", "Time to answer a prediction request", latency.clone());
        registry.register(
            "prediction_log_dropped",
            "Prediction-log records dropped because the queue was full",
            dropped.clone(),
        );
        registry.register("prediction_log_written", "Prediction-log records written to segments", logged.clone());
        Self {
            registry,
            requests,
            errors,
            latency,
            unknown_categories,
            dropped,
            dropped_seen: Mutex::new(0),
            logged,
            logged_seen: Mutex::new(0),
        }
    }

    /// Renders the text exposition format, after syncing the log counters to `dropped`/`written`.
    pub fn render(&self, dropped: u64, written: u64) -> String {
        for (counter, seen, current) in
            [(&self.dropped, &self.dropped_seen, dropped), (&self.logged, &self.logged_seen, written)]
        {
            let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if current > *seen {
                counter.inc_by(current - *seen);
                *seen = current;
            }
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
