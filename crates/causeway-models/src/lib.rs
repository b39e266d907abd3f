//! Models as Causeway scores them: the [`Predictor`] trait, the model families (gradient-boosted
//! trees, logistic regression, and [`TreeEnsemble`]s imported from XGBoost and LightGBM with their
//! exact semantics), the [`ModelArtifact`] file format, and the [`Signature`] that checks and
//! encodes inputs.
//!
//! This crate does not touch the store: it turns bytes into models and inputs into scores.

mod artifact;
pub mod compiled;
pub mod ensemble;
mod error;
mod float_text;
pub mod gbdt;
pub mod import;
pub mod linear;
pub mod logistic;
pub mod metrics;
pub mod onnx_graph;
pub mod signature;
pub mod task;

pub use artifact::{ARTIFACT_FORMAT_VERSION, Model, ModelArtifact};
pub use compiled::CompiledEnsemble;
pub use ensemble::TreeEnsemble;
pub use error::{Error, InputError, Result};
pub use gbdt::{GbdtModel, Node, Objective, Tree};
pub use import::{FeatureDescription, Imported, ModelFormat, import_as, import_model};
pub use linear::{LinearModel, Link};
pub use logistic::LogisticModel;
pub use onnx_graph::{OnnxGraph, use_runtime_library};
pub use signature::{FeatureKind, FeatureSpec, Signature};
pub use task::{LabelValue, Task, TaskKind};

/// Something that turns encoded feature rows into probabilities of the positive class.
pub trait Predictor: Send + Sync {
    /// The probability for one encoded row (`row.len()` equals the signature's width).
    fn predict_row(&self, row: &[f64]) -> f64;

    /// Probabilities for many rows.
    fn predict_rows(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        rows.iter().map(|row| self.predict_row(row)).collect()
    }
}

/// The logistic function.
pub fn sigmoid(margin: f64) -> f64 {
    1.0 / (1.0 + (-margin).exp())
}
