//! The loop: the training pipeline (stored data →
//! point-in-time features → tracked runs → registered versions), and the control plane that
//! turns monitoring into retraining and a champion/challenger rollout (gates, shadow, canary,
//! promote or roll back): the pure state machine (`machine`), its executor (`controller`),
//! retraining jobs (`retrain`), the live scheduler with its leader lease (`live`). The demos
//! live in `causeway-demo`.

pub mod card;
/// `causeway.toml`, the project and the cron schedule live in `causeway-project`; re-exported
/// under their old paths.
pub use causeway_project::{config, project, schedule};
pub mod controller;
pub mod datasets;
pub mod draft;
mod error;
pub mod external;
pub mod feedback;
pub mod gates;
pub mod labels;
pub mod live;
pub mod machine;
pub mod pipeline;
pub mod predict;
pub mod retrain;
pub mod status;
pub mod timeline;
pub mod windows;

pub use config::{ProjectConfig, StorageSection};
pub use controller::{Controller, Jobs, TickReport};
pub use error::{Error, Result};
pub use machine::{LoopState, Stage};
pub use project::Project;
