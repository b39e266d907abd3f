//! Monitoring in Causeway: the prediction log (a bounded queue drained off the request path into
//! Parquet segments, and its reader), drift statistics (PSI and KS per feature and for the score
//! against the model's training baseline), delayed-label joins with rolling metrics per model
//! version, alert rules, the self-contained HTML report, and drift between two datasets
//! (`causeway drift`).

pub mod baseline;
pub mod dataset_drift;
pub mod drift;
mod error;
pub mod notify;
pub mod outcomes;
pub mod paired;
pub mod predlog;
pub mod report;
pub mod rules;
pub mod summary;

pub use baseline::{FeatureBaseline, ModelBaseline};
pub use dataset_drift::{DatasetDrift, dataset_drift};
pub use drift::{DriftReport, FeatureDrift};
pub use error::{Error, Result};
pub use notify::Notifier;
pub use outcomes::{Judging, VersionOutcomes, outcomes_by_version};
pub use paired::{PairedEvidence, paired_evidence};
pub use predlog::{
    PredictionLog, PredictionRecord, Role, logged_request_ids, read_segment_records, read_window, segment_keys,
};
pub use rules::{AlertRule, AlertRules, NotifySettings, RuleState};
pub use summary::{FeatureSketch, LatencyHistogram, OutcomeSummary, PairedSums, Sketcher, TrafficSummary};
