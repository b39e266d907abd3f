//! The inference engine without HTTP: it loads the deployed versions of each model from the
//! store, swaps them without dropping requests when the store changes, fills record features
//! from the online store, routes between champion and challenger (shadow, canary), and hands
//! every prediction to the prediction log off the request path.
//!
//! This crate does not parse HTTP: the server crate turns requests into calls here.

mod engine;
mod error;
pub mod outputs;
pub mod routing;

pub use engine::{
    Deployment, Engine, InferOutcome, LoadedVersion, OnlineFeatures, Prediction, RecordDecision, RecordRequest, Refresh,
};
pub use error::{Error, Result};
