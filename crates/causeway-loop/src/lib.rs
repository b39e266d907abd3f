//! The loop: a project's configuration and stores, the training pipeline (stored data →
//! point-in-time features → tracked runs → registered versions), the controller that turns
//! monitoring into retraining and a champion/challenger rollout (gates, shadow, canary, promote
//! or roll back), and the fraud demo that runs all of it on an injected clock.

pub mod card;
pub mod config;
pub mod controller;
pub mod datasets;
pub mod draft;
mod error;
pub mod external;
pub mod gates;
pub mod labels;
pub mod pipeline;
pub mod predict;
pub mod project;
pub mod scenario;

pub use config::{ProjectConfig, StorageSection};
pub use controller::{Controller, LoopState, Stage, TickReport};
pub use error::{Error, Result};
pub use project::Project;
